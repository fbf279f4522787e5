"""The wire types of a cached read: who asks, what is asked, and what comes back.

A leaf module (it imports nothing of cacheops), so the facade and the engine share these without a cycle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

CacheStatus = Literal["hit_l1", "hit_l2", "miss", "stale", "coalesced", "bypass"]


@dataclass(frozen=True)
class CacheScope:
    """Who is asking: the JobNimbus instance and the tenant (an HMAC of the caller's API key)."""

    instance: str
    tenant: str


@dataclass(frozen=True)
class ReadRequest:
    """One cacheable read.

    `entity` is the JobNimbus record type (contact, job, activity, task, file, estimate, invoice, workorder,
    materialorder, product, payment, user, settings, webhook), `op` the operation (list, get, search, calendar,
    ...) — together the key family. `policy` names the TTL windows (see cacheops.policies). `args` are the
    tool's arguments (the engine normalises them: None dropped, keys sorted), `tags` the
    invalidation tags built with `list_tag`/`record_tag`/`related_tag`, `tool` the MCP tool name for metrics.
    """

    scope: CacheScope
    entity: str
    op: str
    policy: str
    args: Mapping[str, Any]
    tool: str
    tags: Sequence[str] = field(default_factory=tuple)


@dataclass(frozen=True)
class CacheOutcome:
    """A value and how it was obtained, for `_meta["jobnimbus-mcp/cache"]` and `X-Cache`."""

    value: Any
    status: CacheStatus
    age_s: float | None = None
    ttl_s: int | None = None

    @classmethod
    def without_value(cls, status: CacheStatus) -> CacheOutcome:
        """Return the outcome of a call that brought no value back: `bypass` (never went through the cache) or
        `miss` (a cached read whose upstream call failed: errors are never cached)."""
        return cls(value=None, status=status)

    def meta(self) -> dict[str, Any]:
        """Return the `_meta` block that MCP results carry (the one place that builds it)."""
        return {"status": self.status, "age_s": self.age_s, "ttl_s": self.ttl_s}
