"""Prometheus metrics of the cache engine: cheap counters and histograms on the request path.

The engine reports through cacheops.observe, which feeds these and the dashboard's history from one call.

Multi-process safe under gunicorn: prometheus-client writes per-process files when PROMETHEUS_MULTIPROC_DIR is
set, and `render`/`snapshot` aggregate them.
"""

from __future__ import annotations

import functools
import os
from collections import defaultdict
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

READS = Counter("jn_cache_reads", "Cached reads by tool and outcome (hit_l1, hit_l2, miss, ...)", ["tool", "status"])
UPSTREAM_CALLS = Counter("jn_cache_upstream_calls", "Calls to JobNimbus made by the engine", ["tool", "outcome"])
WRITES = Counter("jn_cache_writes", "Entries stored by tier", ["tool", "tier"])
UNCACHEABLE = Counter("jn_cache_uncacheable", "Values served but not cached (too big or refused)", ["tool", "reason"])
BYTES = Counter("jn_cache_bytes", "Encoded bytes read from or written to Redis", ["tool", "direction"])
ERRORS = Counter("jn_cache_errors", "Cache engine errors by kind", ["kind"])
REFRESHES = Counter("jn_cache_refreshes", "Background refreshes by trigger and outcome", ["trigger", "outcome"])
INVALIDATIONS = Counter("jn_cache_invalidations", "Entries dropped by tag invalidation", ["instance"])
BREAKER_TRANSITIONS = Counter("jn_cache_breaker_transitions", "Breaker state changes", ["breaker", "state"])
LATENCY = Histogram(
    "jn_cache_read_seconds",
    "Latency of read_through by outcome",
    ["status"],
    buckets=(0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0),
)


@functools.lru_cache(maxsize=4096)
def _read_series(tool: str, status: str) -> tuple[Any, Any]:
    # labels() validates and locks on every call; a read's two series are looked up once per process instead.
    return READS.labels(tool, status), LATENCY.labels(status)


def count_read(tool: str, status: str, seconds: float) -> None:
    """Count one engine read of `tool` that ended in `status` after `seconds`."""
    reads, latency = _read_series(tool, status)
    reads.inc()
    latency.observe(seconds)


def _registry() -> Any:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def render() -> tuple[bytes, str]:
    """Return the Prometheus text exposition of every process's metrics and its content type."""
    return generate_latest(_registry()), CONTENT_TYPE_LATEST


def snapshot() -> dict[str, dict[tuple[str, ...], float]]:
    """Return counter totals as {metric: {label values: total}}, summed across processes."""
    totals: dict[str, dict[tuple[str, ...], float]] = defaultdict(lambda: defaultdict(float))
    for metric in _registry().collect():
        if metric.type != "counter" or not metric.name.startswith("jn_cache_"):
            continue
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                labels = tuple(v for _, v in sorted(sample.labels.items()))
                totals[metric.name][labels] += sample.value
    return totals
