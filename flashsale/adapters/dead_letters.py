"""Dead letters: what a consumer puts aside, so that one message cannot stop its partition for good.

Two kinds of message go to `<topic>.dlq`, byte for byte, with their key:
- one that does not decode into an Event (poison): `decode_or_dead_letter`;
- one whose handler keeps failing (a bug, or data the handler cannot take): once its batch has failed
  `Settings.handler_attempts` times in a row, the loop hands the batch's events to the handler one at a
  time, each up to that many attempts; one that still fails is dead-lettered with its error (`isolate`).

Headers say why and where from: `error`, `topic`, `partition`, `offset`. Dead letters are never produced on
the side: the loop publishes them with the handler's output and commits only once the broker has
acknowledged all of it, so a dead letter that cannot be written leaves its batch uncommitted, to be retried.

What it costs: a dead-lettered event's order goes no further. It stays PENDING (or RESERVED) until someone
looks (`flashsale dlq`), fixes the cause and sends it back (`flashsale dlq --replay`); every handler is
idempotent, so handling it again is safe. `Postponed` is never dead-lettered: something the handler needs is
down (the payment provider, PostgreSQL, Redis), and the batch waits for it however long that takes.
"""
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from confluent_kafka import Message
from pydantic import ValidationError

from flashsale.events import Event, Notification, dead_letter_topic

log = logging.getLogger(__name__)


class Postponed(Exception):
    """A handler cannot finish its batch now, because something it needs is down (the payment provider): the
    loop commits nothing, rewinds, and tries the batch again, with a warning instead of a traceback."""


@dataclass(frozen=True)
class Record:
    """Bytes sent as they are, with headers: a dead letter, or one sent back to its topic."""
    topic: str
    key: bytes | None
    value: bytes | None
    headers: dict[str, str | bytes | None] = field(default_factory=dict)


def dead_letter(message: Message, error: str) -> Record:
    return Record(dead_letter_topic(str(message.topic())), message.key(), message.value(),
                  {"error": error[:500], "topic": message.topic(), "partition": str(message.partition()),
                   "offset": str(message.offset())})


def decode_or_dead_letter(messages: Iterable[Message]) -> tuple[list[tuple[Message, Event]], list[Record]]:
    """Each message with its Event; a message that is not one becomes a dead letter, returned for the loop to
    publish with the handler's output, so the commit waits for the broker to acknowledge it too."""
    decoded, dead = [], []
    for message in messages:
        try:
            decoded.append((message, Event.from_json(message.value() or b"")))
        except ValidationError as error:
            log.warning("dead-lettering %s[%d]@%d: %s", message.topic(), message.partition(), message.offset(),
                        error.errors()[0]["msg"])
            dead.append(dead_letter(message, str(error)))
    return decoded, dead


Handler = Callable[[list[Event]], Iterable[Event | Notification]]


def isolate(handle: Handler, decoded: list[tuple[Message, Event]], attempts: int,
            pause: float = 0.5) -> tuple[list[Event | Notification], list[Record]]:
    """The batch failed as a whole: handle its events one at a time, to find the one that fails.

    Each event gets `attempts` tries; one that fails them all becomes a dead letter with its error, and the
    others' output is kept. `Postponed` goes up to the loop: an outage is nobody's dead letter.
    """
    out: list[Event | Notification] = []
    dead: list[Record] = []
    for message, event in decoded:
        for attempt in range(1, attempts + 1):
            try:
                out += handle([event])
                break
            except Postponed:
                raise
            except Exception as error:
                log.exception("%s for order %s failed on its own (attempt %d of %d)", event.type, event.orderId,
                              attempt, attempts)
                if attempt == attempts:
                    dead.append(dead_letter(message, f"{type(error).__name__}: {error}"))
                else:
                    time.sleep(pause)
    return out, dead
