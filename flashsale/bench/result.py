"""What `flashsale bench` measured, as one typed record; `as_dict()` is the JSON it prints and writes.

With `--runs N` the record is the last run's, with each goal's figure replaced by the worst of the N runs
(`worst`), and every run's own goal figures kept in `runs`.
"""
from dataclasses import dataclass, field, replace
from typing import Any

from flashsale.bench.fanout import KINDS
from flashsale.readable import Readable


@dataclass(frozen=True)
class RunFigures(Readable):
    """One run's goal figures: its end-to-end and fan-out p99 at the offered rate, its CPU per order and per no-op
    request, and the fan-out's p99 of each kind (the goal's figure is the worse of the two); the stack's idle CPU
    and memory; the per-user-limit cancellations of its saturation run; its first order after the idle time."""
    p99_e2e_ms: float | None
    p99_fanout_ms: float
    cpu_ms_per_order: float
    cpu_ms_per_noop: float
    p99_fanout_ms_by_kind: dict[str, float | None]
    idle_cpu_pct: float
    stack_uss_mib: float
    per_user_limit_cancelled: int
    first_order_after_idle_ms: float | None = None


@dataclass(frozen=True)
class BenchResult(Readable):
    broker: str
    connections: int
    seconds: int
    # at saturation, by system: ceiling (the no-op server), event_driven, locked, naive
    accept_per_s: dict[str, float]
    p50_accept_ms: dict[str, float | None]
    p99_accept_ms_by_system: dict[str, float | None]
    errors: dict[str, int]
    settle_per_s: float
    # at the offered rate `e2e_rate_per_s`: end to end, the fan-out, CPU
    e2e_rate_per_s: int
    p50_e2e_ms: float | None
    p99_e2e_ms: float | None
    e2e_settled: bool
    cpu_ms_per_order_by_component: dict[str, float]
    cpu_ms_per_noop: float
    warm_up_s: int
    fanout_warm_up_s: float
    fanout: dict[str, Any]
    # the 1,000-buyer race
    oversold: int
    lost: int
    # the goals: this run's figures, or with --runs each one's worst (`worst`)
    goal_p99_e2e_ms: float | None
    goal_p99_fanout_ms: float
    cpu_ms_per_order: float
    runs: tuple[RunFigures, ...] = ()
    # the stack idle (harness/footprint.py): with --runs, each one's worst, as the goals above
    idle_cpu_pct: float = field(kw_only=True)
    idle_cpu_pct_by_component: dict[str, float] = field(kw_only=True)
    stack_uss_mib: float = field(kw_only=True)
    # the saturation run's orders cancelled for the per-user limit (1 a buyer): 0 when its buyers were distinct
    per_user_limit_cancelled: int = field(kw_only=True)
    # one order placed once the idle time is over: POST -> final on the WebSocket (None: it never came back)
    first_order_after_idle_ms: float | None = field(kw_only=True, default=None)
    broker_mode: str = field(kw_only=True, default="")  # the broker's profile: "tansu-s3" is durable, "tansu" is not

    @property
    def p99_fanout_ms(self) -> float:
        """This run's fan-out p99: the worse of its two kinds."""
        return max(self.fanout[kind].get("p99_ms", 0) for kind in KINDS)

    def figures(self) -> RunFigures:
        return RunFigures(self.p99_e2e_ms, self.p99_fanout_ms, self.cpu_ms_per_order_by_component["total"],
                          self.cpu_ms_per_noop, {kind: self.fanout[kind].get("p99_ms") for kind in KINDS},
                          self.idle_cpu_pct, self.stack_uss_mib, self.per_user_limit_cancelled,
                          self.first_order_after_idle_ms)

    def as_dict(self) -> dict[str, Any]:
        # The fan-out's goal is named by its browsers (issue 25: `p99_fanout_ms_at_1000`, 1,000 of them, whatever
        # the rate); the end-to-end goal by its offered orders a second.
        rate, browsers, accept = self.e2e_rate_per_s, self.fanout["clients"], self.accept_per_s
        return {
            "accept_per_s": accept, "p50_accept_ms": self.p50_accept_ms,
            "p99_accept_ms": self.p99_accept_ms_by_system["event_driven"],
            "p99_accept_ms_by_system": self.p99_accept_ms_by_system, "errors": self.errors,
            "ratio_event_vs_locked": round(accept["event_driven"] / accept["locked"], 2),
            "ratio_event_vs_ceiling": round(accept["event_driven"] / accept["ceiling"], 2),
            "broker": self.broker, "broker_mode": self.broker_mode, "e2e_rate_per_s": rate,
            "p50_e2e_ms": self.p50_e2e_ms, "p99_e2e_ms": self.p99_e2e_ms, f"p99_e2e_ms_at_{rate}": self.goal_p99_e2e_ms,
            f"p99_fanout_ms_at_{browsers}": self.goal_p99_fanout_ms, "e2e_settled": self.e2e_settled,
            "cpu_ms_per_order": self.cpu_ms_per_order,
            "cpu_ms_per_order_by_component": self.cpu_ms_per_order_by_component,
            "cpu_ms_per_noop": self.cpu_ms_per_noop, "warm_up_s": self.warm_up_s,
            "fanout_warm_up_s": self.fanout_warm_up_s, "settle_per_s": self.settle_per_s, "fanout": self.fanout,
            "p99_fanout_ms": self.p99_fanout_ms, "oversold": self.oversold, "lost": self.lost,
            "connections": self.connections, "seconds": self.seconds, "idle_cpu_pct": self.idle_cpu_pct,
            "idle_cpu_pct_by_component": self.idle_cpu_pct_by_component, "stack_uss_mib": self.stack_uss_mib,
            "per_user_limit_cancelled": self.per_user_limit_cancelled,
            "buyers_distinct": self.per_user_limit_cancelled == 0,
            "first_order_after_idle_ms": self.first_order_after_idle_ms,
            "runs": [{f"p99_e2e_ms_at_{rate}": run.p99_e2e_ms, f"p99_fanout_ms_at_{browsers}": run.p99_fanout_ms,
                      "cpu_ms_per_order": run.cpu_ms_per_order, "cpu_ms_per_noop": run.cpu_ms_per_noop,
                      "p99_fanout_ms_by_kind": run.p99_fanout_ms_by_kind, "idle_cpu_pct": run.idle_cpu_pct,
                      "stack_uss_mib": run.stack_uss_mib, "per_user_limit_cancelled": run.per_user_limit_cancelled,
                      "first_order_after_idle_ms": run.first_order_after_idle_ms}
                     for run in self.runs]}


def worst(runs: list[BenchResult]) -> BenchResult:
    """`--runs N`: the last run's figures, with each goal's figure replaced by the worst of the N runs.

    Each run keeps its own goal figures, its no-op CPU, and the fan-out's p99 of each kind: the goal's figure is
    the worse of the two, and a slow run's tail is then known to be the order updates' or the stock figures'.
    A run without a figure (no order came back) counts as the worst.
    """
    figures = [run.figures() for run in runs]
    return replace(runs[-1], goal_p99_e2e_ms=max(f.p99_e2e_ms or INF for f in figures),
                   goal_p99_fanout_ms=max(f.p99_fanout_ms or INF for f in figures),
                   cpu_ms_per_order=max(f.cpu_ms_per_order or INF for f in figures),
                   idle_cpu_pct=max(f.idle_cpu_pct for f in figures),
                   stack_uss_mib=max(f.stack_uss_mib for f in figures),
                   per_user_limit_cancelled=max(f.per_user_limit_cancelled for f in figures),
                   first_order_after_idle_ms=max(f.first_order_after_idle_ms or INF for f in figures),
                   runs=tuple(figures))


INF = float("inf")
