"""The percentiles every phase of the bench reports, computed one way."""
import statistics


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98] if len(values) > 1 else values[0]


def summary(values: list[float]) -> dict:
    """How many latencies, and their p50 and p99 in ms."""
    if not values:
        return {"received": 0}
    return {"received": len(values), "p50_ms": round(statistics.median(values), 1), "p99_ms": round(p99(values), 1)}
