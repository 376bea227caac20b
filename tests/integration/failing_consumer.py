"""The services' consumer loop (`adapters.kafka.kafka_loop`) in a process of its own, with a handler that
has a bug a test can put in and take out: it fails on every batch holding an order named in FOLDER/broken.

Usage: python failing_consumer.py TOPIC GROUP FOLDER, with the stack's settings in FLASHSALE_* variables.
It appends the orderId of each event it handles to FOLDER/handled, one a line (a batch that fails, none).
"""
import logging
import sys
from pathlib import Path

from flashsale import events as ev
from flashsale.adapters import kafka
from flashsale.brokers import choose
from flashsale.settings import Settings


def main(topic: str, group: str, folder: str) -> None:
    broken, handled = Path(folder) / "broken", Path(folder) / "handled"

    def handle(batch: list[ev.Event]) -> list[ev.Event]:
        bugs = set(broken.read_text().split()) if broken.exists() else set()
        if failing := [e.orderId for e in batch if e.orderId in bugs]:
            raise RuntimeError(f"a bug meets order {failing[0]}")
        with handled.open("a") as out:
            out.writelines(f"{e.orderId}\n" for e in batch)
        return []

    settings = Settings()
    kafka.kafka_loop(settings, choose(settings), group).run([topic], handle)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    main(*sys.argv[1:])
