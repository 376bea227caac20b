"""What exercise 18's check concludes from the output and the journal: which rule a wrong count breaks."""
from collections import Counter
from typing import TYPE_CHECKING

from flashsale import events as ev
from flashsale.lab.exercises import Rule, Wrong, expect, short

if TYPE_CHECKING:  # the job's process imports this module: it needs nothing of the stack's
    from flashsale.stack.control import Stack
from flashsale.lab.exercises.transactions.job import _event_id
from flashsale.lab.exercises.transactions.rules import INVOICES, OFFSETS, ONE_TRANSACTION, RETURNS
from flashsale.lab.exercises.transactions.run import _read


def judge_committed(stack: "Stack", names: dict, journal: list[dict], wanted: Counter, aborted: set[str],
                    after: str = "the kills") -> None:
    """What a read_committed reader sees: one invoice for each order.confirmed, nothing else, none twice. On a broker
    that shows an aborted transaction's writes (tansu 0.6), those of the transaction the check killed left out."""
    from flashsale.lab.transactions import HIDES_ABORTED

    settings = stack.wired()
    committed = _read(settings.kafka_bootstrap_servers, names["topic"], settings.partitions, "read_committed")
    shown_aborted = [m for m in committed if _event_id(m.value()) in aborted]
    if HIDES_ABORTED[settings.broker]:
        expect(not shown_aborted, f"read_committed shows {len(shown_aborted)} invoices of the killed transaction",
               ONE_TRANSACTION)
    elif shown_aborted and after == "the kills":
        print(f"  (tansu 0.6 shows read_committed readers the {len(shown_aborted)} invoices of the aborted "
              "transaction (notebook 08); they are left out below, as Apache Kafka leaves them out)")
    shown = [m for m in committed if _event_id(m.value()) not in aborted]
    judge_invoices(shown, wanted, journal, names["topic"])
    got = Counter(ev.Event.from_json(m.value() or b"").orderId for m in shown)
    missing, twice = wanted - got, got - wanted
    if missing or twice:
        what = (f"{sum(missing.values())} order.confirmed have no invoice ({short(missing)})" if missing else
                f"{sum(twice.values())} invoices too many ({short(twice)})")
        raise Wrong(f"read_committed, after {after}: {what}. " + diagnosis(journal, bool(missing)),
                    ONE_TRANSACTION if split(journal) else OFFSETS)
    print(f"  read_committed, after {after}: {sum(got.values())} invoices for {sum(wanted.values())} "
          "order.confirmed, each once")


def judge_invoices(messages: list, wanted: Counter, journal: list[dict], topic: str) -> None:
    """Rule 1: each invoice an invoice.issued, keyed by its orderId, for a confirmed order; none written elsewhere."""
    elsewhere = sorted({line["topic"] for line in journal if line["call"] == "produce" and line["topic"] != topic})
    expect(not elsewhere, f"invoice_batch wrote to {', '.join(map(str, elsewhere))}: the invoices go to `topic`, "
           f"the topic it is given ({topic})", INVOICES)
    for m in messages:
        try:
            invoice = ev.Event.from_json(m.value() or b"")
        except ValueError:
            raise Wrong(f"read_committed shows a message on the invoice topic that is not an event: {m.value()!r:.80}",
                        INVOICES) from None
        expect(invoice.type == ev.INVOICE_ISSUED, f"an {invoice.type} on the invoice topic: write invoice.issued "
               "events (invoices.invoices(events) makes them)", INVOICES)
        expect(invoice.orderId in wanted, f"an invoice for order {invoice.orderId}, which was never confirmed: "
               "invoice the order.confirmed events, and nothing else", INVOICES)
        expect(m.key() == invoice.orderId.encode(), f"an invoice keyed {m.key()!r}, not by its orderId "
               f"{invoice.orderId!r}: key=invoice.key, so that all of an order's events share a partition", INVOICES)


def judge_returns(journal: list[dict]) -> None:
    """Rule 4: each call returned the number of invoices it wrote (those of a killed call are not known)."""
    written: Counter = Counter()
    for line in journal:
        if line["call"] == "produce":
            written[line["batch"], line.get("run")] += 1
        elif line["call"] == "return":
            n = written[line["batch"], line.get("run")]
            expect(line["value"] == n, f"invoice_batch wrote {n} invoice{'s' * (n != 1)} and returned "
                   f"{line['value']}: return how many it wrote", RETURNS)


def split(journal: list[dict]) -> str:
    """Rule 3 broken, in what the journal shows: a call of invoice_batch that committed several transactions, or its
    invoices in one and its offsets in another ("" if none did)."""
    calls: dict[tuple, list[dict]] = {}
    for line in journal:
        calls.setdefault((line["run"], line["batch"]), []).append(line)
    for lines in calls.values():
        transactions: list[set[str]] = []
        for line in lines:
            if line["call"] == "begin":
                transactions.append(set())
            elif line["call"] in ("produce", "offsets") and transactions:
                transactions[-1].add(line["call"])
        if sum(line["call"] == "commit" for line in lines) > 1:
            return "several transactions for one batch"
        kinds = set().union(*transactions) if transactions else set()
        if kinds == {"produce", "offsets"} and {"produce", "offsets"} not in transactions:
            return "the invoices of a batch in one transaction, its offsets in another"
    return ""


def diagnosis(journal: list[dict], missing: bool) -> str:
    shape = split(journal)
    if shape:
        return (f"invoice_batch committed {shape}: killed between the two, the batch is half done. Begin one "
                "transaction, write the invoices, send the offsets, commit it")
    if any(line["call"] == "consumer commit" for line in journal):
        return ("The consumer committed offsets itself (source.commit): outside the transaction, they commit a batch "
                "whose invoices may never be" if missing else "The consumer committed the offsets itself "
                "(source.commit), after the transaction: killed in between, the batch is done twice") + \
            ". Commit them in the transaction: producer.send_offsets_to_transaction(...)"
    sent = [line for line in journal if line["call"] == "offsets"]
    if not sent:
        return ("No offsets were committed: a restarted job reads everything again. Commit them in the transaction: "
                "producer.send_offsets_to_transaction(source.position(source.assignment()), "
                "source.consumer_group_metadata())")
    off = next((line for line in sent if any(line["position"].get(p) != o for p, o in line["given"].items())), None)
    if off:
        position = {p: o for p, o in off["position"].items() if p in off["given"]}
        return (f"The offsets committed were {off['given']}, the consumer's position after the batch {position}: "
                "commit where the job will read next, source.position(source.assignment()), not the offsets of the "
                "last messages read")
    return "Commit the offsets after the batch in its transaction, with its invoices"


def never(journal: list[dict]) -> Rule:
    return INVOICES if not any(line["call"] == "produce" for line in journal) else ONE_TRANSACTION


def unkilled(journal: list[dict]) -> str:
    if not any(line["call"] == "produce" for line in journal):
        return "invoice_batch wrote no invoice (producer.produce(topic, ...))"
    return ("does invoice_batch begin and commit a transaction (producer.begin_transaction(), "
            "producer.commit_transaction())?")
