"""Exercise 13's rules, as the notebook states them, the steps of its check, and its topics."""
from flashsale import events as ev
from flashsale.lab.exercises import Rule

TOPICS = ("exercise13.order.events", "exercise13.inventory.events")


DEAD = tuple(ev.dead_letter_topic(t) for t in TOPICS)


TOPIC = TOPICS[0]


RULES = (
    Rule(1, "Return, in order, an `Event` for every message that decodes, each time you are given it: the loop gives "
            "a failed batch again."),
    Rule(2, "Produce every message that does not decode, and only those, to its own topic's dead-letter topic, "
            "`ev.dead_letter_topic(message.topic())`, on the `producer` you are given, before you return: the loop "
            "flushes that producer, then commits."),
    Rule(3, "A dead letter keeps its message's key and its original bytes, so that it can be inspected and "
            "replayed."),
)


EVENTS, DEAD_LETTERS, AS_IT_WAS = RULES


STEPS = {
    "A": "each batch of 300 good events and 6 poison messages, on two topics, as your function returns it",
    "B": "a batch that failed after your function ran, given to it again",
    "C": "the dead-letter topics, read back from the broker",
}
