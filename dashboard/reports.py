"""The dashboard's figures as JSON-ready dicts: one function per endpoint, shared by the admin page."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any, cast

from django.apps import apps as django_apps
from django.db.models import Count
from django.db.models.functions import TruncHour
from django.utils import timezone

from cacheops.models import InvalidationEvent
from cacheops.reporting import KEY_SET_MAX, all_states, dropped_samples, redis_figures, top_keys
from dashboard import figures, ttl
from dashboard.apps import DashboardConfig
from dashboard.models import Alert, AlertState, Dimension, HourStat
from dashboard.rollup import SUM_FIELDS, merge_hists

PERIODS: dict[str, timedelta] = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
# Keys read at least this often in the period are warming candidates.
WARM_CANDIDATE_MIN_READS = 5


def overview(period: str = "24h", now: datetime | None = None) -> dict[str, Any]:
    """Return everything the dashboard page shows."""
    now = now or timezone.now()
    start = now - PERIODS[period]
    rows = figures.window_rows(start)
    t = figures.totals(rows)
    return {
        "generated": now.isoformat(),
        "period": period,
        "totals": {**t, "hits_by_tier": {"l1": t["hit_l1"], "l2": t["hit_l2"]}},
        "tools": [{"tool": name, **v} for name, v in figures.per_name(rows).items()],
        "redis": redis_figures(),
        "uptime_s": uptime_s(),
        "breakers": all_states(),
        "invalidations_per_hour": invalidations_per_hour(start),
        "open_alerts": Alert.objects.filter(state=AlertState.OPEN).count(),
        "dropped_samples": dropped_samples(),
    }


def uptime_s() -> int:
    """Return how long this process has been serving: since its apps were ready, not since this module loaded
    (it is imported by the first dashboard request)."""
    config = cast(DashboardConfig, django_apps.get_app_config("dashboard"))
    return int(time.time() - config.started_at)


def invalidations_per_hour(start: datetime) -> list[dict[str, Any]]:
    """Return [{hour, source, count}] of invalidation events since `start`."""
    rows = (
        InvalidationEvent.objects.filter(received__gte=start)
        .annotate(hour=TruncHour("received"))
        .values("hour", "source")
        .annotate(count=Count("id"))
        .order_by("hour", "source")
    )
    return [{"hour": r["hour"].isoformat(), "source": r["source"], "count": r["count"]} for r in rows]


def trends(period: str, now: datetime | None = None) -> dict[str, Any]:
    """Return per-hour (per-day for 30d) series of requests, hit rate, latency and errors."""
    now = now or timezone.now()
    rows = HourStat.objects.filter(dimension=Dimension.TOOL, hour__gte=now - PERIODS[period])
    buckets: dict[datetime, list[HourStat]] = defaultdict(list)
    for row in rows:
        at = row.hour.replace(hour=0) if period == "30d" else row.hour
        buckets[at].append(row)
    return {"period": period, "points": [_point(at, group) for at, group in sorted(buckets.items())]}


def _point(at: datetime, group: list[HourStat]) -> dict[str, Any]:
    sums = {f: sum(getattr(r, f) for r in group) for f in SUM_FIELDS}
    d = figures.derived(
        sums, merge_hists([r.cached_hist for r in group]), merge_hists([r.uncached_hist for r in group])
    )
    return {
        "t": at.isoformat(),
        "requests": sums["requests"],
        "hit_rate": d["hit_rate"],
        "avg_cached_ms": d["avg_cached_ms"],
        "avg_uncached_ms": d["avg_uncached_ms"],
        "p95_cached_ms": d["p95_cached_ms"],
        "errors": sums["upstream_error"] + sums["upstream_unavailable"],
    }


def _days(period: str, now: datetime) -> list[float]:
    days = PERIODS[period].days or 1
    return [(now - timedelta(days=n)).timestamp() for n in range(days + 1)]


def top_queries(period: str, limit: int, now: datetime | None = None) -> list[dict[str, Any]]:
    """Return the most-read keys of the period (summed over its days' sorted sets), most read first."""
    now = now or timezone.now()
    counts: dict[str, int] = defaultdict(int)
    for day in _days(period, now):
        for member, n in top_keys(day, KEY_SET_MAX):
            counts[member] += n
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return [{"tool": m.partition("|")[0], "key": m.partition("|")[2], "reads": n} for m, n in ranked]


def performance(period: str, now: datetime | None = None) -> dict[str, Any]:
    """Return requests, time saved, JobNimbus calls avoided and per-tool latency cached vs uncached."""
    now = now or timezone.now()
    rows = figures.window_rows(now - PERIODS[period])
    t = figures.totals(rows)
    saved_ms = (
        (t["avg_uncached_ms"] - t["avg_cached_ms"]) * t["hits"] if t["avg_uncached_ms"] and t["avg_cached_ms"] else 0
    )
    return {
        "period": period,
        "requests": t["requests"],
        "hit_rate": t["hit_rate"],
        "time_saved_s": round(saved_ms / 1000, 3),
        "jobnimbus_calls_made": t["upstream_calls"],
        "jobnimbus_calls_avoided": t["upstream_calls_saved"],
        "tools": [
            {
                "tool": name,
                "requests": v["requests"],
                "uncached_avg_ms": v["avg_uncached_ms"],
                "cached_avg_ms": v["avg_cached_ms"],
                "improvement": v["improvement"],
            }
            for name, v in figures.per_name(rows).items()
        ],
    }


def recommendations(now: datetime | None = None) -> dict[str, Any]:
    """Return TTL proposals with evidence, recent tuner changes, key normalisation hints and warming candidates."""
    now = now or timezone.now()
    keys = top_queries("24h", KEY_SET_MAX, now)
    return {
        "ttl": [decision_json(d) for d in ttl.plan(now)],
        "recent_changes": ttl.recent_changes(20),
        "key_normalisation": normalisation_hints(keys),
        "warming_candidates": [k for k in keys if k["reads"] >= WARM_CANDIDATE_MIN_READS][:20],
    }


def decision_json(d: Any) -> dict[str, Any]:
    """Return a tuner decision as JSON: up, down or keep, with its reason and evidence."""
    action = "keep" if not d.changes else ("up" if d.new_ttl_s > d.current_ttl_s else "down")
    return {
        "policy": d.policy,
        "action": action,
        "current_ttl_s": d.current_ttl_s,
        "proposed_ttl_s": d.new_ttl_s,
        "reason": d.reason,
        "evidence": d.evidence,
    }


def normalisation_hints(keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return tools whose reads scatter over many keys read once (arguments that vary needlessly)."""
    per_tool: dict[str, list[int]] = defaultdict(list)
    for k in keys:
        per_tool[k["tool"]].append(k["reads"])
    hints = []
    for tool, reads in sorted(per_tool.items()):
        once = sum(1 for n in reads if n == 1)
        if len(reads) >= 10 and once / len(reads) > 0.5:
            hints.append(
                {
                    "tool": tool,
                    "distinct_keys": len(reads),
                    "read_once": once,
                    "hint": "most keys are read once: round date ranges, fix page sizes, drop volatile arguments",
                }
            )
    return hints


def alert_rows(state: str | None = None) -> list[dict[str, Any]]:
    """Return alerts (optionally of one state), newest first."""
    rows = Alert.objects.select_related("acknowledged_by")
    if state:
        rows = rows.filter(state=state)
    return [alert_json(a) for a in rows[:200]]


def alert_json(a: Alert) -> dict[str, Any]:
    """Return one alert as JSON."""
    return {
        "id": a.pk,
        "rule": a.rule,
        "scope": a.scope,
        "level": a.level,
        "message": a.message,
        "actions": a.actions,
        "state": a.state,
        "first_seen": a.first_seen.isoformat(),
        "last_seen": a.last_seen.isoformat(),
        "acknowledged_by": a.acknowledged_by.get_username() if a.acknowledged_by else None,
        "acknowledged_at": a.acknowledged_at.isoformat() if a.acknowledged_at else None,
    }
