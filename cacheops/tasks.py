"""Celery tasks for freshness: thin, idempotent wrappers over plain functions (ids in, counts out)."""

from __future__ import annotations

from celery import shared_task

from cacheops import events, poller


@shared_task(name="cacheops.apply_invalidation_event", ignore_result=True, time_limit=60, soft_time_limit=30)
def apply_invalidation_event(event_id: int) -> int | None:
    """Apply one stored change event; a second run (or a second worker) finds it claimed or applied and stops."""
    return events.apply_event(event_id)


@shared_task(name="cacheops.sweep_invalidation_events", ignore_result=True, time_limit=300, soft_time_limit=240)
def sweep_invalidation_events() -> int:
    """Re-apply stored events that never got applied, and prune old applied history."""
    events.prune_history()
    return events.sweep_unapplied()


@shared_task(name="cacheops.poll_changes", ignore_result=True, time_limit=300, soft_time_limit=240)
def poll_changes() -> int:
    """Poll every instance with a server-held key for changed records; return how many events were stored."""
    return poller.poll_all()
