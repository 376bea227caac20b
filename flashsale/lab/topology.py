"""The architecture as a picture that moves: who sends events where, how many a second, who lags, who is down.

    buyers -> gateway -> order.events -> orders, inventory, notifications -> ... -> notification.events
           <- WebSocket <-----------------------------------------------------------------'

Each node sits at a fixed place; each edge is an arrow with its live rate (events a second, as the dashboard's
watcher counts them on the topics); each consumer shows its lag (summed over its partitions). A service with no
live process turns grey and says "down", and the arrows into it turn red: its events pile up in the topic.

`picture(snapshot)` is the pure part (what to draw); `add(fig)` and `draw(fig, picture)` put it on a figure.
"""
from flashsale import events as ev
from flashsale.lab import palette
from flashsale.stack.components import SERVICES

# name -> (x, y, kind, which process keeps it alive)
NODES = {
    "buyers": (0.3, 3.1, "buyers", None), "gateway": (1.9, 4.5, "http", "gateway"),
    "WebSocket": (1.9, 1.0, "http", "gateway"),
    ev.ORDER_EVENTS: (4.3, 5.4, "topic", "kafka"), ev.INVENTORY_EVENTS: (4.3, 3.9, "topic", "kafka"),
    ev.PAYMENT_EVENTS: (4.3, 2.4, "topic", "kafka"), ev.NOTIFICATION_EVENTS: (4.3, 0.9, "topic", "kafka"),
    "orders": (7.0, 5.4, "service", "orders"), "inventory": (7.0, 3.9, "service", "inventory"),
    "payments": (7.0, 2.4, "service", "payments"), "notifications": (7.0, 0.9, "service", "notifications"),
    "postgres": (9.4, 5.4, "store", "postgres"), "redis": (9.4, 3.9, "store", "redis"),
    "psp": (9.4, 2.4, "provider", "psp"),
}
SYMBOL = {"buyers": "circle", "http": "square", "topic": "square", "service": "circle", "store": "diamond",
          "provider": "diamond"}
ORDERS_OWN = (ev.ORDER_SAVED, ev.ORDER_RESERVED, ev.ORDER_CONFIRMED, ev.ORDER_CANCELLED)
# (from, to, what its rate counts: event types or topics, sideways offset so that two opposite arrows part)
EDGES = [
    ("buyers", "gateway", (ev.ORDER_CREATED,), 0), ("gateway", ev.ORDER_EVENTS, (ev.ORDER_CREATED,), 0),
    (ev.ORDER_EVENTS, "orders", (ev.ORDER_EVENTS,), 0.2), ("orders", ev.ORDER_EVENTS, ORDERS_OWN, -0.2),
    (ev.ORDER_EVENTS, "inventory", (ev.ORDER_EVENTS,), 0), (ev.ORDER_EVENTS, "notifications", (ev.ORDER_EVENTS,), 0),
    ("inventory", ev.INVENTORY_EVENTS, (ev.INVENTORY_EVENTS,), 0),
    (ev.INVENTORY_EVENTS, "orders", (ev.INVENTORY_EVENTS,), 0),
    (ev.INVENTORY_EVENTS, "payments", (ev.INVENTORY_EVENTS,), 0),
    (ev.INVENTORY_EVENTS, "notifications", (ev.INVENTORY_EVENTS,), 0),
    ("payments", ev.PAYMENT_EVENTS, (ev.PAYMENT_EVENTS,), 0),
    (ev.PAYMENT_EVENTS, "orders", (ev.PAYMENT_EVENTS,), 0), (ev.PAYMENT_EVENTS, "inventory", (ev.PAYMENT_EVENTS,), 0),
    ("notifications", ev.NOTIFICATION_EVENTS, (ev.NOTIFICATION_EVENTS,), 0),
    ("orders", "postgres", ORDERS_OWN, 0), ("inventory", "redis", (ev.INVENTORY_EVENTS,), 0),
    ("payments", "psp", (ev.PAYMENT_EVENTS,), 0),
    (ev.NOTIFICATION_EVENTS, "WebSocket", (ev.NOTIFICATION_EVENTS,), 0),
    ("WebSocket", "buyers", (ev.NOTIFICATION_EVENTS,), 0),
]


def label_at(src: str) -> float:
    """How far along its arrow an edge's rate sits: a topic's arrows fan out, so theirs sit near the reader."""
    return {"topic": 0.76, "service": 0.36}.get(NODES[src][2], 0.5)


def alive(node: str, up: dict[str, bool]) -> bool | None:
    """True if a process that keeps `node` alive runs, False if none does (or one of our services was never
    started), None if the stack does not say (a server it did not start, or no status read yet)."""
    keeper = NODES[node][3] if node in NODES else node
    seen = [ok for name, ok in up.items() if name.split(".")[0] == keeper]
    if keeper is None or not up:
        return None
    return any(seen) if seen else (False if keeper in SERVICES else None)


def rate(keys, rates: dict[str, float]) -> float:
    return sum(rates.get(k, 0.0) for k in keys)


def picture(snap: dict) -> dict:
    """What the topology shows for one snapshot: node colours and labels, edge colours and rate labels."""
    up, rates = snap.get("up", {}), snap.get("rates", {})
    lag: dict[str, int] = {}
    for row in snap.get("lag", []):
        lag[row["group"]] = lag.get(row["group"], 0) + row["lag"]
    colors, labels, down = [], [], set()
    for node, (_, _, kind, _) in NODES.items():
        ok = alive(node, up)
        if ok is False:
            down.add(node)
        lines = [f"<b>{node}</b>"]
        if kind == "topic":
            lines.append(f"{rate((node,), rates):,.0f}/s")
        if node in lag:
            lines.append(f"lag {lag[node]:,}")
        if ok is False:
            said = "DOWN" if any(n.split(".")[0] == NODES[node][3] for n in up) else "not started"
            lines.append(f"<b><span style='color:{palette.HEALTH['down']}'>{said}</span></b>")
        colors.append(palette.HEALTH["idle"] if ok is False else palette.SERIES[kind])
        labels.append("<br>".join(lines))
    edge_colors, edge_labels = [], []
    for src, dst, keys, _ in EDGES:
        r = rate(keys, rates)
        stuck = dst in down or src in down
        edge_colors.append(palette.HEALTH["down"] if stuck else palette.BLACK if r > 0 else palette.GREY)
        edge_labels.append(f"{r:,.0f}/s" if r >= 0.5 else "")
    return {"node_colors": colors, "node_labels": labels, "down": sorted(down), "lag": lag,
            "edge_colors": edge_colors, "edge_labels": edge_labels}


def summary(pic: dict, rates: dict[str, float]) -> str:
    """One line: what flows, who lags, who is down."""
    flowing = ", ".join(f"{t} {rates.get(t, 0):,.0f}/s" for t in ev.TOPICS)
    lags = ", ".join(f"{g} {n:,}" for g, n in pic["lag"].items()) or "none measured"
    down = ", ".join(pic["down"]) or "nobody"
    return f"events: {flowing}; lag: {lags}; down: {down}"


def _ends(src: str, dst: str, offset: float) -> tuple[float, float, float, float]:
    (x0, y0, *_), (x1, y1, *_) = NODES[src], NODES[dst]
    return x0, y0 + offset, x1, y1 + offset


def add(fig, row: int | None = None, col: int | None = None) -> None:
    """The nodes (one trace), the rates (one text trace) and an arrow per edge, on `fig` (at `row`, `col`)."""
    where = dict(row=row, col=col) if row else {}
    pic = picture({})
    x, y, kinds = zip(*((n[0], n[1], n[2]) for n in NODES.values()), strict=False)
    fig.add_scatter(x=x, y=y, mode="markers+text", text=pic["node_labels"], textposition="bottom center",
                    marker=dict(size=34, color=pic["node_colors"], symbol=[SYMBOL[k] for k in kinds],
                                line=dict(width=2, color=palette.BLACK)),
                    textfont=dict(size=15), hoverinfo="skip", showlegend=False, name="topology", **where)
    axis = fig.get_subplot(row, col) if row else None
    ref = dict(xref=axis.xaxis.plotly_name.replace("axis", ""), yref=axis.yaxis.plotly_name.replace("axis", "")) \
        if axis else dict(xref="x", yref="y")
    for src, dst, _, offset in EDGES:
        x0, y0, x1, y1 = _ends(src, dst, offset)
        fig.add_annotation(x=x1, y=y1, ax=x0, ay=y0, axref=ref["xref"], ayref=ref["yref"], text="", showarrow=True,
                           arrowhead=2, arrowsize=1.2, arrowwidth=2, arrowcolor=palette.GREY, standoff=20,
                           startstandoff=20, name="edge", **ref)
    for src, dst, _, offset in EDGES:  # the rates after the arrows, so that they sit on top of them
        x0, y0, x1, y1 = _ends(src, dst, offset)
        at = label_at(src)
        fig.add_annotation(x=x0 + (x1 - x0) * at, y=y0 + (y1 - y0) * at, text="", showarrow=False, name="rate",
                           font=dict(size=13, color=palette.BLACK), **ref)
    fig.update_xaxes(visible=False, range=[-0.3, 10.2], fixedrange=True, **where)
    fig.update_yaxes(visible=False, range=[-0.1, 6.0], fixedrange=True, **where)


def draw(fig, pic: dict) -> None:
    """Update what `add` put on `fig` (inside the caller's `batch_update`)."""
    nodes = next(t for t in fig.data if t.name == "topology")
    nodes.marker.color, nodes.text = pic["node_colors"], pic["node_labels"]
    arrows = [a for a in fig.layout.annotations if a.name == "edge"]
    for arrow, color in zip(arrows, pic["edge_colors"], strict=False):
        arrow.arrowcolor = color
    for label, text in zip((a for a in fig.layout.annotations if a.name == "rate"), pic["edge_labels"], strict=False):
        label.text, label.bgcolor = text, "rgba(255,255,255,0.85)" if text else "rgba(0,0,0,0)"
