"""tansu 0.6 can hand a consumer a later batch than the one it asked for: this guard reads the skipped one again.

Read in tansu's source (tansu-storage/src/dynostore.rs at v0.6.0, the storage of `memory://` and `s3://`): a
produce takes its offsets, moving the high watermark, before it stores its batch. Two producers to a partition:
the first takes offsets 100-144, the second 145-150 and stores them first; a fetch at 100 in between lists the
batches below the watermark, finds 145 and returns it, and the client asks next for 151. Unchanged upstream at
v0.7.0-pre.2. Seen here once, with no error anywhere: a bench warm-up on tansu left 45 orders PENDING, one batch
of order.saved that the inventory service never read, while later orders of the same partition went through.

On the lab's topics every offset holds a record (no transactions write them, nothing compacts them), so a jump
in offsets is such a skip. The guard seeks back to the first offset missing, reads again, and drops what it
had already handled. A gap still open after `GRACE_S` is let through and logged as an error: no re-read will
bring it back (a transaction's marker takes an offset, for one). Apache Kafka moves its high watermark only
after the append, so only tansu's loop (and the fan-out, which reads either broker) uses this.
"""
import logging
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from confluent_kafka import TopicPartition

log = logging.getLogger(__name__)
GRACE_S = 10.0
Key = tuple[str, int]  # (topic, partition)


class Seeker(Protocol):
    def seek(self, partition: TopicPartition) -> None: ...


class GapGuard:
    """Admits each partition's messages in offset order, without holes; seeks back where the broker left one."""

    def __init__(self, grace_s: float = GRACE_S, clock: Callable[[], float] = time.monotonic):
        self.next: dict[Key, int] = {}  # the offset each partition must deliver next
        self.open: dict[Key, float] = {}  # a gap being read again: since when
        self.grace_s, self.clock = grace_s, clock
        self.reread = 0  # gaps that a re-read closed, for the record

    def expect(self, partitions: Iterable[TopicPartition]) -> None:
        """Where reading starts (an assignment's offsets). A partition not given starts at its first message."""
        self.next.update({(tp.topic, tp.partition): tp.offset for tp in partitions if tp.offset >= 0})

    def admit(self, source: Seeker, messages: list) -> list:
        """The messages that continue their partition; behind a gap, that partition is sought back instead."""
        admitted, sought = [], set()
        for m in messages:
            key, offset = (m.topic(), m.partition()), m.offset()
            expected = self.next.get(key, offset)
            if key in sought or offset < expected:  # behind a gap, or read again and handled already
                continue
            if offset > expected and not self._let_through(key, expected, offset):
                if key not in self.open:
                    self.open[key] = self.clock()
                    log.warning("%s[%d]: the broker skipped offsets %d-%d; reading them again",
                                *key, expected, offset - 1)
                source.seek(TopicPartition(*key, expected))
                sought.add(key)
                continue
            if key in self.open:
                del self.open[key]
                self.reread += 1
                log.info("%s[%d]: offset %d read again; the gap is closed", *key, expected)
            self.next[key] = offset + 1
            admitted.append(m)
        return admitted

    def _let_through(self, key: Key, expected: int, got: int) -> bool:
        if key not in self.open or self.clock() - self.open[key] < self.grace_s:
            return False
        del self.open[key]
        log.error("%s[%d]: offsets %d-%d never came back in %.0f s; going on without them",
                  *key, expected, got - 1, self.grace_s)
        return True
