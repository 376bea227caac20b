"""Redis: the stock counter and the current sale live here (the hot path)."""
import redis

# Redis down, restarting or frozen: an outage a consumer waits out (kafka.Postponed), never a reason to dead-letter.
UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError)


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=10)
