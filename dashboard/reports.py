"""The dashboard's figures as JSON-ready dicts: one function per endpoint, shared by the admin page."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from django.apps import apps as django_apps
from django.db.models import Count
from django.db.models.functions import TruncHour
from django.utils import timezone

from cacheops.models import InvalidationEvent
from cacheops.reporting import (
    KEY_SET_MAX,
    all_states,
    breaker_details,
    dropped_samples,
    entity_of_key,
    recipes,
    redis_figures,
    top_keys,
)
from dashboard import figures, ttl
from dashboard.apps import DashboardConfig
from dashboard.conf import dashboard_setting
from dashboard.models import Alert, AlertState

PERIODS: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
# The words each period's figures are labelled with on the page.
PERIOD_WINDOWS: dict[str, str] = {"1h": "last hour", "24h": "last 24 h", "7d": "last 7 days", "30d": "last 30 days"}
# Keys read at least this often in the period are warming candidates.
WARM_CANDIDATE_MIN_READS = 5


def overview(period: str = "24h", now: datetime | None = None) -> dict[str, Any]:
    """Return everything the dashboard page shows: the period's rollups merged with the minutes still in Redis."""
    now = now or timezone.now()
    start = now - PERIODS[period]
    live = figures.live_window(start, now)
    t = live.totals()
    window = PERIOD_WINDOWS[period]
    states = all_states()
    return {
        "generated": now.isoformat(),
        "generated_local": local_time(now),
        "period": period,
        "window": window,
        "live": {
            "minutes_from_redis": live.live_minutes,
            "minutes_from_rollups": live.rolled_minutes,
            "redis_read": live.redis_read,
            "text": "includes the last minutes, seconds old"
            if live.redis_read
            else "Redis unavailable: the last minutes are missing until it answers",
        },
        "totals": {
            **t,
            **rate_words(t),
            "window": window,
            "hits_by_tier": {"l1": t["hit_l1"], "l2": t["hit_l2"]},
            "improvement_words": _improvement_words(t["avg_cached_ms"], t["avg_uncached_ms"]),
            "upstream_failed": t["upstream_error"] + t["upstream_unavailable"],
            "upstream_failed_text": _failed_words(t, window),
        },
        "tools": [{"tool": name, **v, **rate_words(v), "window": window} for name, v in live.per_name().items()],
        "recent": recent(now),
        "redis": redis_figures(),
        "uptime_s": uptime_s(),
        "uptime": uptime(now),
        "breakers": states,
        "reachability": reachability(),
        "invalidations_per_hour": invalidations_per_hour(start),
        "open_alerts": Alert.objects.filter(state=AlertState.OPEN).count(),
        "dropped_samples": dropped_samples(),
    }


def recent(now: datetime) -> dict[str, Any]:
    """Return the figures of the alert window (the window the alerts judge), so a tile can sit beside an alert."""
    minutes = int(dashboard_setting("ALERT_WINDOW_MIN"))
    t = figures.live_window(now - timedelta(minutes=minutes), now).totals()
    window = f"last {minutes} min"
    pct, text = percent(t["hit_rate"])
    return {
        "window": window,
        "requests": t["requests"],
        "hit_rate": t["hit_rate"],
        "hit_rate_pct": pct,
        "hit_rate_text": text,
        "text": f"hit rate {text} over the {window} ({t['requests']} requests)"
        if pct is not None
        else f"no cache reads in the {window}",
    }


def local_time(at: datetime | None) -> str | None:
    """Return `at` as a person reads it, in the server's TIME_ZONE with the zone: "2026-12-08 01:20 UTC"."""
    if at is None:
        return None
    return f"{timezone.localtime(at):%Y-%m-%d %H:%M %Z}"


def percent(rate: float | None) -> tuple[float | None, str]:
    """Return a 0-1 rate as a percentage with one decimal, and its words ("86.8 %", or "no data")."""
    if rate is None:
        return None, "no data"
    pct = round(rate * 100, 1)
    return pct, f"{pct:.1f} %"


def rate_words(figs: dict[str, Any]) -> dict[str, Any]:
    """Return the percentage keys added beside a figures dict's fractions (the fractions stay for old readers)."""
    out: dict[str, Any] = {}
    for name in ("hit_rate", "upstream_error_rate", "improvement"):
        if name in figs:
            out[f"{name}_pct"], out[f"{name}_text"] = percent(figs[name])
    return out


def duration_words(seconds: float) -> str:
    """Return a duration as a person says it: "45 s", "12 min", "3 h 5 min", "2 d 4 h"."""
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def uptime(now: datetime | None = None) -> dict[str, Any]:
    """Return how long the serving process has been up, in words and from when.

    The basis is this web process (its start is noted when its apps are ready): other workers of the service
    may have started earlier or later; a restart of the service resets it.
    """
    now = now or timezone.now()
    seconds = uptime_s()
    since = now - timedelta(seconds=seconds)
    return {
        "seconds": seconds,
        "text": duration_words(seconds),
        "since": since.isoformat(),
        "since_local": local_time(since),
        "basis": "this web process (started when its apps were ready)",
    }


def reachability() -> list[dict[str, Any]]:
    """Return, for Redis and each JobNimbus instance this process has called, whether it answers, in words.

    "text" is what the page shows; "detail" is the breaker behind it, for a tooltip.
    """
    details = breaker_details()
    out = []
    names = ["redis", *sorted(n for n in details if n != "redis")]
    if len(names) == 1:  # no JobNimbus call yet in this process: nothing has failed
        names.append("jobnimbus")
    for name in names:
        info = details.get(name, {"state": "CLOSED", "since": None})
        state, since_ts = info["state"], info["since"]
        service = "Redis" if name == "redis" else "JobNimbus"
        instance = name.partition(":")[2]
        label = f"{service} ({instance})" if instance else service
        since = datetime.fromtimestamp(since_ts, UTC) if since_ts else None
        ok = state == "CLOSED"
        if ok:
            text = f"{label} reachable"
        else:
            failing = "unreachable" if service == "Redis" else "failing"
            text = f"{label} {failing} since {local_time(since)}" if since else f"{label} {failing}"
            if state == "HALF_OPEN":
                text += " (trying again)"
        detail = (
            f"circuit breaker {name}: {state}"
            if name in details
            else "no JobNimbus call made by this process yet, so no failure seen"
        )
        out.append(
            {
                "name": name,
                "service": service,
                "ok": ok,
                "text": text,
                "state": state,
                "detail": detail,
                "since": since.isoformat() if since else None,
                "since_local": local_time(since),
            }
        )
    return out


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
    return [
        {"hour": r["hour"].isoformat(), "hour_local": local_time(r["hour"]), "source": r["source"], "count": r["count"]}
        for r in rows
    ]


# The points of a period: per minute for the last hour, per hour up to a week, per UTC day beyond.
RESOLUTIONS: dict[str, str] = {"1h": "minute", "24h": "hour", "7d": "hour", "30d": "day"}


def trends(period: str, now: datetime | None = None) -> dict[str, Any]:
    """Return the period's series (requests by outcome, hit rate, latency, JobNimbus calls and errors) at the
    resolution the period needs, the minutes still in Redis included (a read shows within seconds)."""
    now = now or timezone.now()
    resolution = RESOLUTIONS[period]
    buckets = figures.live_series(now - PERIODS[period], now, resolution)
    return {
        "period": period,
        "window": PERIOD_WINDOWS[period],
        "resolution": resolution,
        "points": [_point(at, acc, resolution) for at, acc in sorted(buckets.items())],
    }


def _point(at: datetime, acc: figures.Summed, resolution: str) -> dict[str, Any]:
    sums = acc.sums
    d = figures.derived(sums, acc.cached_hist, acc.uncached_hist)
    return {
        "t": at.isoformat(),
        "t_local": local_time(at) if resolution != "day" else f"{timezone.localtime(at):%Y-%m-%d}",
        "requests": sums["requests"],
        "hit_l1": sums["hit_l1"],
        "hit_l2": sums["hit_l2"],
        "miss": sums["miss"],
        "stale": sums["stale"],
        "coalesced": sums["coalesced"],
        "hit_rate": d["hit_rate"],
        **rate_words({"hit_rate": d["hit_rate"]}),
        "avg_cached_ms": d["avg_cached_ms"],
        "avg_uncached_ms": d["avg_uncached_ms"],
        "p50_cached_ms": d["p50_cached_ms"],
        "p95_cached_ms": d["p95_cached_ms"],
        "p50_uncached_ms": d["p50_uncached_ms"],
        "p95_uncached_ms": d["p95_uncached_ms"],
        "upstream_calls": d["upstream_calls"],
        "upstream_calls_saved": d["upstream_calls_saved"],
        "errors": sums["upstream_error"] + sums["upstream_unavailable"],
    }


def _days(period: str, now: datetime) -> list[float]:
    days = PERIODS[period].days or 1
    return [(now - timedelta(days=n)).timestamp() for n in range(days + 1)]


def top_queries(period: str, limit: int, now: datetime | None = None) -> list[dict[str, Any]]:
    """Return the most-read keys of the period (summed over its days' sorted sets), most read first.

    Each row says in words what was read ("query": the tool and its arguments, from the recipe history remembered
    for the key; "a read of <entity>" when none is known). "key" stays for old readers: the page never shows it.
    """
    now = now or timezone.now()
    counts: dict[str, int] = defaultdict(int)
    for day in _days(period, now):
        for member, n in top_keys(day, KEY_SET_MAX):
            counts[member] += n
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    known = recipes([m for m, _ in ranked])
    return [
        {
            "tool": m.partition("|")[0],
            "key": m.partition("|")[2],
            "reads": n,
            **query_words(m.partition("|")[0], known.get(m), entity_of_key(m)),
            "window": PERIOD_WINDOWS[period],
        }
        for m, n in ranked
    ]


def _value_words(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "none"}[value]
    if isinstance(value, list | tuple):
        return ", ".join(_value_words(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {_value_words(v)}" for k, v in value.items())
    return str(value)


def query_words(tool: str, recipe: dict[str, Any] | None, entity: str | None) -> dict[str, Any]:
    """Return what a key's reads were, in words: {"query", "arguments": [{"name", "value"}], "policy"}."""
    if recipe is None:
        what = f"a read of {entity}" if entity else "a read (arguments not recorded)"
        return {"query": f"{tool}: {what}" if tool else what, "arguments": [], "policy": None}
    args = recipe.get("args") or {}
    arguments = [{"name": str(k), "value": _value_words(v)} for k, v in sorted(args.items(), key=lambda kv: str(kv[0]))]
    tool = str(recipe.get("tool") or tool)
    shown = ", ".join(f"{a['name']} = {a['value']}" for a in arguments)
    return {
        "query": f"{tool} ({shown})" if shown else f"{tool} (no arguments)",
        "arguments": arguments,
        "policy": recipe.get("policy"),
    }


def performance(period: str, now: datetime | None = None) -> dict[str, Any]:
    """Return requests, time saved, JobNimbus calls avoided and per-tool latency cached vs uncached."""
    now = now or timezone.now()
    live = figures.live_window(now - PERIODS[period], now)
    t = live.totals()
    saved_ms = (
        (t["avg_uncached_ms"] - t["avg_cached_ms"]) * t["hits"] if t["avg_uncached_ms"] and t["avg_cached_ms"] else 0
    )
    return {
        "period": period,
        "window": PERIOD_WINDOWS[period],
        "requests": t["requests"],
        "hit_rate": t["hit_rate"],
        **rate_words({"hit_rate": t["hit_rate"]}),
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
                **rate_words({"hit_rate": v["hit_rate"], "improvement": v["improvement"]}),
                "improvement_words": _improvement_words(v["avg_cached_ms"], v["avg_uncached_ms"]),
            }
            for name, v in live.per_name().items()
        ],
    }


def _failed_words(t: dict[str, Any], window: str) -> str:
    """Return the JobNimbus failures of a window in words (the breaker only opens on failures in a row)."""
    failed = t["upstream_error"] + t["upstream_unavailable"]
    if not t["upstream_calls"]:
        return f"no JobNimbus calls in the {window}"
    said = f"{failed} of {t['upstream_calls']} JobNimbus calls failed in the {window}"
    if t["upstream_breaker_open"]:
        said += f"; {t['upstream_breaker_open']} refused while JobNimbus was failing"
    return said


def _improvement_words(cached_ms: float | None, uncached_ms: float | None) -> str:
    """Return what "improvement" means for a tool, in words."""
    if not cached_ms or not uncached_ms:
        return "not enough cached and uncached reads to compare"
    pct = round((1 - cached_ms / uncached_ms) * 100, 1)
    return f"a cached read takes {cached_ms:g} ms instead of {uncached_ms:g} ms from JobNimbus ({pct:.1f} % faster)"


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
    """Return one alert as JSON: the stored fields, plus its details in words (lists, labelled figures, local
    times) for the page."""
    return {
        "id": a.pk,
        "rule": a.rule,
        "title": ALERT_TITLES.get(a.rule, a.rule.replace("_", " ")),
        "scope": a.scope,
        "level": a.level,
        "message": a.message,
        "actions": a.actions,
        "actions_list": [str(x) for x in a.actions] if isinstance(a.actions, list) else [str(a.actions)],
        "figures_list": figure_rows(a.figures if isinstance(a.figures, dict) else {}),
        "state": a.state,
        "first_seen": a.first_seen.isoformat(),
        "first_seen_local": local_time(a.first_seen),
        "last_seen": a.last_seen.isoformat(),
        "last_seen_local": local_time(a.last_seen),
        "acknowledged_by": a.acknowledged_by.get_username() if a.acknowledged_by else None,
        "acknowledged_at": a.acknowledged_at.isoformat() if a.acknowledged_at else None,
        "acknowledged_at_local": local_time(a.acknowledged_at),
    }


ALERT_TITLES = {
    "low_hit_rate": "Low hit rate",
    "redis_breaker_open": "Redis unavailable",
    "invalidation_storm": "Invalidation storm",
    "redis_memory": "Redis memory nearly full",
    "upstream_errors": "JobNimbus calls failing",
    "slow_cache": "Slow cached reads",
}

# Alert figure name -> (label, kind): kind says how the value reads ("pct" for a 0-1 rate).
FIGURE_LABELS: dict[str, tuple[str, str]] = {
    "hit_rate": ("Hit rate", "pct"),
    "requests": ("Requests", "count"),
    "window_min": ("Window", "window"),
    "breaker": ("Redis breaker", "text"),
    "ping_ms": ("Redis ping", "ms"),
    "invalidations": ("Invalidations in the last hour", "count"),
    "used": ("Redis memory used", "bytes"),
    "max": ("Redis maxmemory", "bytes"),
    "error_rate": ("JobNimbus calls failed", "pct"),
    "calls": ("JobNimbus calls", "count"),
    "breaker_open": ("Calls refused by an open breaker", "count"),
    "p95_cached_ms": ("p95 latency of cached reads", "ms"),
}


def _figure_text(value: Any, kind: str) -> str:
    if value is None:
        return "no answer" if kind == "ms" else "none"
    if kind == "pct" and isinstance(value, int | float):
        return percent(float(value))[1]
    if kind == "ms" and isinstance(value, int | float):
        return f"{value:g} ms"
    if kind == "window" and isinstance(value, int | float):
        return f"last {value:g} min"
    if kind == "bytes" and isinstance(value, int | float):
        return f"{value / 1_048_576:.1f} MiB" if value >= 1_048_576 else f"{int(value)} bytes"
    return str(value)


def figure_rows(figs: dict[str, Any]) -> list[dict[str, Any]]:
    """Return an alert's figures as labelled rows: [{"name", "label", "value", "text"}], in a stable order."""
    order = list(FIGURE_LABELS)
    names = sorted(figs, key=lambda n: (order.index(n) if n in order else len(order), n))
    rows = []
    for name in names:
        label, kind = FIGURE_LABELS.get(name, (name.replace("_", " ").capitalize(), "text"))
        value = figs[name]
        rows.append({"name": name, "label": label, "value": value, "text": _figure_text(value, kind)})
    return rows
