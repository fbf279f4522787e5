"""The staff side's view of the cache: everything `dashboard` reads or runs, in one public module.

The request path has cacheops.api; the dashboard has this: request history (cacheops.history), Redis and breaker
figures, the TTL tuner's rule and store (cacheops.tuning), warming, the policies' TTLs and the staff-or-monitor
check. The dashboard imports nothing else of cacheops but the error taxonomy (cacheops.errors) and the models
it queries (cacheops.models), so the engine's modules can change behind these names.
"""

from __future__ import annotations

import time
from typing import Any

from cacheops import backend, status
from cacheops.backend import ping as redis_ping_ms
from cacheops.breakers import all_states, redis_breaker, redis_breakers, upstream_breaker
from cacheops.history import (
    KEY_SET_MAX,
    LATENCY_BUCKETS_MS,
    UPSTREAM_OUTCOMES,
    minute_of,
    read_minute,
    read_minutes,
    recipes,
    top_keys,
    trim_key_counts,
)
from cacheops.history import dropped as dropped_samples
from cacheops.hit_rate import HIT_STATUSES, hit_rate, hits
from cacheops.policies import DEFAULT_POLICIES, effective_ttl
from cacheops.tuning import POLICY_ENTITY, Decision, Evidence, default_bounds
from cacheops.tuning import decide as decide_ttl
from cacheops.tuning import publish as publish_ttls
from cacheops.views_engine import may_monitor
from cacheops.warming import run as run_warming

__all__ = [
    "DEFAULT_POLICIES",
    "HIT_STATUSES",
    "KEY_SET_MAX",
    "LATENCY_BUCKETS_MS",
    "POLICY_ENTITY",
    "UPSTREAM_OUTCOMES",
    "Decision",
    "Evidence",
    "all_states",
    "breaker_details",
    "decide_ttl",
    "default_bounds",
    "dropped_samples",
    "effective_ttl",
    "entity_of_key",
    "hit_rate",
    "hits",
    "may_monitor",
    "minute_of",
    "ping_redis",
    "publish_ttls",
    "read_minute",
    "read_minutes",
    "recipes",
    "redis_breaker_state",
    "redis_figures",
    "redis_ping_ms",
    "run_warming",
    "top_keys",
    "trim_key_counts",
]


def redis_figures() -> dict[str, Any] | None:
    """Return Redis's memory and key figures, or None when it does not answer (cacheops.status)."""
    # Looked up at call time, so the dashboard always sees what cacheops.status currently reports.
    return status.redis_figures()


def redis_breaker_state() -> str:
    """Return this process's Redis breaker state: CLOSED, OPEN or HALF_OPEN."""
    return redis_breaker().state


def ping_redis() -> None:
    """PING Redis through the guarded call (the breaker, one error type); raise CacheBackendError when it fails."""
    backend.call(lambda r: r.ping())


def breaker_details() -> dict[str, dict[str, Any]]:
    """Return every breaker of this process by name: {"state", "since"} where `since` is the wall-clock epoch
    second it last opened (None while CLOSED). Breakers time themselves on the monotonic clock; this converts."""
    out: dict[str, dict[str, Any]] = {}
    redis_by_name = {b.name: b for b in redis_breakers().values()}
    for name, state in all_states().items():
        since = None
        if state != "CLOSED":
            breaker: Any = redis_by_name.get(name) or upstream_breaker(name.partition(":")[2])[0]
            opened = float(getattr(breaker, "_opened_at", 0.0) or 0.0)
            if opened:
                since = time.time() - max(0.0, breaker.clock() - opened)
        out[name] = {"state": state, "since": since}
    return out


def entity_of_key(member: str) -> str | None:
    """Return the entity of a `tool|key` member (keys are `<ns>:<instance>:<tenant>:<entity>:<op>:<hash>`)."""
    key = member.partition("|")[2] or member
    parts = key.split(":")
    return parts[-3] if len(parts) >= 6 else None
