"""Consumer groups: who reads which partition, and how far behind each group is, as the broker says.

Lag = the partition's end - the group's committed offset: events written but
not yet handled. tansu reports a partition's end (its high watermark) as the
first offset of its last record batch + 1, a few messages short; a group that
committed further proves the log goes at least that far, so the end we use is
the larger of the two. While every group is behind, the lag can read a little
short; a group that has caught up reads 0.

Who owns a partition is the group coordinator's to say. On Apache Kafka it
lists each member, named by its client id (`inventory-1` is instance 1 of the
inventory service), with the partitions it holds. On tansu the services assign
their partitions themselves, so the broker lists no members at all: it knows
each group's committed offsets, never who reads. (Nor does it keep a commit's
metadata, which could have named the committer: measured, tansu 0.6 answers
None where Apache Kafka returns it.)
"""
import time
from typing import Any

import pandas as pd
from confluent_kafka import TopicPartition

from flashsale.adapters import kafka
from flashsale.brokers import choose
from flashsale.lab.replay import GROUPS  # what each consumer group reads, defined once
from flashsale.settings import Settings
from flashsale.stack.control import Stack

# The lab's own clients stay quiet: a broker that is down on purpose (notebook 04) is not news in a cell.
QUIET: dict[str, Any] = {"log_level": 0}
NOT_KNOWN = "not known to tansu: instance i of n reads p % n == i"


class LagMeter:
    """One client per group that never joins it: it looks up the group's committed offsets.

    With `owners`, each row also names the member that holds the partition ("nobody" between owners).
    """

    def __init__(self, settings: Settings, owners: bool = False):
        self.bootstrap, self.partitions, self.owners = settings.kafka_bootstrap_servers, settings.partitions, owners
        self.clients = {group: kafka.consumer(self.bootstrap, group, **QUIET) for group in GROUPS}
        self.members_known = choose(settings).groups  # tansu lists no members: nothing to ask

    # How long each lookup may take. 2 s was not enough on a shared 2-core machine at a load average of 30-58: a
    # lesson's `lab.owners` failed with 'Failed to get committed offsets: Local: Timed out' (tools/stability.py,
    # notebook 05 on Apache Kafka, 2 of 4 runs). The dashboard asks with 1 s, and keeps its last figure meanwhile.
    def read(self, timeout: float = 10) -> list[dict]:
        rows: list[dict[str, Any]] = []
        ends: dict[tuple[str, int], tuple[int, int]] = {}
        for group, topics in GROUPS.items():
            client = self.clients[group]
            wanted = [TopicPartition(t, p) for t in topics for p in range(self.partitions)]
            for tp in client.committed(wanted, timeout=timeout):
                key = (tp.topic, tp.partition)
                if key not in ends:
                    ends[key] = client.get_watermark_offsets(TopicPartition(*key), timeout=timeout)
                low = ends[key][0]
                rows.append({"group": group, "topic": tp.topic, "partition": tp.partition,
                             "committed": tp.offset if tp.offset >= 0 else low})  # never committed: none handled
        for row in rows:
            key = (row["topic"], row["partition"])
            end = max(ends[key][1], *(r["committed"] for r in rows if (r["topic"], r["partition"]) == key))
            row.update(end=end, lag=end - row["committed"])
        if self.owners:
            held = holders(self.bootstrap, GROUPS, timeout) if self.members_known else {}
            for row in rows:
                owner = held.get((row["group"], row["topic"], row["partition"]), "nobody")
                row["owner"] = owner if self.members_known else NOT_KNOWN
        return rows

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


def holders(bootstrap: str, groups, timeout: float = 2) -> dict[tuple[str, str, int], str]:
    """(group, topic, partition) -> the client id of the member that holds it, as the group coordinator says."""
    views = kafka.describe_groups(bootstrap, groups, timeout)
    return {(group, topic, p): member.client for group, view in views.items()
            for member in view.members for topic, p in member.partitions}


def lag(stack: Stack) -> pd.DataFrame:
    """Lag per group, topic and partition, right now."""
    meter = LagMeter(stack.wired())
    try:
        return pd.DataFrame(meter.read()).set_index(["group", "topic", "partition"])
    finally:
        meter.close()


def drained(stack: Stack, group: str, timeout: float = 60) -> float:
    """Seconds until `group` has no lag left on any partition; TimeoutError if it still has after `timeout`."""
    meter, start = LagMeter(stack.wired()), time.monotonic()
    try:
        while time.monotonic() - start < timeout:
            if sum(row["lag"] for row in meter.read() if row["group"] == group) == 0:
                return time.monotonic() - start
            time.sleep(0.2)
    finally:
        meter.close()
    raise TimeoutError(f"{group} still lags after {timeout} s")


def owners(stack: Stack, *groups: str) -> pd.DataFrame:
    """Each partition the groups read (all of them if none named): its owner, the group's committed offset, lag."""
    meter = LagMeter(stack.wired(), owners=True)
    try:
        rows = [row for row in meter.read() if row["group"] in (groups or GROUPS)]
    finally:
        meter.close()
    return pd.DataFrame(rows).set_index(["group", "topic", "partition"])[["owner", "committed", "end", "lag"]]


def members(stack: Stack, *groups: str) -> pd.DataFrame:
    """The members the broker lists in each group, with the partitions each holds: an idle member holds none."""
    views = kafka.describe_groups(stack.wired().kafka_bootstrap_servers, groups or GROUPS)
    rows = [{"group": group, "member": m.client, "partitions": [f"{t}/{p}" for t, p in m.partitions]}
            for group, view in views.items() for m in view.members]
    return pd.DataFrame(rows, columns=["group", "member", "partitions"]).set_index(["group", "member"]).sort_index()


def handovers(stack: Stack, group: str, seconds: float = 10, every: float = 0.2) -> pd.DataFrame:
    """Watch the broker's view of `group` for `seconds`: one row each time a partition changes hands."""
    bootstrap, moves = stack.wired().kafka_bootstrap_servers, []
    before, start = holders(bootstrap, [group]), time.monotonic()
    while time.monotonic() - start < seconds:
        time.sleep(every)
        held, now = holders(bootstrap, [group]), round(time.monotonic() - start, 1)
        for key in sorted({*before, *held}):
            if before.get(key) != held.get(key):
                moves.append({"after s": now, "partition": f"{key[1]}/{key[2]}",
                              "from": before.get(key, "nobody"), "to": held.get(key, "nobody")})
        before = held
    return pd.DataFrame(moves, columns=["after s", "partition", "from", "to"])
