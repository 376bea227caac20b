"""What the notebooks call: the stack, the buyers, the checks, the live dashboard.

    from flashsale import lab
    stack = lab.start()                  # the real servers and services
    race = lab.buy("naive", buyers=1000)  # 1,000 buyers at once
    lab.check(stack, race)               # the contract's invariants
"""
from flashsale.lab.load import Race, run_buyers as buy  # noqa: F401
