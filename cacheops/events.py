"""Change events: store first, then apply exactly through the rules table, claimed so only one worker applies.

Every source (webhook, poll, manual, a write whose invalidation Redis refused) goes through `record_event`;
`apply_event` is what the Celery task, the sweep and the inline fallback run. Applying drops the rules table's tags
through `cacheops.invalidation`; an event naming no parent records is first completed by looking the record up
with the instance's server-held key (the configured change source), when there is one.

Queueing an event to Celery, and the no-worker fallback, are `cacheops.dispatcher`'s (it sits above the tasks).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson
from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from cacheops import invalidation
from cacheops.change_sources import build_change_source
from cacheops.errors import CacheBackendError
from cacheops.freshness_conf import freshness_setting
from cacheops.models import EventSource, InvalidationEvent
from cacheops.rules import UNKNOWN_PARENT_TYPES, drops_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Change:
    """A normalised change report: what changed and which records it hangs off."""

    instance: str
    entity: str
    event: str
    jnid: str
    related: Sequence[str] = field(default_factory=tuple)


def digest_payload(instance: str, raw: bytes) -> str:
    """Return the digest two deliveries of the same payload share."""
    return hashlib.sha256(instance.encode() + b"\0" + raw).hexdigest()


def digest_change(change: Change, version: object) -> str:
    """Return a digest for a change identified by a record version (polling sees a version many times)."""
    body = orjson.dumps([change.entity, change.event, change.jnid, list(change.related), version])
    return digest_payload(change.instance, body)


def record_event(change: Change, *, source: str, digest: str) -> InvalidationEvent:
    """Store a change; a copy of a still-pending identical payload is stored as already handled.

    A duplicate is only skipped while the original is unclaimed: the original's invalidation then runs after the
    duplicate arrived and covers it. Once the original was applied a repeat is applied again, because the record
    may have changed (and been re-cached) in between.
    """
    drops_for(change.entity, change.event)  # refuse what the rules table cannot apply before storing it
    now = timezone.now()
    original = _pending_original(change.instance, digest, now)
    return InvalidationEvent.objects.create(
        instance=change.instance,
        entity=change.entity,
        jnid=change.jnid,
        event=change.event,
        related=list(change.related),
        source=source,
        payload_digest=digest,
        received=now,
        duplicate_of=original,
        applied=now if original else None,
    )


def _pending_original(instance: str, digest: str, now: datetime) -> InvalidationEvent | None:
    window = timedelta(seconds=freshness_setting("DEDUP_WINDOW_S"))
    return (
        InvalidationEvent.objects.filter(
            instance=instance,
            payload_digest=digest,
            received__gte=now - window,
            claimed_at__isnull=True,
            applied__isnull=True,
        )
        .order_by("received")
        .first()
    )


def claim_event(event_id: int) -> bool:
    """Mark an unapplied event as being applied by this worker; return False when another has it or it is done."""
    now = timezone.now()
    lease_expired = now - timedelta(seconds=freshness_setting("CLAIM_LEASE_S"))
    claimed = (
        InvalidationEvent.objects.filter(pk=event_id, applied__isnull=True)
        .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=lease_expired))
        .update(claimed_at=now, attempts=F("attempts") + 1)
    )
    return claimed == 1


def claim_lease_left(event_id: int) -> float | None:
    """Seconds until the claim on an unapplied event lapses (0 when it has); None when it is applied or unclaimed."""
    claimed_at = (
        InvalidationEvent.objects.filter(pk=event_id, applied__isnull=True, claimed_at__isnull=False)
        .values_list("claimed_at", flat=True)
        .first()
    )
    if claimed_at is None:
        return None
    lapses = claimed_at + timedelta(seconds=freshness_setting("CLAIM_LEASE_S"))
    return max(0.0, (lapses - timezone.now()).total_seconds())


def apply_event(event_id: int, *, look_up: bool = True) -> int | None:
    """Apply one stored event if this worker can claim it; return keys dropped, or None when not ours to apply.

    `look_up=False` skips asking JobNimbus for missing parent ids (a request path must not wait on it): the
    rules table then drops every entry of the possible parent types instead.
    """
    if not claim_event(event_id):
        return None
    event = InvalidationEvent.objects.get(pk=event_id)
    try:
        related = list(event.related) or (_parents_from_jobnimbus(event) if look_up else [])
        dropped = invalidation.invalidate_change(event.instance, event.entity, event.event, event.jnid or None, related)
    # Whatever failed (Redis down, a bug), the event must stay visible and retryable rather than vanish with a
    # worker's traceback: record why, release the claim, and let the sweep try again.
    except Exception as exc:  # noqa: BLE001
        log.warning("applying invalidation event %s failed: %s", event_id, exc)
        _release(event_id, f"{type(exc).__name__}: {exc}", counted=not isinstance(exc, CacheBackendError))
        return None
    InvalidationEvent.objects.filter(pk=event_id).update(
        applied=timezone.now(), keys_dropped=dropped, error="", related=related
    )
    return dropped


def _release(event_id: int, error: str, *, counted: bool) -> None:
    # A Redis outage is not the event's fault: that attempt is given back, so the sweep keeps retrying however
    # long Redis stays down, and only events that fail for other reasons run out of attempts.
    attempts = F("attempts") if counted else F("attempts") - 1
    InvalidationEvent.objects.filter(pk=event_id).update(claimed_at=None, error=error[:2000], attempts=attempts)


def _parents_from_jobnimbus(event: InvalidationEvent) -> list[str]:
    """Return the related/primary ids of the event's record, read with the instance's server-held key; [] if unknown.

    The reader is the configured ChangeSource's optional `related_of(entity, jnid)` (cacheops may not import the
    JobNimbus client). Any failure (no key, JobNimbus down, record deleted) leaves the conservative drop.
    """
    if not event.jnid or not UNKNOWN_PARENT_TYPES.get(event.entity):
        return []
    api_key = (settings.JOBNIMBUS_INSTANCES.get(event.instance) or {}).get("api_key")
    if not api_key:
        return []
    reader = getattr(build_change_source(event.instance, api_key), "related_of", None)
    if reader is None:
        return []
    try:
        return [str(parent) for parent in reader(event.entity, event.jnid) if parent]
    except Exception as exc:  # noqa: BLE001 - whatever went wrong, the conservative drop still applies the event
        log.info("could not look up the parents of %s %s: %s", event.entity, event.jnid, exc)
        return []


def defer_change(instance: str, entity: str, event: str, jnid: str | None, related: Sequence[str] = ()) -> None:
    """Store a change whose invalidation Redis refused, so the sweep applies it for every process later.

    Never raises: the change already happened upstream. Without a database (or with it down too) the loss is
    logged; entries then live until their TTL.
    """
    change = Change(instance, entity, event, jnid or "", tuple(related))
    try:
        record_event(change, source=EventSource.WRITE, digest=digest_change(change, timezone.now().isoformat()))
    except Exception:  # a failure here must not turn a completed write into an error
        log.error("could not store the %s %s %s invalidation for later", entity, event, jnid, exc_info=True)


def sweep_unapplied(*, min_age_s: float | None = None, limit: int | None = None) -> int:
    """Apply stored events that never got applied (lost task, broker outage, crash); return how many were."""
    age = freshness_setting("SWEEP_MIN_AGE_S") if min_age_s is None else min_age_s
    cutoff = timezone.now() - timedelta(seconds=age)
    ids = list(
        InvalidationEvent.objects.filter(
            applied__isnull=True, received__lte=cutoff, attempts__lt=freshness_setting("MAX_ATTEMPTS")
        )
        .order_by("received")
        .values_list("pk", flat=True)[: limit or freshness_setting("SWEEP_BATCH")]
    )
    return sum(1 for event_id in ids if apply_event(event_id) is not None)


def prune_history(*, older_than_days: int | None = None) -> int:
    """Delete applied events older than the retention; return how many rows went. Unapplied ones stay."""
    days = freshness_setting("RETENTION_DAYS") if older_than_days is None else older_than_days
    cutoff = timezone.now() - timedelta(days=days)
    deleted, _ = InvalidationEvent.objects.filter(applied__isnull=False, received__lt=cutoff).delete()
    return deleted


def record_and_apply(change: Change, *, source: str = EventSource.MANUAL) -> InvalidationEvent:
    """Store a change and apply it now, in this process (operators' `invalidate`, the poller)."""
    event = record_event(change, source=source, digest=digest_change(change, timezone.now().isoformat()))
    apply_event(event.pk)
    event.refresh_from_db()
    return event
