"""What one read is resolved against: its plan (key, tags, policy), the windows of a stored value, the answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cacheops import keys
from cacheops.policies import Policy, effective_policy

if TYPE_CHECKING:
    from cacheops.types import CacheStatus, ReadRequest


@dataclass(frozen=True)
class Read:
    """What the facade gets back: the value and how it was obtained."""

    value: Any
    status: CacheStatus
    age_s: float | None
    ttl_s: int | None


@dataclass(frozen=True)
class Plan:
    """One read resolved against settings: its key, tags and windows, and whose key it is read with.

    `distrust_before`: a stored value of that age or older may not answer this read (the source has not accepted
    the caller's key lately, so the read asks it first); only a value stored since, by a fetch with the key, may.
    """

    key: str
    instance: str
    tool: str
    tags: tuple[str, ...]
    policy: Policy
    tenant: str = ""
    distrust_before: float | None = None


def plan(request: ReadRequest) -> Plan:
    """Return the key, tags and policy of `request`."""
    normalised = keys.normalise_args(request.args)
    scope = request.scope
    key = keys.entry_key(scope.instance, scope.tenant, request.entity, request.op, normalised)
    tags = tuple(dict.fromkeys([*request.tags, *keys.entity_tags(request.entity, request.tags)]))
    return Plan(key, scope.instance, request.tool, tags, effective_policy(request.policy), scope.tenant)


def generation_keys(p: Plan) -> list[str]:
    """Return the Redis keys whose values a fill of `p` must find unchanged: its tags' and its instance's epoch.

    All on the instance's hash tag (one slot: one Lua step). Clearing everything bumps every instance's epoch.
    """
    return [*(keys.generation_key(p.instance, tag) for tag in p.tags), keys.epoch_key(p.instance)]


def age_of(envelope: dict[str, Any], now: float) -> float:
    """Return how old a stored value is, in seconds."""
    return max(0.0, now - float(envelope["t"]))


def window_of(envelope: dict[str, Any], policy: Policy, now: float) -> str:
    """Return "fresh", "swr" (serve and refresh), "error_only" (serve only if upstream fails) or "gone"."""
    age = age_of(envelope, now)
    if age < policy.fresh_s:
        return "fresh"
    if age < policy.fresh_s + policy.swr_s:
        return "swr"
    return "error_only" if age < policy.fresh_s + policy.stale_if_error_s else "gone"


def served(envelope: dict[str, Any], status: CacheStatus, p: Plan, now: float) -> Read:
    """Return the answer of `p` from a stored envelope, with its age at `now`."""
    return Read(envelope["v"], status, round(age_of(envelope, now), 3), p.policy.fresh_s)
