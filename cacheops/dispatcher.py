"""Queueing change events to Celery, and the no-worker fallback: the enqueue side of cacheops.events.

Above the Celery tasks (it queues `cacheops.tasks.apply_invalidation_event`), which sit above the events core.

A webhook's event does not depend on a live Celery worker: the process that queued it checks APPLY_CHECK_S later
(one thread per process, `check_applied_later`) and applies it itself when no worker did, or when the worker that
claimed it has held it past CLAIM_LEASE_S (killed mid-task). The publish itself is bounded by PUBLISH_TIMEOUT_S.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from datetime import timedelta
from typing import Any

from django.db import connections, transaction
from django.utils import timezone
from kombu.exceptions import LimitExceeded
from kombu.exceptions import OperationalError as BrokerError

from cacheops import events
from cacheops.freshness_conf import freshness_setting
from cacheops.models import InvalidationEvent
from cacheops.tasks import apply_invalidation_event

log = logging.getLogger(__name__)


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
    # kombu's sentinel:// transport is its Redis one (same socket options); the master's name comes from the app's
    # own broker_transport_options, which connection_for_write merges under these.
    if str(app.conf.broker_url).startswith(("redis", "rediss", "sentinel")):
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
    queue = freshness_setting("APPLY_QUEUE") or apply_invalidation_event.app.conf.task_default_queue
    try:
        # No free pooled connection (8 in flight) is treated like a broker that cannot take it: apply inline now.
        with _broker_connections(apply_invalidation_event.app).acquire(block=False) as connection:
            apply_invalidation_event.apply_async((event_id,), producer=connection.Producer(), queue=queue, retry=False)
    except (BrokerError, LimitExceeded, OSError) as exc:
        log.warning("broker unavailable (%s); applying invalidation event %s inline", exc, event_id)
        if events.apply_event(event_id, look_up=False) is None:  # on a request path: no JobNimbus call
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
    if events.apply_event(event_id, look_up=False) is None:
        check_applied_later(event_id, digest, 1.0, rounds - 1)  # claimed meanwhile, or Redis refused: once more
