"""One process each: run with `python -m flashsale.services.<name>`; `flashsale up` does it for you."""
import logging


def configure_logging(service: str) -> None:
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s")
