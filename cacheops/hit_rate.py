"""The one definition of the cache hit rate: /cache/stats (cacheops.status) and the dashboard both use it.

A hit is a read answered from cache: from L1 or Redis, stale inside its windows, or by joining another read's
fetch (coalesced). The rate is hits over hits and misses. A `bypass` (a write tool, or the cache switched off)
is not a cache read, so it counts on neither side: the README's figures are computed this way
(hit_l1 + hit_l2 over them and the misses).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

HIT_STATUSES = ("hit_l1", "hit_l2", "stale", "coalesced")
MISS_STATUS = "miss"

# Counts are ints in the dashboard's rows and floats in Prometheus totals; each caller gets its own kind back.
N = TypeVar("N", int, float)


def hits(counts: Mapping[str, N]) -> N:
    """Return how many of the reads counted by status in `counts` were answered from cache."""
    total: N = counts.get(HIT_STATUSES[0], 0)
    for status in HIT_STATUSES[1:]:
        total += counts.get(status, 0)
    return total


def hit_rate(counts: Mapping[str, float]) -> float | None:
    """Return hits over hits and misses, to 4 places; None when no read counts either way."""
    answered = hits(counts)
    judged = answered + counts.get(MISS_STATUS, 0)
    return round(answered / judged, 4) if judged else None
