"""Roll the Redis minute buckets (cacheops.history) into MinuteStat, minutes into HourStat, and prune both.

Idempotent by construction: a row is upserted with the values read from its source (the bucket, or the sum of
the hour's minute rows), never incremented, so rerunning any step gives the same rows.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from cacheops.reporting import UPSTREAM_OUTCOMES, minute_of, read_minute, trim_key_counts
from dashboard.conf import dashboard_setting
from dashboard.models import Dimension, HourStat, MinuteStat

STATUS_FIELDS = ("requests", "hit_l1", "hit_l2", "miss", "stale", "coalesced", "bypass")
SUM_FIELDS = (
    *STATUS_FIELDS,
    "upstream_ok",
    "upstream_error",
    "upstream_unavailable",
    "upstream_breaker_open",
    "cached_us",
    "uncached_us",
)


def stat_values(counters: dict[str, int]) -> dict[str, Any]:
    """Return MinuteStat field values from one tool's bucket counters."""
    values: dict[str, Any] = {name: counters.get(name, 0) for name in STATUS_FIELDS}
    for outcome in UPSTREAM_OUTCOMES:
        values[f"upstream_{outcome}"] = counters.get(f"up:{outcome}", 0)
    for kind in ("cached", "uncached"):
        values[f"{kind}_us"] = counters.get(f"us:{kind}", 0)
        prefix = f"h:{kind}:"
        values[f"{kind}_hist"] = {k.removeprefix(prefix): v for k, v in counters.items() if k.startswith(prefix)}
    return values


def rollup_minute(minute: int) -> int:
    """Upsert the MinuteStat rows of `minute` (epoch seconds) from its bucket; return how many rows."""
    grouped = read_minute(minute)
    at = datetime.fromtimestamp(minute, UTC)
    with transaction.atomic():
        for name, counters in grouped.items():
            dimension = Dimension.POLICY if name.startswith("@") else Dimension.TOOL
            MinuteStat.objects.update_or_create(
                minute=at, dimension=dimension, name=name.removeprefix("@"), defaults=stat_values(counters)
            )
    return len(grouped)


def merge_hists(rows: list[dict[str, int]]) -> dict[str, int]:
    """Return the bucket-wise sum of latency histograms."""
    total: dict[str, int] = {}
    for hist in rows:
        for bucket, count in hist.items():
            total[bucket] = total.get(bucket, 0) + int(count)
    return total


def rollup_hour(hour: datetime) -> int:
    """Upsert the HourStat rows of `hour` as the sums of its MinuteStat rows; return how many rows."""
    minutes = MinuteStat.objects.filter(minute__gte=hour, minute__lt=hour + timedelta(hours=1))
    groups = minutes.values("dimension", "name").annotate(**{f: Sum(f) for f in SUM_FIELDS})
    with transaction.atomic():
        for group in groups:
            rows = minutes.filter(dimension=group["dimension"], name=group["name"])
            values = {f: group[f] or 0 for f in SUM_FIELDS}
            values["cached_hist"] = merge_hists(list(rows.values_list("cached_hist", flat=True)))
            values["uncached_hist"] = merge_hists(list(rows.values_list("uncached_hist", flat=True)))
            HourStat.objects.update_or_create(
                hour=hour, dimension=group["dimension"], name=group["name"], defaults=values
            )
    return len(groups)


def rollup_recent(now: float | None = None) -> int:
    """Roll up the last complete minutes (lookback from settings) and their hours; return minute rows written."""
    now = time.time() if now is None else now
    current = minute_of(now)
    lookback = int(dashboard_setting("ROLLUP_LOOKBACK_MIN"))
    minutes = [current - 60 * i for i in range(1, lookback + 1)]
    written = sum(rollup_minute(m) for m in minutes)
    for hour in sorted({datetime.fromtimestamp(m - m % 3600, UTC) for m in minutes}):
        rollup_hour(hour)
    trim_key_counts(now)
    return written


def prune(now: datetime | None = None) -> tuple[int, int]:
    """Delete minute rows older than the minute retention and hour rows older than the hour retention."""
    now = now or timezone.now()
    minutes, _ = MinuteStat.objects.filter(
        minute__lt=now - timedelta(hours=int(dashboard_setting("MINUTE_RETENTION_H")))
    ).delete()
    hours, _ = HourStat.objects.filter(
        hour__lt=now - timedelta(days=int(dashboard_setting("HOUR_RETENTION_D")))
    ).delete()
    return minutes, hours
