"""Prometheus export of every recorder's figures, when prometheus_client is there.

One collector per process, registered once in prometheus_client's default
registry; it reads ``stats()`` of every live recorder at scrape time, so
recorders never register (or collide over) metric names of their own.
Figures of recorders that share a sink name are added together.
"""

from __future__ import annotations

import importlib.util
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = ["install"]

_installed = False
_lock = threading.Lock()

# stats() key -> (metric name, kind, help)
_PER_SINK = {
    "accepted": (
        "mlf_records_accepted",
        "counter",
        "records handed to the sink's queue",
    ),
    "written": ("mlf_records_written", "counter", "records the sink stored"),
    "rejected": (
        "mlf_records_rejected",
        "counter",
        "records the sink refused (dead letter)",
    ),
    "failed_writes": (
        "mlf_sink_failed_writes",
        "counter",
        "write attempts that failed",
    ),
    "retries": ("mlf_sink_retries", "counter", "write attempts after a failure"),
    "queue_size": (
        "mlf_queue_records",
        "gauge",
        "records queued in memory or in flight",
    ),
    "spooled": ("mlf_spooled_records", "gauge", "records waiting in the disk spool"),
}


def install(recorders: Callable[[], Iterable[Any]]) -> bool:
    """Register the collector once; False when prometheus_client is absent."""
    global _installed
    if importlib.util.find_spec("prometheus_client") is None:
        return False
    with _lock:
        if _installed:
            return True
        from prometheus_client import REGISTRY

        REGISTRY.register(_Collector(recorders))
        _installed = True
    return True


class _Collector:
    def __init__(self, recorders: Callable[[], Iterable[Any]]) -> None:
        self._recorders = recorders

    def describe(self) -> list[Any]:
        # Declaring nothing up front keeps registration free of a scrape.
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
        )

        per_sink: dict[str, Counter[str]] = {}
        dropped: Counter[tuple[str, str]] = Counter()
        captured = sampled = 0
        for recorder in list(self._recorders()):
            stats = recorder.stats()
            captured += stats["captured"]
            sampled += stats["sampled_out"]
            for sink, figures in stats["sinks"].items():
                totals = per_sink.setdefault(sink, Counter())
                totals.update({k: figures[k] for k in _PER_SINK})
                for reason, n in figures["dropped_by_reason"].items():
                    dropped[(sink, reason)] += n
            # Drops before any sink (invalid, too_large, the edges' own):
            # what the total holds beyond the sinks' figures.
            local = Counter(stats["dropped_by_reason"])
            for figures in stats["sinks"].values():
                local.subtract(figures["dropped_by_reason"])
            for reason, n in local.items():
                if n > 0:
                    dropped[("", reason)] += n

        yield CounterMetricFamily(
            "mlf_records_captured", "records that entered a recorder", captured
        )
        yield CounterMetricFamily(
            "mlf_records_sampled_out", "records left out by sampling", sampled
        )
        for key, (name, kind, text) in _PER_SINK.items():
            cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            family = cls(name, text, labels=["sink"])
            for sink, totals in sorted(per_sink.items()):
                family.add_metric([sink], totals[key])
            yield family
        family = CounterMetricFamily(
            "mlf_records_dropped",
            "records dropped, by reason",
            labels=["sink", "reason"],
        )
        for (sink, reason), n in sorted(dropped.items()):
            family.add_metric([sink, reason], n)
        yield family
