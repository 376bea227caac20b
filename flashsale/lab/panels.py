"""What the dashboard's panels show, from one watcher snapshot: pure functions, no widgets, no plotly.

Each returns plain lists and strings, so a unit test, a notebook cell and the dashboard read the same numbers;
`summaries` gives every panel its one line of text, for a screen reader and for a reader in a hurry.
"""
from statistics import median

from flashsale.lab import palette
from flashsale.lab.topology import alive

SHORT = {"order.events": "ord", "inventory.events": "inv", "payment.events": "pay", "notification.events": "ntf"}
STATUSES = ("pending", "reserved", "confirmed", "cancelled")
# The two clocks of one order, named on every chart with the moment each starts and stops: they do not start
# together, so a pipeline shorter than the accept latency is no answer that came after the outcome.
SPANS = {"accept": "click → 202", "pipeline": "order.created → decided"}
LATENCIES = {name: f"{name}: {span}" for name, span in SPANS.items()}  # the legend's names


def owner_tag(owner: str | None, group: str) -> str:
    """A bar's owner, short: the instance number of `inventory-1`, "–" for nobody, "" when the broker cannot say."""
    if not owner or owner.startswith("not known"):
        return ""
    if owner == "nobody":
        return "–"
    return "#" + owner.removeprefix(f"{group}-")


def lag_bars(rows: list[dict], up: dict[str, bool]) -> dict:
    """Lag per partition, grouped by consumer group: a two-level x axis (group, then `ord` over `0`), a y range that
    never goes below [0, 1], each bar red when its group's service is down, and the owners as the broker says."""
    rows = sorted(rows, key=lambda r: (r["group"], r["topic"], r["partition"]))
    top = max((r["lag"] for r in rows), default=0)
    known = any(owner_tag(r.get("owner"), r["group"]) for r in rows)
    partitions = [f"{SHORT.get(r['topic'], r['topic'])}<br>{r['partition']}" for r in rows]
    return {"x": [[r["group"] for r in rows], partitions],
            "y": [r["lag"] for r in rows],
            "colors": [palette.HEALTH["down"] if alive(r["group"], up) is False else palette.SERIES["lag"]
                       for r in rows],
            "text": [owner_tag(r.get("owner"), r["group"]) for r in rows] if known else None,
            "hover": [r.get("owner") or "" for r in rows],
            "range": [0, max(1, top) * 1.25], "dtick": 1 if top <= 4 else None,  # whole events, no 0.2 ticks
            "note": "" if top else "no lag: every group has handled every event",
            "owners": "#n over a bar: the instance that owns it, as the broker says" if known else
                      (rows[0].get("owner") or "" if rows else "")}


def cpu_bars(cpu: dict | None) -> dict:
    """CPU ms per order per component, largest first, without the total (it goes in the title)."""
    if not cpu:
        return {"x": [], "y": [], "title": "CPU ms per order: waiting for orders to settle"}
    parts = sorted(((c, ms) for c, ms in cpu["ms"].items() if c != "total" and ms > 0), key=lambda p: -p[1])
    return {"x": [c for c, _ in parts], "y": [ms for _, ms in parts],
            "title": f"CPU ms per order: {cpu['ms']['total']:.2f} ({cpu['orders']:,} orders, {cpu['seconds']:g} s"
                     + ("" if cpu.get("live", True) else "; idle since") + ")"}  # short: half the figure wide


def _ms(values: list[float]) -> str:
    return f"median {median(values):,.0f} ms" if values else "none yet"


def summaries(snap: dict) -> dict[str, str]:
    """One line per panel: stock, orders, latency, lag, cost."""
    c, stock = snap.get("counts") or {}, snap.get("stock") or []
    lines = {}
    if stock and c:
        lines["stock"] = (f"stock {stock[0][1]}→{stock[-1][1]} of {c['initialStock']} "
                          f"in {stock[-1][0] - stock[0][0]:.1f} s")
    else:
        lines["stock"] = "stock: waiting for the sale"
    lines["orders"] = "orders: " + ", ".join(f"{c.get(s, 0):,} {s}" for s in STATUSES)
    lines["latency"] = (f"latency: accept ({SPANS['accept']}) {_ms(snap.get('accept_ms') or [])}; pipeline "
                        f"({SPANS['pipeline']}) {_ms(snap.get('pipeline_ms') or [])}, a clock that starts when the "
                        "gateway writes the order, after the buyer's wait in line")
    lag: dict[str, int] = {}
    for row in snap.get("lag", []):
        lag[row["group"]] = lag.get(row["group"], 0) + row["lag"]
    lines["lag"] = "lag: " + (", ".join(f"{g} {n:,}" for g, n in sorted(lag.items())) or "not measured yet")
    cpu = snap.get("cpu")
    lines["cpu"] = cpu_bars(cpu)["title"] + ("; most in " + max((k for k in cpu["ms"] if k != "total"),
                                                                  key=cpu["ms"].get) if cpu else "")
    return lines
