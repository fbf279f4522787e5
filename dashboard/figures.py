"""Figures computed from the stored history: rates and percentiles over a window (shared by alerts, API, tuner).

`live_window` is the page's view: the MinuteStat rollups merged with the minutes still in Redis (the buckets the
request path's flusher writes every second), so a read shows within seconds, with or without beat. A minute that is
both rolled up and still in Redis is counted once, from Redis (its source: the rollup copies it, never adds to it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Max, QuerySet, Sum

from cacheops.errors import CacheBackendError
from cacheops.reporting import LATENCY_BUCKETS_MS, hit_rate, hits, minute_of, read_minutes
from dashboard.conf import dashboard_setting
from dashboard.models import Dimension, HourStat, MinuteStat
from dashboard.rollup import SUM_FIELDS, merge_hists, stat_values

# Redis keeps minute buckets this long (cacheops.history.MINUTE_BUCKET_TTL_S): older minutes are only in rollups.
LIVE_HORIZON = timedelta(hours=6)


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
        "p50_cached_ms": percentile(cached_hist, 0.5),
        "p95_cached_ms": percentile(cached_hist, 0.95),
        "p50_uncached_ms": percentile(uncached_hist, 0.5),
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


@dataclass
class Summed:
    """Summed counters and histograms of one name."""

    sums: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SUM_FIELDS, 0))
    cached_hist: dict[str, int] = field(default_factory=dict)
    uncached_hist: dict[str, int] = field(default_factory=dict)

    def add(self, values: dict[str, Any]) -> None:
        for f in SUM_FIELDS:
            self.sums[f] += int(values.get(f) or 0)
        self.cached_hist = merge_hists([self.cached_hist, values.get("cached_hist") or {}])
        self.uncached_hist = merge_hists([self.uncached_hist, values.get("uncached_hist") or {}])

    def figures(self) -> dict[str, Any]:
        return {**self.sums, **derived(self.sums, self.cached_hist, self.uncached_hist)}


@dataclass
class LiveWindow:
    """The tool figures of a window: rolled-up minutes plus the minutes still only (or also) in Redis."""

    since: datetime
    names: dict[str, Summed]
    live_minutes: int  # minutes read from Redis
    rolled_minutes: int  # distinct minutes read from MinuteStat
    redis_read: bool = True  # False: Redis did not answer, the figures are the rollups' alone

    def totals(self) -> dict[str, Any]:
        """Return the figures of every tool together (as totals() does for rows)."""
        acc = Summed()
        for one in self.names.values():
            acc.add({**one.sums, "cached_hist": one.cached_hist, "uncached_hist": one.uncached_hist})
        return acc.figures()

    def per_name(self) -> dict[str, dict[str, Any]]:
        """Return the figures of each tool, by name (as per_name() does for rows)."""
        return {name: self.names[name].figures() for name in sorted(self.names)}


def live_minutes(since: datetime, now: datetime) -> list[int]:
    """Return the minutes (epoch seconds) of the window to read from Redis: from the newest rolled-up minute less
    the rollup's lookback (a rollup may have copied a minute before its last flushes), or the whole part of the
    window Redis still holds when nothing is rolled up; never older than Redis keeps buckets."""
    first = max(since, now - LIVE_HORIZON)
    newest = MinuteStat.objects.filter(dimension=Dimension.TOOL, minute__gte=first).aggregate(m=Max("minute"))["m"]
    if newest is not None:
        lookback = timedelta(minutes=int(dashboard_setting("ROLLUP_LOOKBACK_MIN")))
        first = max(first, newest - lookback)
    start, end = minute_of(first.timestamp()), minute_of(now.timestamp())
    if start < first.timestamp():  # the window starts inside this minute: its bucket straddles `since`
        start += 60
    return list(range(start, end + 1, 60))


def live_window(since: datetime, now: datetime) -> LiveWindow:
    """Return the tool figures since `since`: Redis buckets for the recent minutes, MinuteStat rows for the rest."""
    minutes = live_minutes(since, now)
    try:
        buckets = read_minutes(minutes)
        redis_read = True
    except CacheBackendError:  # Redis away: the rollups alone (the page says so through `redis_read`)
        buckets, redis_read = {}, False
    names: dict[str, Summed] = {}
    for grouped in buckets.values():
        for name, counters in grouped.items():
            if not name.startswith("@"):  # tool rows only; "@policy" rows count the same reads again
                names.setdefault(name, Summed()).add(stat_values(counters))
    in_redis = [datetime.fromtimestamp(m, UTC) for m in buckets]
    rows = window_rows(since).exclude(minute__in=in_redis)
    rolled: set[datetime] = set()
    for row in rows.values("name", "minute", "cached_hist", "uncached_hist", *SUM_FIELDS):
        rolled.add(row["minute"])
        names.setdefault(row["name"], Summed()).add(row)
    return LiveWindow(since, names, len(buckets), len(rolled), redis_read)


def floor_to(at: datetime, resolution: str) -> datetime:
    """Return the start of the minute, hour or UTC day holding `at`."""
    at = at.astimezone(UTC).replace(second=0, microsecond=0)
    if resolution == "minute":
        return at
    at = at.replace(minute=0)
    return at.replace(hour=0) if resolution == "day" else at


def live_series(since: datetime, now: datetime, resolution: str) -> dict[datetime, Summed]:
    """Return the tool figures since `since` per minute, hour or UTC day, each minute counted once.

    The hours holding minutes that may still be in Redis are built from their minutes (Redis buckets first, then
    MinuteStat rows for the minutes Redis no longer holds); the hours before them from HourStat rows.
    """
    minutes = live_minutes(since, now)
    try:
        buckets = read_minutes(minutes)
    except CacheBackendError:  # Redis away: the rollups alone
        buckets = {}
    out: dict[datetime, Summed] = {}
    for minute, grouped in buckets.items():
        at = floor_to(datetime.fromtimestamp(minute, UTC), resolution)
        for name, counters in grouped.items():
            if not name.startswith("@"):
                out.setdefault(at, Summed()).add(stat_values(counters))
    # From here on minutes come from minute rows: where hours may be partly in Redis (or the whole 1 h window).
    minute_from = since
    if resolution != "minute" and minutes:
        minute_from = max(since, floor_to(datetime.fromtimestamp(minutes[0], UTC), "hour"))
    in_redis = [datetime.fromtimestamp(m, UTC) for m in buckets]
    minute_rows = window_rows(minute_from).exclude(minute__in=in_redis)
    for row in minute_rows.values("minute", "cached_hist", "uncached_hist", *SUM_FIELDS):
        out.setdefault(floor_to(row["minute"], resolution), Summed()).add(row)
    if resolution != "minute":
        hour_rows = window_rows(since, hourly=True)
        if minutes:
            hour_rows = hour_rows.filter(hour__lt=minute_from)
        for row in hour_rows.values("hour", "cached_hist", "uncached_hist", *SUM_FIELDS):
            out.setdefault(floor_to(row["hour"], resolution), Summed()).add(row)
    return out
