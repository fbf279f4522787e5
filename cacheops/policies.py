"""Cache policies: per policy name, the fresh TTL, the stale-while-revalidate window and the stale-if-error
maximum age (RFC 5861's three windows, as cashews names them early/soft/failover).

Fresh TTLs come from each entity's row (cacheops.entities);
CACHE_TTL_<POLICY> (settings → CACHEOPS_ENGINE["TTL_OVERRIDES"]) overrides them,
and `set_ttl_override_source` lets the TTL tuner plug in a store (Redis/DB) consulted first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from cacheops.conf import engine_setting
from cacheops.entities import ENTITY_ROWS

HOUR = 3600


@dataclass(frozen=True)
class Policy:
    """The windows of one policy, in seconds."""

    name: str
    fresh_s: int
    swr_s: int
    stale_if_error_s: int

    @property
    def lifetime_s(self) -> int:
        """Return how long an entry is kept in Redis: until its stale-if-error window closes."""
        return self.fresh_s + max(self.swr_s, self.stale_if_error_s)


def _policy(name: str, fresh_s: int, swr_s: int | None = None, stale_if_error_s: int = 24 * HOUR) -> Policy:
    # Default SWR: half the fresh TTL, so a hot key refreshes in the background instead of missing.
    return Policy(name, fresh_s, fresh_s // 2 if swr_s is None else swr_s, stale_if_error_s)


DEFAULT_POLICIES: dict[str, Policy] = {
    name: _policy(name, fresh_s) for row in ENTITY_ROWS for name, fresh_s in row.policies.items()
}

# The tuner's hook: (policy name) -> fresh TTL seconds or None. Consulted before settings overrides.
TtlOverrideSource = Callable[[str], int | None]
_override_source: TtlOverrideSource | None = None


def set_ttl_override_source(source: TtlOverrideSource | None) -> None:
    """Install (or remove with None) the function the TTL tuner uses to pin or tune fresh TTLs."""
    global _override_source
    _override_source = source


def base_policy(name: str) -> Policy:
    """Return the built-in policy `name`; raise ValueError naming it when it does not exist."""
    try:
        return DEFAULT_POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown cache policy {name!r}; known: {', '.join(sorted(DEFAULT_POLICIES))}") from None


def effective_ttl(name: str) -> int:
    """Return the fresh TTL in force for policy `name`: tuner override, else settings override, else default."""
    if _override_source is not None:
        tuned = _override_source(name)
        if tuned is not None:
            return int(tuned)
    overrides: dict[str, int] = engine_setting("TTL_OVERRIDES")
    return int(overrides.get(name, base_policy(name).fresh_s))


def effective_policy(name: str) -> Policy:
    """Return policy `name` with its effective fresh TTL (the other windows keep their proportions)."""
    base = base_policy(name)
    fresh = effective_ttl(name)
    if fresh == base.fresh_s:
        return base
    return replace(base, fresh_s=fresh, swr_s=fresh // 2)
