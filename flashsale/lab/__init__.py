"""What the notebooks call: the stack, the buyers, the log, the live dashboard.

    from flashsale import lab
    stack = lab.start("01-oversell")           # this notebook's own servers and services
    naive = lab.flash_sale(stack, "naive")     # a new sale of 100, then 1,000 buyers at once
    lab.tap(stack, "order.events", last=10)    # what the log says
    lab.lag(stack)                             # how far each consumer group is behind
    dash = await lab.dashboard(stack)          # live: topology, stock, orders, latency, CPU, lag, Kill
    lab.psp(stack, outage_s=5)                 # the payment provider down for 5 s (as `flashsale psp`)
    lab.show(inventory)                        # the real source of what runs
    lab.reveal(guess, "B", "100 sold")         # the learner's prediction, written before the run, against it
    lab.stop(stack)                            # nothing of it keeps running

Faults and scaling are the stack's own methods, as in the CLI:
`stack.kill("orders")`, `stack.restart("orders")`, `stack.scale("inventory", 3)`, `stack.reset(stock=100)`,
`stack.pause("postgres", 5)`.
"""
import importlib

from flashsale.harness.load import Race, run_buyers as buy  # noqa: F401

# Where each name lives. Imported on first use: importing `flashsale.lab` stays light for the CLI and the tests,
# and only a notebook pays for pandas, plotly and the widgets.
_WHERE = {
    "control": ("LabStack", "start", "stop", "stop_service", "status", "background", "redis",
                "kafka_if_installed"),
    "races": ("flash_sale", "results", "buyers", "check", "payments_done", "order", "order_status", "product", "psp",
              "charges"),
    "dashboard": ("Dashboard", "dashboard"),
    "groups": ("lag", "drained", "owners", "members", "handovers"),
    "tap": ("tap", "trail", "events", "pipeline_ms"),
    "show": ("show", "lines"),
    "predict": ("reveal",),
    "charts": (),
}


def __getattr__(name: str):
    """On first use, import every module above at once, then bind the names (`show` the function, not the module)."""
    if name not in {"charts", *(n for names in _WHERE.values() for n in names)}:
        raise AttributeError(f"module 'flashsale.lab' has no attribute {name!r}")
    for module, names in _WHERE.items():
        loaded = importlib.import_module(f"flashsale.lab.{module}")
        globals().update({n: getattr(loaded, n) for n in names})
    return globals()[name]
