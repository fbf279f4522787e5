"""Cache warming: re-read the most-used keys once their fresh window ended, before they expire for good (the
engine then refreshes them in the background), and re-warm popular keys after an invalidation dropped them.

Only for instances whose key the server holds (settings.JOBNIMBUS_INSTANCES[...]["api_key"]) and only for keys
of that key's tenant: the server never stores callers' keys, so it cannot warm their entries. Each run is bounded
(`limit` reads), so warming can never flood JobNimbus. The re-read itself is a pluggable function chosen by
function its caller passes (the dashboard's, named by DASHBOARD["WARMER"]: (instance, api_key, tool, args) -> bool),
because re-running a tool is mcp_tools' business; cacheops only decides what to warm.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from cacheops import backend, history
from cacheops.keys import hash_tag, tenant_id
from cacheops.policies import effective_policy

log = logging.getLogger(__name__)

Warmer = Callable[[str, str, str, dict[str, Any]], bool]
# Scan at most this many popular keys per run to find `limit` that need warming.
SCAN_FACTOR = 4
# Reads are counted per UTC day (cacheops.history.day_key). A run ranks today's and yesterday's counts together:
# today's alone would be all but empty just after midnight UTC, forgetting the keys read a minute before.
POPULAR_DAYS = 2


@dataclass(frozen=True)
class Candidate:
    """A popular key that needs a re-read, and why ("missing" or "expiring")."""

    member: str
    instance: str
    tool: str
    args: dict[str, Any]
    reason: str


@dataclass
class WarmReport:
    """What one run did."""

    considered: int = 0
    warmed: int = 0
    failed: int = 0
    skipped_no_key: int = 0

    def as_dict(self) -> dict[str, int]:
        """Return the report as JSON."""
        return dict(vars(self))


def server_keys() -> dict[str, str]:
    """Return {instance: api key} of the instances whose key is configured on the server."""
    instances: dict[str, dict[str, Any]] = getattr(settings, "JOBNIMBUS_INSTANCES", {})
    return {name: conf["api_key"] for name, conf in instances.items() if conf.get("api_key")}


def _need(key: str, policy_name: str | None) -> str | None:
    """Return why `key` needs warming ("missing", "expiring") or None when it is fine.

    "expiring" is an entry past its fresh window but still stored: a read now is served stale and makes the
    engine refresh it in the background (stale-while-revalidate), before it expires for good and callers miss.
    """
    pttl: Any = backend.call(lambda r: r.pttl(key), hash_tag(key))
    if pttl is None or int(pttl) < 0:
        return "missing"
    if policy_name is None:
        return None
    policy = effective_policy(policy_name)
    # Entries are stored for the policy's lifetime, so their age is what that lifetime has lost.
    age_s = policy.lifetime_s - int(pttl) / 1000
    return "expiring" if age_s >= policy.fresh_s else None


def popular_keys(now: float, limit: int) -> list[str]:
    """Return the `limit` most-read `tool|key` members of the UTC day of `now` and the day before, most read first."""
    counts: dict[str, int] = defaultdict(int)
    for day in range(POPULAR_DAYS):
        for member, reads in history.top_keys(now - day * 86400, limit):
            counts[member] += reads
    return [member for member, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]


def candidates(now: float, scan: int) -> Iterator[Candidate | None]:
    """Yield, most-read first, the popular keys of the server-held tenants that need warming (None: no key)."""
    keys = server_keys()
    tenants = {instance: tenant_id(api_key) for instance, api_key in keys.items()}
    popular = popular_keys(now, scan)
    known = history.recipes(popular)  # one round trip for every candidate's recipe
    for member in popular:
        recipe = known.get(member)
        if recipe is None or tenants.get(recipe["instance"]) != recipe["tenant"]:
            yield None
            continue
        reason = _need(member.partition("|")[2], recipe.get("policy"))
        if reason:
            yield Candidate(member, recipe["instance"], recipe["tool"], recipe["args"], reason)


def run(limit: int, warmer: Warmer | None = None, progress: Callable[[int, int], None] | None = None) -> WarmReport:
    """Warm at most `limit` keys with `warmer`; call `progress(done, total)` after each. Redis down or no warmer:
    nothing to do.

    `total` is what this run will really attempt (at most `limit`), so a finished run ends at total/total.
    """
    report = WarmReport()
    if warmer is None or limit <= 0:
        return report
    keys = server_keys()
    found = backend.degrade(lambda: list(candidates(time.time(), limit * SCAN_FACTOR)), [])
    total = min(limit, sum(candidate is not None for candidate in found))
    for candidate in found:
        report.considered += 1
        if candidate is None:
            report.skipped_no_key += 1
            continue
        if report.warmed + report.failed >= limit:
            break
        ok = _warm_one(warmer, keys[candidate.instance], candidate)
        report.warmed += ok
        report.failed += not ok
        if progress:
            progress(report.warmed + report.failed, total)
    return report


def _warm_one(warmer: Warmer, api_key: str, c: Candidate) -> bool:
    try:
        return bool(warmer(c.instance, api_key, c.tool, c.args))
    except Exception:  # one failed re-read must not stop the run; the next run retries
        log.exception("warming %s failed", c.tool)
        return False
