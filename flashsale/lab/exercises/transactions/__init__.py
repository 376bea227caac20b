"""Exercise 18: one Kafka transaction per batch, in a job that is killed in the middle of one, and after one.

The learner writes `invoice_batch(producer, source, messages, topic) -> int`: the invoices of a batch of
order events, written to `topic`, and the consumer's offsets after the batch, in one transaction.

The check writes its own input before the job starts: 90 orders over the partitions, 60 confirmed and
30 cancelled, each partition ending with a confirmation; the job reads it 20 messages at a time, so 60
confirmations make three transactions with invoices at least, by construction. The job runs as notebook
08's does, in a process of its own (the function, defined in a notebook, handed to it by value with
cloudpickle), four times with the same transactional.id: killed with SIGKILL at its second commit of a
transaction with invoices (written, not committed); started again and killed just after its first such
commit; started again to the end; and started once more, when there is nothing left to invoice. Then a
read_committed reader must see one invoice for each order.confirmed, none for anything else, none twice.

The producer and the consumer the function is given are the real ones, which note each call in a journal:
what the learner's code did decides which rule a wrong count breaks, and what it returned. Apache Kafka
hides an aborted transaction's writes from read_committed readers; tansu 0.6 shows them (notebook 08).
On tansu the check leaves out the invoices of the transaction it killed, which it knows, and says so; the
rest, the kill after a commit and the run after the end included, is the same on both brokers.

rules.py holds the rules and the input, job.py the job in its process, run.py runs it from the check, judge.py
reads its output and its journal, check.py steps through it.
"""
from flashsale.lab.exercises.transactions.check import check, obvious
from flashsale.lab.exercises.transactions.job import job
from flashsale.lab.exercises.transactions.rules import RULES, STEPS

__all__ = ["RULES", "STEPS", "check", "job", "obvious"]
