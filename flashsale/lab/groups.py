"""Consumer groups: who reads which partition, and how far behind each group is.

Lag = the partition's end - the group's committed offset: events written but
not yet handled. tansu reports a partition's end (its high watermark) as the
first offset of its last record batch + 1, a few messages short; a group that
committed further proves the log goes at least that far, so the end we use is
the larger of the two. While every group is behind, the lag can read a little
short; a group that has caught up reads 0.
"""
import time

import pandas as pd
from confluent_kafka import TopicPartition

from flashsale.adapters import kafka
from flashsale.lab.replay import GROUPS  # what each consumer group reads, defined once
from flashsale.stack.control import Stack

# The lab's own clients stay quiet: a broker that is down on purpose (notebook 04) is not news in a cell.
QUIET = {"log_level": 0}


class LagMeter:
    """One client per group that never joins it: it only looks up the group's committed offsets."""

    def __init__(self, bootstrap: str, partitions: int):
        self.partitions = partitions
        self.clients = {group: kafka.consumer(bootstrap, group, **QUIET) for group in GROUPS}

    def read(self, timeout: float = 2) -> list[dict]:
        rows, ends = [], {}
        for group, topics in GROUPS.items():
            client = self.clients[group]
            wanted = [TopicPartition(t, p) for t in topics for p in range(self.partitions)]
            for tp in client.committed(wanted, timeout=timeout):
                key = (tp.topic, tp.partition)
                if key not in ends:
                    ends[key] = client.get_watermark_offsets(TopicPartition(*key), timeout=timeout)
                low = ends[key][0]
                rows.append({"group": group, "topic": tp.topic, "partition": tp.partition,
                             "committed": tp.offset if tp.offset >= 0 else low})  # never committed: none handled
        for row in rows:
            key = (row["topic"], row["partition"])
            end = max(ends[key][1], *(r["committed"] for r in rows if (r["topic"], r["partition"]) == key))
            row.update(end=end, lag=end - row["committed"])
        return rows

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


def lag(stack: Stack) -> pd.DataFrame:
    """Lag per group, topic and partition, right now."""
    settings = stack.wired()
    meter = LagMeter(settings.kafka_bootstrap_servers, settings.partitions)
    try:
        return pd.DataFrame(meter.read()).set_index(["group", "topic", "partition"])
    finally:
        meter.close()


def drained(stack: Stack, group: str, timeout: float = 60) -> float:
    """Seconds until `group` has no lag left on any partition; TimeoutError if it still has after `timeout`."""
    settings = stack.wired()
    meter, start = LagMeter(settings.kafka_bootstrap_servers, settings.partitions), time.monotonic()
    try:
        while time.monotonic() - start < timeout:
            if sum(row["lag"] for row in meter.read() if row["group"] == group) == 0:
                return time.monotonic() - start
            time.sleep(0.2)
    finally:
        meter.close()
    raise TimeoutError(f"{group} still lags after {timeout} s")


def owners(stack: Stack) -> pd.DataFrame:
    """Which running instance owns which partitions: instance i of n takes every p with p % n == i."""
    settings, state = stack.wired(), stack.load()
    rows = []
    for name, info in state["processes"].items():
        service = info.get("service")
        if service in GROUPS:
            n = state["scale"].get(service, 1)
            owned = kafka.owned_partitions(GROUPS[service][:1], settings.partitions, info["instance"], n)
            rows.append({"process": name, "pid": info["pid"], "instance": f"{info['instance']} of {n}",
                         "partitions": [tp.partition for tp in owned]})
    return pd.DataFrame(rows).set_index("process")
