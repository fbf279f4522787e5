"""The cache engine's public face for the request path. Everything outside `cacheops` calls only what is here,
in cacheops.errors (the failure taxonomy), cacheops.http (what every HTTP entry point reads alike) and
cacheops.reporting (the dashboard's figures).

The work is done by cacheops.engine (L1 → Redis → single flight → upstream); CACHE_ENABLED=false makes
`read_through` a pure bypass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

from django.core.cache import caches

from cacheops import backend, invalidation, metrics
from cacheops.breakers import redis_breaker
from cacheops.change_sources import ChangedRecord, ChangePage, ChangeSource
from cacheops.conf import cache_enabled
from cacheops.engine import engine
from cacheops.errors import CacheBackendError
from cacheops.invalidation import invalidate_tags
from cacheops.keys import (
    binding_key,
    list_tag,
    record_tag,
    related_tag,
    tenant_id,
    throttle_budget,
    throttle_window_key,
)
from cacheops.l1 import decoded_size
from cacheops.types import CacheOutcome, CacheScope, CacheStatus, ReadRequest

__all__ = [
    "CacheOutcome",
    "CacheScope",
    "CacheStatus",
    "ChangePage",
    "ChangeSource",
    "ChangedRecord",
    "ReadRequest",
    "apply_change",
    "binding_key",
    "cache_enabled",
    "count_in_window",
    "decoded_size",
    "guard_upstream",
    "invalidate_tags",
    "list_tag",
    "read_through",
    "recent_webhook_deliveries",
    "record_tag",
    "redis_breaker_closed",
    "redis_step",
    "related_tag",
    "tenant_id",
    "throttle_budget",
    "throttle_window_key",
]

T = TypeVar("T")


def read_through(request: ReadRequest, fetch: Callable[[], Any]) -> CacheOutcome:
    """Return the value for `request`, from cache when allowed, else from `fetch()`.

    `fetch` raises `cacheops.errors.UpstreamUnavailableError` (or a subclass) when the source is down;
    any other exception is the caller's problem and propagates unchanged, never cached.
    """
    if not cache_enabled():
        metrics.READS.labels(request.tool, "bypass").inc()
        return CacheOutcome(value=fetch(), status="bypass")
    read = engine().read(request, fetch)
    return CacheOutcome(value=read.value, status=read.status, age_s=read.age_s, ttl_s=read.ttl_s)


def guard_upstream(instance: str, call: Callable[[], Any], tenant: str | None = None) -> Any:
    """Run an upstream call (a write, or anything not cached) under the instance's JobNimbus breaker.

    Raises UpstreamUnavailableError at once while the breaker is open. With the caller's `tenant`, also raises
    at once while JobNimbus's refusal of the key (KeyRefusedError) or its 429 back-off (KeyBackoffError) holds,
    and remembers what the answer says about the key (see cacheops.callers).
    """
    if tenant:
        engine().check_key(instance, tenant)
    return engine().guarded_call(instance, "-", call, tenant=tenant)


def apply_change(
    instance: str, entity: str, event: str, jnid: str | None, related: Sequence[str] = (), *, settle: bool = False
) -> int:
    """Invalidate what a change touched, by the rules table; return the number of entries dropped.

    `event` is created, updated or deleted; `related` the ids of parents/linked records (related[].id and
    primary.id). Used by write tools (read-your-writes), webhooks and the poller alike. Raises
    `cacheops.rules.UnknownChangeError` (a ValueError) for an entity or event the rules table does not know.
    When Redis refuses the invalidation the change is also stored as an event (source write) that the sweep
    applies once Redis answers; with `settle` (a write tool, before it answers) it then waits up to
    CACHEOPS_ENGINE["WRITE_SETTLE_S"] for Redis to take it (a failover ending) and returns 0 if Redis did.
    Otherwise CacheBackendError is raised.
    """
    try:
        return invalidation.invalidate_change(instance, entity, event, jnid, related)
    except CacheBackendError:
        from cacheops.events import defer_change  # events need the app registry (models); this module may not

        defer_change(instance, entity, event, jnid, related)
        if settle and invalidation.settle_refused():
            return 0
        raise


def redis_step(step: Callable[[], T]) -> T:
    """Run a Redis step of a caller outside cacheops (the throttle's counters, kept through django-redis's cache on
    the same Redis) through the one guarded call: under the process's Redis breaker, counted by it, and raising
    CacheBackendError when Redis fails or the breaker is open (a refusal's reply error is its `__cause__`)."""
    return backend.call(lambda _client: step())


def count_in_window(key: str, window_s: int, amount: int = 1, *, cache: Any = None) -> int:
    """Add `amount` to the budget counter `key` (a `throttle_window_key`) and return its new total, in one guarded round
    trip (`redis_step`: raises CacheBackendError when Redis fails). The counter is created with its expiry, a window
    and a second (SET NX EX works on any Redis; EXPIRE NX would need Redis 7), in `cache` (a django-redis cache;
    None: `default`)."""
    cache = caches["default"] if cache is None else cache
    full_key = cache.make_key(key)

    def step() -> int:
        pipe = cast(Any, cache).client.get_client(write=True).pipeline(transaction=False)
        pipe.set(full_key, 0, ex=window_s + 1, nx=True)
        pipe.incrby(full_key, amount)
        _, total = pipe.execute()
        return int(total)

    return redis_step(step)


def redis_breaker_closed() -> bool:
    """Tell whether the process's Redis breaker is closed. A caller that can do without Redis (the throttle) skips it
    otherwise, so it never joins the half-open probing nor waits on a Redis the breaker already judged down."""
    return redis_breaker().state == "CLOSED"


def recent_webhook_deliveries(instance: str, limit: int = 20) -> list[dict[str, Any]]:
    """Return the latest stored webhook events of `instance`, newest first, as JSON-ready dicts."""
    from cacheops.models import EventSource, InvalidationEvent  # models need the app registry

    rows = InvalidationEvent.objects.filter(instance=instance, source=EventSource.WEBHOOK).order_by("-received", "-id")
    return [
        {
            "event_id": row.pk,
            "entity": row.entity,
            "jnid": row.jnid,
            "event": row.event,
            "related": row.related,
            "received": row.received.isoformat(),
            "applied": row.applied.isoformat() if row.applied else None,
            "keys_dropped": row.keys_dropped,
            "duplicate_of": row.duplicate_of_id,
            "error": row.error or None,
        }
        for row in rows[: max(0, limit)]
    ]
