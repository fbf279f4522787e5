"""Celery tasks for freshness: thin, idempotent wrappers over plain functions (ids in, counts out)."""

from __future__ import annotations

from celery import Task, shared_task

from cacheops import events, poller


@shared_task(bind=True, name="cacheops.apply_invalidation_event", ignore_result=True, time_limit=60, soft_time_limit=30)
def apply_invalidation_event(self: Task, event_id: int) -> int | None:
    """Apply one stored change event; a second run (or a second worker) finds it applied and stops.

    Found claimed but unapplied, it is a redelivery after the claiming worker died mid-task (acks are late): the
    claim's lease still runs, so it tries again when the lease has lapsed instead of dropping the event on the
    sweep. Applying twice is harmless (it drops cache entries); never applying is not.
    """
    dropped = events.apply_event(event_id)
    if dropped is None and not self.request.called_directly and self.request.retries < _LEASE_RETRIES:
        lease_left = events.claim_lease_left(event_id)
        if lease_left is not None:
            raise self.retry(countdown=lease_left + 0.5, max_retries=_LEASE_RETRIES)
    return dropped


_LEASE_RETRIES = 3


@shared_task(name="cacheops.sweep_invalidation_events", ignore_result=True, time_limit=300, soft_time_limit=240)
def sweep_invalidation_events() -> int:
    """Re-apply stored events that never got applied, and prune old applied history."""
    events.prune_history()
    return events.sweep_unapplied()


@shared_task(name="cacheops.poll_changes", ignore_result=True, time_limit=300, soft_time_limit=240)
def poll_changes() -> int:
    """Poll every instance with a server-held key for changed records; return how many events were stored."""
    return poller.poll_all()
