"""The one invalidation step: every path that drops cached entries (writes, webhooks, polling, the sweep, staff)
goes through `invalidate_tags` here, so one seam sees them all.

Below the public face (cacheops.api re-exports it) and the change events (cacheops.events), which both use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from cacheops.conf import cache_enabled, engine_setting
from cacheops.engine import engine
from cacheops.rules import tags_for


def invalidate_tags(instance: str, tags: Iterable[str]) -> int:
    """Drop every entry of `instance` (all tenants) carrying any of `tags`; return how many were dropped.

    Atomic in Redis (one Lua step), broadcast to every process's L1, and fetches already in flight for those
    tags will not store their results. Raises cacheops.errors.CacheBackendError when Redis could not be
    reached, so the caller can retry (an invalidation must never be lost silently).
    """
    if not cache_enabled():
        return 0
    return engine().invalidate(instance, tags)


def invalidate_change(instance: str, entity: str, event: str, jnid: str | None, related: Sequence[str] = ()) -> int:
    """Drop what the rules table says a change touched; return the number of entries dropped.

    Raises `cacheops.rules.UnknownChangeError` for an entity or event the table does not know, and
    CacheBackendError as `invalidate_tags` does.
    """
    return invalidate_tags(instance, tags_for(entity, event, jnid, related))


def settle_refused() -> bool:
    """Wait, up to CACHEOPS_ENGINE["WRITE_SETTLE_S"], for Redis to take the invalidations it refused in this process;
    return whether it took them all. A write calls this before it is acknowledged (cacheops.api.apply_change)."""
    return engine().invalidation.settle(
        float(engine_setting("WRITE_SETTLE_S")), float(engine_setting("WRITE_SETTLE_POLL_S"))
    )
