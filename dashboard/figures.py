"""Figures computed from the stored history: rates and percentiles over a window (shared by alerts, API, tuner)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import QuerySet, Sum

from cacheops.reporting import LATENCY_BUCKETS_MS, hit_rate, hits
from dashboard.models import Dimension, HourStat, MinuteStat
from dashboard.rollup import SUM_FIELDS, merge_hists


def window_rows(since: datetime, *, dimension: str = Dimension.TOOL, hourly: bool = False) -> QuerySet[Any]:
    """Return the minute (or hour) rows of `dimension` since `since`."""
    if hourly:
        return HourStat.objects.filter(dimension=dimension, hour__gte=since)
    return MinuteStat.objects.filter(dimension=dimension, minute__gte=since)


def totals(rows: QuerySet[Any]) -> dict[str, Any]:
    """Return summed counters of `rows` with hit rate, averages and p95s."""
    sums = {f: v or 0 for f, v in rows.aggregate(**{f: Sum(f) for f in SUM_FIELDS}).items()}
    cached_hist = merge_hists(list(rows.values_list("cached_hist", flat=True)))
    uncached_hist = merge_hists(list(rows.values_list("uncached_hist", flat=True)))
    return {**sums, **derived(sums, cached_hist, uncached_hist)}


def derived(sums: dict[str, int], cached_hist: dict[str, int], uncached_hist: dict[str, int]) -> dict[str, Any]:
    """Return hit rate, upstream error rate and latency figures from summed counters and histograms."""
    answered = hits(sums)
    cached_n, uncached_n = sum(cached_hist.values()), sum(uncached_hist.values())
    upstream = sum(sums.get(f"upstream_{o}", 0) for o in ("ok", "error", "unavailable"))
    failed = sums.get("upstream_error", 0) + sums.get("upstream_unavailable", 0)
    avg_cached = sums.get("cached_us", 0) / cached_n / 1000 if cached_n else None
    avg_uncached = sums.get("uncached_us", 0) / uncached_n / 1000 if uncached_n else None
    return {
        "hits": answered,
        "hit_rate": hit_rate(sums),
        "upstream_calls": upstream,
        "upstream_calls_saved": answered,
        "upstream_error_rate": round(failed / upstream, 4) if upstream else None,
        "avg_cached_ms": _round(avg_cached),
        "avg_uncached_ms": _round(avg_uncached),
        "p95_cached_ms": percentile(cached_hist, 0.95),
        "p95_uncached_ms": percentile(uncached_hist, 0.95),
        "improvement": round(1 - avg_cached / avg_uncached, 4) if avg_cached and avg_uncached else None,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def percentile(hist: dict[str, int], q: float) -> float | None:
    """Return the upper bound (ms) of the bucket holding quantile `q` of a histogram, or None when empty."""
    total = sum(hist.values())
    if not total:
        return None
    seen = 0
    for bound in (*[str(b) for b in LATENCY_BUCKETS_MS], "inf"):
        seen += int(hist.get(bound, 0))
        if seen >= q * total:
            return float(bound) if bound != "inf" else float(LATENCY_BUCKETS_MS[-1] * 2)
    return None


def per_name(rows: QuerySet[Any]) -> dict[str, dict[str, Any]]:
    """Return totals() of `rows` grouped by tool (or policy) name."""
    return {name: totals(rows.filter(name=name)) for name in sorted(set(rows.values_list("name", flat=True)))}
