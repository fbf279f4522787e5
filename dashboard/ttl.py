"""The TTL tuner's bookkeeping: TtlPolicy rows, evidence from the history, applying and recording decisions.

The decision rule itself is cacheops.tuning.decide (`decide_ttl` in cacheops.reporting); this module feeds it and
keeps every change with its evidence.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from cacheops.models import InvalidationEvent
from cacheops.reporting import (
    DEFAULT_POLICIES,
    HIT_STATUSES,
    POLICY_ENTITY,
    Decision,
    Evidence,
    decide_ttl,
    default_bounds,
    effective_ttl,
    hit_rate,
    publish_ttls,
)
from dashboard.conf import dashboard_setting
from dashboard.models import Dimension, MinuteStat, TtlChange, TtlPolicy


def ensure_policies() -> list[TtlPolicy]:
    """Return a TtlPolicy row per cache policy, creating missing ones at the TTL in force with default bounds."""
    existing = {row.policy: row for row in TtlPolicy.objects.all()}
    for name in DEFAULT_POLICIES:
        if name not in existing:
            low, high = default_bounds(name)
            existing[name] = TtlPolicy.objects.create(
                policy=name,
                default_ttl_s=DEFAULT_POLICIES[name].fresh_s,
                ttl_s=effective_ttl(name),
                min_ttl_s=low,
                max_ttl_s=high,
            )
    return [existing[name] for name in sorted(existing)]


def evidence(policy: str, now: datetime, window_h: float) -> Evidence:
    """Return the tuner's evidence for `policy` over the last `window_h` hours.

    Misses not explained by invalidations are counted as lost to expiry (an estimate: the history does not tell
    why a key was missing).
    """
    since = now - timedelta(hours=window_h)
    rows = MinuteStat.objects.filter(dimension=Dimension.POLICY, name=policy, minute__gte=since)
    statuses = ("requests", *HIT_STATUSES, "miss")
    sums = {f: v or 0 for f, v in rows.aggregate(**{f: Sum(f) for f in statuses}).items()}
    requests, misses, stale = sums["requests"], sums["miss"], sums["stale"]
    entity = POLICY_ENTITY.get(policy, policy)
    changes = InvalidationEvent.objects.filter(entity=entity, received__gte=since, duplicate_of__isnull=True).count()
    return Evidence(
        requests=requests,
        hit_rate=hit_rate(sums),
        invalidations_per_h=round(changes / window_h, 3),
        stale_share=round(stale / requests, 4) if requests else 0.0,
        expiry_miss_share=round(max(0, misses - changes) / requests, 4) if requests else 0.0,
        window_h=window_h,
    )


def plan(now: datetime | None = None) -> list[Decision]:
    """Return the tuner's decision for every unpinned policy (nothing is changed)."""
    now = now or timezone.now()
    window_h = float(dashboard_setting("TUNER_WINDOW_H"))
    min_requests = int(dashboard_setting("TUNER_MIN_REQUESTS"))
    return [
        decide_ttl(
            row.policy, row.ttl_s, (row.min_ttl_s, row.max_ttl_s), evidence(row.policy, now, window_h), min_requests
        )
        for row in ensure_policies()
        if not row.pinned
    ]


def publish_all() -> None:
    """Publish the TTLs of every row that differs from its policy's default (pinned ones included)."""
    publish_ttls({row.policy: row.ttl_s for row in TtlPolicy.objects.all() if row.ttl_s != row.default_ttl_s})


def tune(now: datetime | None = None, *, dry_run: bool = False) -> list[Decision]:
    """Decide, and unless `dry_run` apply and record each change and publish the TTLs; return the decisions."""
    now = now or timezone.now()
    decisions = plan(now)
    if dry_run:
        return decisions
    with transaction.atomic():
        for d in (d for d in decisions if d.changes):
            # Conditional on the TTL still being the one decided on and unpinned: staff may have acted meanwhile.
            row = TtlPolicy.objects.filter(policy=d.policy, pinned=False, ttl_s=d.current_ttl_s)
            if row.update(ttl_s=d.new_ttl_s, updated=now):
                TtlChange.objects.create(
                    policy=TtlPolicy.objects.get(policy=d.policy),
                    old_ttl_s=d.current_ttl_s,
                    new_ttl_s=d.new_ttl_s,
                    reason=d.reason,
                    evidence=d.evidence,
                    at=now,
                )
    publish_all()
    return decisions


def recent_changes(limit: int) -> list[dict[str, object]]:
    """Return the latest TTL changes with their evidence, newest first."""
    return [
        {
            "policy": c.policy.policy,
            "old_ttl_s": c.old_ttl_s,
            "new_ttl_s": c.new_ttl_s,
            "reason": c.reason,
            "evidence": c.evidence,
            "at": c.at.isoformat(),
        }
        for c in TtlChange.objects.select_related("policy")[:limit]
    ]
