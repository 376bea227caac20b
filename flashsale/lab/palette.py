"""One colour per system, per order status and per health, for every chart: the dashboard, the notebooks' charts
and the demo's report.

The colours are Okabe and Ito's eight ("Color Universal Design", 2008), which readers with any of the common
colour-vision deficiencies can still tell apart. Each meaning has one colour, so a reader who learnt that blue is
the event-driven system in one chart reads it the same way in the next.
"""
from itertools import cycle

ORANGE, SKY_BLUE, GREEN, YELLOW = "#E69F00", "#56B4E9", "#009E73", "#F0E442"
BLUE, VERMILLION, PURPLE, BLACK, GREY = "#0072B2", "#D55E00", "#CC79A7", "#000000", "#999999"

SYSTEMS = {"naive": VERMILLION, "locked": PURPLE, "reserve-then-pay": SKY_BLUE, "event-driven": BLUE}
STATUSES = {"pending": ORANGE, "reserved": YELLOW, "confirmed": GREEN, "cancelled": GREY}
HEALTH = {"up": GREEN, "down": VERMILLION, "idle": GREY}
# What else a chart names: the two latencies of one order, and the parts of the architecture.
SERIES = {"accept": ORANGE, "pipeline": BLUE, "end-to-end": BLUE, "sold": BLUE, "lag": BLUE, "stock": BLUE,
          "buyers": BLACK, "http": BLUE, "topic": YELLOW, "service": GREEN, "store": SKY_BLUE, "provider": ORANGE}

KNOWN = {**SERIES, **HEALTH, **STATUSES, **SYSTEMS}

FONT = dict(size=16)  # readable from the back of a room
LAYOUT = dict(template="plotly_white", font=FONT, margin=dict(l=60, r=20, t=60, b=50))


def key(name: str) -> str:
    """The name as the palette spells it: `reserve_then_pay`, `End to end` -> `reserve-then-pay`, `end-to-end`."""
    return name.strip().lower().replace("_", "-").replace(" ", "-")


def color(name: str) -> str:
    """The colour of a system, a status, a health or a series; GREY for a name the palette does not know."""
    return KNOWN.get(key(name), GREY)


def colors(names) -> list[str]:
    """One colour per name: its own if the palette knows it, else the next one no known name has taken."""
    names = list(names)
    taken = {KNOWN[key(n)] for n in names if key(n) in KNOWN}
    spare = cycle([c for c in (BLUE, ORANGE, GREEN, VERMILLION, SKY_BLUE, PURPLE, YELLOW, BLACK) if c not in taken]
                  or [GREY])
    return [KNOWN[key(n)] if key(n) in KNOWN else next(spare) for n in names]
