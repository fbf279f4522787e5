"""Change events: store first, then apply exactly through the rules table, claimed so only one worker applies.

Every source (webhook, poll, manual, a write whose invalidation Redis refused) goes through `record_event`;
`apply_event` is what the Celery task, the sweep and the inline fallback run. Applying drops the rules table's tags
(`cacheops.rules.tags_for`) through `cacheops.api.invalidate_tags`; an event naming no parent records is first
completed by looking the record up with the instance's server-held key, when there is one.

A webhook's event does not depend on a live Celery worker: the process that queued it checks APPLY_CHECK_S later
(one thread per process, `check_applied_later`) and applies it itself when no worker did, or when the worker that
claimed it has held it past CLAIM_LEASE_S (killed mid-task). The publish itself is bounded by PUBLISH_TIMEOUT_S.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.db import connections, transaction
from django.db.models import F, Q
from django.utils import timezone
from kombu.exceptions import LimitExceeded
from kombu.exceptions import OperationalError as BrokerError

from cacheops import api
from cacheops.errors import CacheBackendError
from cacheops.freshness_conf import freshness_setting
from cacheops.models import EventSource, InvalidationEvent
from cacheops.rules import UNKNOWN_PARENT_TYPES, drops_for, tags_for

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
        dropped = api.invalidate_tags(event.instance, tags_for(event.entity, event.event, event.jnid or None, related))
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
    from cacheops.poller import build_change_source  # the poller imports this module

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


def dispatch_after_commit(event: InvalidationEvent) -> None:
    """Queue the event's apply task once the row is committed (a worker must be able to read it)."""
    if event.applied is not None:
        return
    event_id, digest = event.pk, event.payload_digest
    transaction.on_commit(lambda: dispatch(event_id, digest))


def _fail_fast_options(app: Any) -> dict[str, Any]:
    """Return the transport options of the webhook path's broker connections: one attempt, bounded sockets.

    A webhook request must not hang on the broker: kombu retries a connection (each retry costing a socket timeout,
    ~0.9 s for two), and without a socket timeout a publish to a broker that stopped answering (paused, failing
    over, a dead NAT entry) waits forever. One attempt of at most PUBLISH_TIMEOUT_S, then the inline apply.
    """
    options: dict[str, Any] = {"max_retries": 0}
    if str(app.conf.broker_url).startswith(("redis", "rediss")):
        timeout = float(freshness_setting("PUBLISH_TIMEOUT_S"))
        options.update(socket_timeout=timeout, socket_connect_timeout=timeout)
    return options


def _broker_connections(app: Any) -> Any:
    """Return this process's pool of fail-fast broker connections (one per broker URL, made again after a fork).

    A connection opened per webhook cost ~5 ms (up to ~45 ms) of every invalidation's latency; pooled ones are
    reused, and a pooled connection the broker dropped fails its next use (that event is applied inline) and then
    reconnects.
    """
    pool_key = (os.getpid(), str(app.conf.broker_url))
    with _pools_lock:
        pool = _pools.get(pool_key)
        if pool is None:
            options = _fail_fast_options(app)
            pool = _pools[pool_key] = app.connection_for_write(transport_options=options).Pool(limit=8)
    return pool


_pools: dict[tuple[int, str], Any] = {}
_pools_lock = threading.Lock()


def dispatch(event_id: int, digest: str = "") -> str:
    """Queue the apply task; when the broker cannot take it, apply inline so the change is never lost.

    Either way, unless it was applied here, this process checks APPLY_CHECK_S later that it was applied and applies
    it itself if not (`digest`, the stored payload digest, makes sure the check finds this very event).
    """
    from cacheops.tasks import apply_invalidation_event  # tasks import this module

    queue = freshness_setting("APPLY_QUEUE") or apply_invalidation_event.app.conf.task_default_queue
    try:
        # No free pooled connection (8 in flight) is treated like a broker that cannot take it: apply inline now.
        with _broker_connections(apply_invalidation_event.app).acquire(block=False) as connection:
            apply_invalidation_event.apply_async((event_id,), producer=connection.Producer(), queue=queue, retry=False)
    except (BrokerError, LimitExceeded, OSError) as exc:
        log.warning("broker unavailable (%s); applying invalidation event %s inline", exc, event_id)
        if apply_event(event_id, look_up=False) is None:  # on a request path: no JobNimbus call
            check_applied_later(event_id, digest)  # Redis refused it too: the check retries it before the sweep
        return "inline"
    check_applied_later(event_id, digest)
    return "queued"


# --- the no-worker fallback: this process checks that what it queued got applied -----------------------------

# Checks waiting in this process: (due on the monotonic clock, tie-breaker, event id, payload digest, rounds left).
_checks: list[tuple[float, int, int, str, int]] = []
_checks_cond = threading.Condition(threading.Lock())
_check_order = itertools.count()
_checker: threading.Thread | None = None
_checker_pid = 0
# Beyond this many pending checks (a webhook storm with no worker) new ones are dropped: the sweep still runs.
MAX_PENDING_CHECKS = 10_000
# A check that finds its event claimed waits for the claim's lease; this many times at most, then the sweep's.
_CHECK_ROUNDS = 3


def check_applied_later(
    event_id: int, digest: str = "", delay_s: float | None = None, rounds: int = _CHECK_ROUNDS
) -> None:
    """Have this process apply event `event_id` in `delay_s` (APPLY_CHECK_S) unless someone applied it by then."""
    delay = float(freshness_setting("APPLY_CHECK_S")) if delay_s is None else delay_s
    if delay <= 0 or rounds <= 0:
        return
    global _checker, _checker_pid
    with _checks_cond:
        if len(_checks) >= MAX_PENDING_CHECKS:
            log.warning("%d apply checks pending; invalidation event %s is left to the sweep", len(_checks), event_id)
            return
        heapq.heappush(_checks, (time.monotonic() + delay, next(_check_order), event_id, digest, rounds))
        if _checker is None or _checker_pid != os.getpid() or not _checker.is_alive():
            _checker_pid = os.getpid()  # a forked child inherits the list, not the thread
            _checker = threading.Thread(target=_run_checks, name="cacheops-apply-check", daemon=True)
            _checker.start()
        _checks_cond.notify()


def _run_checks() -> None:
    while True:
        with _checks_cond:
            while not _checks or _checks[0][0] > time.monotonic():
                _checks_cond.wait(None if not _checks else _checks[0][0] - time.monotonic())
            _, _, event_id, digest, rounds = heapq.heappop(_checks)
        try:
            _check_applied(event_id, digest, rounds)
        except Exception as exc:  # noqa: BLE001 - the thread must survive a database hiccup; the sweep covers it
            log.warning("checking invalidation event %s failed: %s: %s", event_id, type(exc).__name__, exc)
        finally:
            connections.close_all()  # this thread's connections only: none stays open between checks


def _check_applied(event_id: int, digest: str, rounds: int) -> None:
    """Apply the event here unless it is applied, or claimed by a worker whose lease still runs (then look again)."""
    rows = InvalidationEvent.objects.filter(pk=event_id, applied__isnull=True)
    if digest:
        rows = rows.filter(payload_digest=digest)
    row = rows.values("claimed_at", "received").first()
    if row is None:
        return  # applied (or not this process's event any more)
    lease = timedelta(seconds=freshness_setting("CLAIM_LEASE_S"))
    now = timezone.now()
    if row["claimed_at"] is not None and row["claimed_at"] + lease > now:
        # A worker is on it; should it die mid-task, its claim lapses at the end of the lease: look again then.
        check_applied_later(event_id, digest, (row["claimed_at"] + lease - now).total_seconds() + 0.25, rounds - 1)
        return
    waited = (now - row["received"]).total_seconds()
    log.warning("invalidation event %s not applied %.1f s after it was received; applying it here", event_id, waited)
    # The conservative drop (no JobNimbus look-up): this one thread serves every event of the process.
    if apply_event(event_id, look_up=False) is None:
        check_applied_later(event_id, digest, 1.0, rounds - 1)  # claimed meanwhile, or Redis refused: once more


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
