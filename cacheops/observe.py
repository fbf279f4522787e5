"""The engine's one observation sink: each read, JobNimbus call and store is reported here once, and this module
feeds both the Prometheus counters (cacheops.metrics) and the dashboard's history (cacheops.history).

Nothing here raises or waits on Redis: metrics are in-process counters and the history only buffers (its flusher
thread writes to Redis). Figures that only Prometheus shows (bytes, refreshes, invalidations, uncacheable values)
go to it alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cacheops import history, metrics

if TYPE_CHECKING:
    from cacheops.types import ReadRequest

# Upstream outcomes of calls that actually left for JobNimbus; the history keeps only those.
_SENT_OUTCOMES = frozenset(history.UPSTREAM_OUTCOMES)


def read(request: ReadRequest, key: str, status: str, seconds: float) -> None:
    """Report one engine read of `request`, stored under `key`, that ended in `status` after `seconds`."""
    metrics.count_read(request.tool, status, seconds)
    history.observe_read(request, key, status, seconds)


def upstream(tool: str, outcome: str) -> None:
    """Report one JobNimbus call made (or refused) for `tool`: ok, error, unavailable, breaker_open or busy.

    A `busy` refusal never left this server, so it is not in the history of JobNimbus calls.
    """
    metrics.UPSTREAM_CALLS.labels(tool, outcome).inc()
    if outcome in _SENT_OUTCOMES:
        history.record_upstream(tool, outcome)


def stored(tool: str, tier: str, size: int | None = None) -> None:
    """Report one entry of `tool` stored in `tier` ("l1" or "l2"), with its encoded `size` when it went to Redis."""
    metrics.WRITES.labels(tool, tier).inc()
    if size is not None:
        metrics.BYTES.labels(tool, "written").inc(size)


def loaded(tool: str, size: int) -> None:
    """Report `size` encoded bytes of `tool` read from Redis."""
    metrics.BYTES.labels(tool, "read").inc(size)


def uncacheable(tool: str, reason: str) -> None:
    """Report a value of `tool` served but not stored ("too_big", "invalidated_during_fetch")."""
    metrics.UNCACHEABLE.labels(tool, reason).inc()


def refreshed(trigger: str, outcome: str) -> None:
    """Report one background refresh ("swr" or "xfetch") and how it ended."""
    metrics.REFRESHES.labels(trigger, outcome).inc()


def invalidated(instance: str, dropped: int) -> None:
    """Report `dropped` Redis entries of `instance` removed by a tag invalidation."""
    metrics.INVALIDATIONS.labels(instance).inc(dropped)
