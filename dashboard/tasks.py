"""Celery beat tasks of the dashboard: thin wrappers over plain functions (commands and tests call those)."""

from __future__ import annotations

from celery import shared_task

from cacheops.reporting import run_warming
from dashboard import alerts, rollup, ttl
from dashboard.conf import configured_warmer, dashboard_setting


@shared_task(name="dashboard.rollup_metrics", ignore_result=True, time_limit=120, soft_time_limit=90)
def rollup_metrics() -> int:
    """Roll the last minutes' Redis buckets into the database (idempotent)."""
    return rollup.rollup_recent()


@shared_task(name="dashboard.prune_metrics", ignore_result=True, time_limit=300, soft_time_limit=240)
def prune_metrics() -> int:
    """Delete history older than its retention."""
    return sum(rollup.prune())


@shared_task(name="dashboard.evaluate_alerts", ignore_result=True, time_limit=120, soft_time_limit=90)
def evaluate_alerts() -> int:
    """Evaluate the alert rules; return how many alerts opened."""
    return alerts.evaluate()["opened"]


@shared_task(name="dashboard.tune_ttls", ignore_result=True, time_limit=300, soft_time_limit=240)
def tune_ttls() -> int:
    """Run the TTL tuner; return how many policies changed."""
    return sum(d.changes for d in ttl.tune())


@shared_task(name="dashboard.warm_cache", ignore_result=True, time_limit=300, soft_time_limit=240)
def warm_cache() -> int:
    """Warm the most-used keys (bounded per run); return how many were re-read."""
    return run_warming(int(dashboard_setting("WARM_MAX_PER_RUN")), configured_warmer()).warmed
