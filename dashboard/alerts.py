"""Alert rules and their evaluation: each rule returns the findings it sees now; evaluation opens, refreshes and
resolves Alert rows so that there is at most one unresolved alert per rule and scope.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count
from django.utils import timezone

from cacheops.models import InvalidationEvent
from cacheops.reporting import redis_breaker_state, redis_figures, redis_ping_ms
from dashboard import figures
from dashboard.conf import dashboard_setting
from dashboard.models import Alert, AlertLevel, AlertState
from dashboard.notify import notify_all

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Finding:
    """A condition a rule sees now."""

    rule: str
    level: str
    message: str
    actions: list[str]
    scope: str = "global"
    figures: dict[str, Any] = field(default_factory=dict)


def _window(now: datetime) -> datetime:
    return now - timedelta(minutes=_window_min())


def _window_min() -> int:
    return int(dashboard_setting("ALERT_WINDOW_MIN"))


def _window_totals(now: datetime) -> dict[str, Any]:
    """Return the figures of the alert window as the page computes them: rollups plus the minutes still in Redis."""
    return figures.live_window(_window(now), now).totals()


def low_hit_rate(now: datetime) -> list[Finding]:
    """Fire when the hit rate of the window is below the threshold with enough requests to judge."""
    t = _window_totals(now)
    threshold = float(dashboard_setting("ALERT_LOW_HIT_RATE"))
    if t["requests"] <= int(dashboard_setting("ALERT_MIN_REQUESTS")) or t["hit_rate"] is None:
        return []
    if t["hit_rate"] >= threshold:
        return []
    return [
        Finding(
            "low_hit_rate",
            AlertLevel.WARNING,
            f"Hit rate {t['hit_rate'] * 100:.0f} % over the last {_window_min()} min ({t['requests']} requests) "
            f"is below {threshold * 100:.0f} %.",
            [
                "Check the per-tool table for tools with mostly misses",
                "Look at the TTL recommendations: TTLs may be too short",
                "Check for an invalidation storm (webhook loop, bulk import)",
            ],
            figures={"hit_rate": t["hit_rate"], "requests": t["requests"], "window_min": _window_min()},
        )
    ]


def redis_down(now: datetime) -> list[Finding]:
    """Fire when Redis does not answer or this process's Redis breaker is not closed."""
    latency = redis_ping_ms()
    state = redis_breaker_state()
    if latency is not None and state == "CLOSED":
        return []
    return [
        Finding(
            "redis_breaker_open",
            AlertLevel.CRITICAL,
            f"Redis is unavailable (no answer to PING, breaker {state}); requests are served uncached from JobNimbus.",
            [
                "Check the Redis server and network",
                "Check Redis memory and eviction policy",
                "Watch JobNimbus rate limits",
            ],
            figures={"breaker": state, "ping_ms": latency},
        )
    ]


def invalidation_storm(now: datetime) -> list[Finding]:
    """Fire, per instance, when more invalidation events than the threshold arrived in the last hour."""
    limit = int(dashboard_setting("ALERT_INVALIDATIONS_PER_H"))
    rows = (
        InvalidationEvent.objects.filter(received__gte=now - timedelta(hours=1))
        .values("instance")
        .annotate(n=Count("id"))
        .filter(n__gt=limit)
    )
    return [
        Finding(
            "invalidation_storm",
            AlertLevel.WARNING,
            f"{row['n']} invalidations in the last hour on {row['instance']} (more than {limit}).",
            [
                "Look for a JobNimbus automation firing in a loop",
                "Check for a bulk import or sync job",
                "Consider shorter TTLs instead of invalidating for the busiest entity",
            ],
            scope=row["instance"],
            figures={"invalidations": row["n"]},
        )
        for row in rows
    ]


def redis_memory(now: datetime) -> list[Finding]:
    """Fire when Redis uses more than the threshold share of its maxmemory (nothing when maxmemory is unset)."""
    info = redis_figures() or {}
    used, maximum = info.get("usedMemory") or 0, info.get("maxMemory") or 0
    ratio = float(dashboard_setting("ALERT_REDIS_MEMORY_RATIO"))
    if not maximum or used / maximum <= ratio:
        return []
    return [
        Finding(
            "redis_memory",
            AlertLevel.WARNING,
            f"Redis uses {used / maximum:.0%} of maxmemory ({used} of {maximum} bytes).",
            ["Raise maxmemory or add a replica/shard", "Shorten TTLs of large entries", "Check the evictions figure"],
            figures={"used": used, "max": maximum},
        )
    ]


def upstream_errors(now: datetime) -> list[Finding]:
    """Fire when JobNimbus calls fail above the threshold rate or its breaker refused calls in the window."""
    t = _window_totals(now)
    rate = t["upstream_error_rate"] or 0.0
    enough = t["upstream_calls"] >= int(dashboard_setting("ALERT_UPSTREAM_MIN_CALLS"))
    failing = enough and rate > float(dashboard_setting("ALERT_UPSTREAM_ERROR_RATE"))
    if not failing and not t["upstream_breaker_open"]:
        return []
    return [
        Finding(
            "upstream_errors",
            AlertLevel.CRITICAL if t["upstream_breaker_open"] else AlertLevel.WARNING,
            f"JobNimbus: {rate * 100:.0f} % of {t['upstream_calls']} calls failed over the last {_window_min()} min, "
            f"{t['upstream_breaker_open']} refused while it was failing.",
            ["Check JobNimbus status and the API key", "Check rate limiting (429)", "Stale entries are being served"],
            figures={
                "error_rate": rate,
                "calls": t["upstream_calls"],
                "breaker_open": t["upstream_breaker_open"],
                "window_min": _window_min(),
            },
        )
    ]


def slow_cache(now: datetime) -> list[Finding]:
    """Fire when the p95 latency of cached reads exceeds the bound."""
    t = _window_totals(now)
    bound = float(dashboard_setting("ALERT_P95_CACHED_MS"))
    p95 = t["p95_cached_ms"]
    if p95 is None or p95 <= bound:
        return []
    return [
        Finding(
            "slow_cache",
            AlertLevel.WARNING,
            f"p95 latency of cached reads is {p95:.0f} ms over the last {_window_min()} min (bound {bound:.0f} ms).",
            ["Check Redis latency and network", "Check value sizes (compression)", "Check the L1 tier's hit share"],
            figures={"p95_cached_ms": p95, "window_min": _window_min()},
        )
    ]


RULES: dict[str, Callable[[datetime], list[Finding]]] = {
    "low_hit_rate": low_hit_rate,
    "redis_breaker_open": redis_down,
    "invalidation_storm": invalidation_storm,
    "redis_memory": redis_memory,
    "upstream_errors": upstream_errors,
    "slow_cache": slow_cache,
}


def _raise_or_refresh(finding: Finding, now: datetime) -> Alert | None:
    """Refresh the unresolved alert of the finding's rule and scope; create one (returned) when there is none."""
    updates = {"level": finding.level, "message": finding.message, "actions": finding.actions, "last_seen": now}
    unresolved = Alert.objects.exclude(state=AlertState.RESOLVED).filter(rule=finding.rule, scope=finding.scope)
    if unresolved.update(**updates, figures=finding.figures):
        return None
    try:
        with transaction.atomic():
            return Alert.objects.create(
                rule=finding.rule, scope=finding.scope, first_seen=now, figures=finding.figures, **updates
            )
    except IntegrityError:  # another evaluator opened it first: the constraint keeps one
        return None


def _resolve_cleared(rule: str, active_scopes: set[str], now: datetime) -> int:
    cleared = Alert.objects.exclude(state=AlertState.RESOLVED).filter(rule=rule).exclude(scope__in=active_scopes)
    return cleared.update(state=AlertState.RESOLVED, resolved_at=now)


def evaluate(now: datetime | None = None) -> dict[str, int]:
    """Run every rule; open, refresh or resolve alerts; notify new ones. Return counts of opened and resolved."""
    now = now or timezone.now()
    opened: list[Alert] = []
    resolved = 0
    for rule, check in RULES.items():
        try:
            found = check(now)
        except Exception:  # a rule that cannot be evaluated must not stop the others (its alerts stay as they are)
            log.exception("alert rule %s could not be evaluated", rule)
            continue
        opened.extend(a for a in (_raise_or_refresh(f, now) for f in found) if a is not None)
        resolved += _resolve_cleared(rule, {f.scope for f in found}, now)
    for alert in opened:
        notify_all(alert)
    return {"opened": len(opened), "resolved": resolved}


def acknowledge(alert: Alert, user: Any, now: datetime | None = None) -> bool:
    """Mark an open alert acknowledged by `user`; return False when it is not open."""
    changed = Alert.objects.filter(pk=alert.pk, state=AlertState.OPEN).update(
        state=AlertState.ACKNOWLEDGED, acknowledged_by=user, acknowledged_at=now or timezone.now()
    )
    return bool(changed)
