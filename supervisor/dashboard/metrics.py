"""`/metrics`: the collector's snapshot in Prometheus's text format.

A custom collector on a private registry (not the process-global default one), so
each scrape reports the latest snapshot and two dashboards in one process (tests)
do not clash. Counters come from the task table and only rise.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from qmulti.supervisor.dashboard.tasks import RUNTIME_BUCKETS


class SnapshotCollector:
    def __init__(self, collector: Any) -> None:
        self.collector = collector

    def collect(self) -> Iterator[Metric]:
        snap = self.collector.snapshot()
        counts, histograms = self.collector.tasks.snapshot_counts()
        tasks = CounterMetricFamily("qmulti_tasks", "Tasks that reached a final state.",
                                    labels=["name", "state"])
        for (name, state), n in sorted(counts.items()):
            tasks.add_metric([name, state], n)
        yield tasks
        runtime = HistogramMetricFamily("qmulti_task_runtime_seconds",
                                        "Runtime of succeeded tasks.", labels=["name"])
        for name, h in sorted(histograms.items()):
            cumulative, buckets = 0, []
            for bound, n in zip((*RUNTIME_BUCKETS, float("inf")), h.buckets, strict=True):
                cumulative += n
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            runtime.add_metric([name], buckets, h.total)
        yield runtime
        for key, doc in (("depth", "Ready messages."), ("leased", "Messages leased to nodes."),
                         ("scheduled", "Messages waiting for their eta."),
                         ("dead", "Dead-lettered messages.")):
            gauge = GaugeMetricFamily(f"qmulti_queue_{key}", doc, labels=["queue"])
            for q in snap.get("queues", []):
                gauge.add_metric([q["name"]], q[key])
            yield gauge
        nodes = snap.get("nodes", [])
        yield GaugeMetricFamily("qmulti_nodes_up", "Nodes whose heartbeat is current.",
                                value=sum(1 for n in nodes if n["state"] != "offline"))
        for key, field, doc in (("pool_size", "pool", "Pool children wanted."),
                                ("pool_busy", "busy", "Pool children running a task.")):
            gauge = GaugeMetricFamily(f"qmulti_node_{key}", doc, labels=["node"])
            for n in nodes:
                if n[field] is not None:
                    gauge.add_metric([n["name"]], n[field])
            yield gauge
        up = GaugeMetricFamily("qmulti_broker_up", "1 when the last broker read worked.",
                               value=0 if snap.get("broker", {}).get("error") else 1)
        yield up


def registry_for(collector: Any) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(collector))  # type: ignore[arg-type]
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
