"""What the engine reports about itself: health and stats (for /cache/health, /cache/stats and the dashboard)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from cacheops import backend, metrics
from cacheops.breakers import all_states, redis_breaker
from cacheops.conf import cache_enabled
from cacheops.engine import engine
from cacheops.hit_rate import hit_rate, hits


def health() -> dict[str, Any]:
    """Return the cache's health: healthy, degraded (breaker not closed) or unavailable (Redis not answering)."""
    latency_ms = backend.ping()
    states = all_states()
    circuit = redis_breaker().state
    upstream_open = any(state != "CLOSED" for name, state in states.items() if name != "redis")
    if latency_ms is None:
        status = "unavailable"
    elif circuit != "CLOSED" or upstream_open:
        status = "degraded"
    else:
        status = "healthy"
    return {
        "status": status,
        "connected": latency_ms is not None,
        "circuitState": circuit,
        "latencyMs": latency_ms,
        "cacheEnabled": cache_enabled(),
        "breakers": states,
        "l1": engine().l1.stats(),
    }


def stats() -> dict[str, Any]:
    """Return hits, misses, writes and hit rate overall, by tier and by tool, breaker states and Redis figures."""
    snap = metrics.snapshot()
    by_status: dict[str, float] = defaultdict(float)
    by_tool: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for (status, tool), value in snap.get("jn_cache_reads", {}).items():
        by_status[status] += value
        by_tool[tool][status] += value
    writes: dict[str, float] = defaultdict(float)
    for (tier, _tool), value in snap.get("jn_cache_writes", {}).items():
        writes[tier] += value
    upstream: dict[str, float] = defaultdict(float)
    for (outcome, _tool), value in snap.get("jn_cache_upstream_calls", {}).items():
        upstream[outcome] += value
    return {
        **_rates(by_status),
        "byTier": {"l1": by_status["hit_l1"], "l2": by_status["hit_l2"], "stale": by_status["stale"]},
        "byStatus": dict(by_status),
        "byTool": {tool: {**_rates(counts), "byStatus": dict(counts)} for tool, counts in by_tool.items()},
        "writes": {"total": sum(writes.values()), **writes},
        "upstreamCalls": dict(upstream),
        "uncacheable": sum(snap.get("jn_cache_uncacheable", {}).values()),
        "breakers": all_states(),
        "l1": engine().l1.stats(),
        "redis": redis_figures(),
    }


def _rates(by_status: dict[str, float]) -> dict[str, Any]:
    return {"hits": hits(by_status), "misses": by_status.get("miss", 0.0), "hitRate": hit_rate(by_status)}


def redis_figures() -> dict[str, Any] | None:
    """Return Redis memory, key count and evictions, or None when Redis does not answer.

    INFO may be disabled (some managed Redis, fakeredis): its figures are then None, the key count stays.
    """
    keys = backend.degrade(lambda: backend.call(lambda r: r.dbsize()), None)
    if keys is None:
        return None
    memory = backend.degrade(lambda: backend.call(lambda r: r.info("memory")), None) or {}
    counters = backend.degrade(lambda: backend.call(lambda r: r.info("stats")), None) or {}
    return {
        "keys": keys,
        "usedMemory": memory.get("used_memory"),
        "usedMemoryHuman": memory.get("used_memory_human"),
        "maxMemory": memory.get("maxmemory"),
        "evictedKeys": counters.get("evicted_keys"),
        "expiredKeys": counters.get("expired_keys"),
    }
