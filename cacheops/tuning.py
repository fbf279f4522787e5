"""TTL auto-tuning: the decision rule (pure) and the shared store of tuned TTLs the engine consults.

The tuner (dashboard.ttl) gathers evidence per cache policy, asks `decide` for a new fresh TTL, records it, and
`publish`es the TTLs in force to one Redis hash. Every process reads that hash through `lookup`, installed as
cacheops.policies' override source, with a short in-process memo so the request path never waits on it; when
Redis is unavailable the built-in TTLs apply.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from cacheops import backend, keys
from cacheops.entities import policy_entities
from cacheops.policies import DEFAULT_POLICIES, set_ttl_override_source

# JobNimbus record type whose changes invalidate each policy's entries (for the invalidation rate).
POLICY_ENTITY: dict[str, str] = policy_entities()
MEMO_S = 30.0
# Shorten when the data changes at least this many times per TTL; lengthen when below the stable bound.
CHANGES_PER_TTL_HIGH = 1.0
CHANGES_PER_TTL_STABLE = 0.1
STALE_SHARE_HIGH = 0.2
EXPIRY_MISS_SHARE_HIGH = 0.2
TARGET_HIT_RATE = 0.9


@dataclass(frozen=True)
class Evidence:
    """What the tuner saw for one policy over its window."""

    requests: int
    hit_rate: float | None
    invalidations_per_h: float
    stale_share: float
    expiry_miss_share: float
    window_h: float


@dataclass(frozen=True)
class Decision:
    """A proposed fresh TTL and why; `new_ttl_s == current_ttl_s` means keep."""

    policy: str
    current_ttl_s: int
    new_ttl_s: int
    reason: str
    evidence: dict[str, Any]

    @property
    def changes(self) -> bool:
        """Return whether the decision moves the TTL."""
        return self.new_ttl_s != self.current_ttl_s


def default_bounds(policy: str) -> tuple[int, int]:
    """Return (min, max) fresh TTL of a policy: a quarter to four times its default, within one minute to a day."""
    default = DEFAULT_POLICIES[policy].fresh_s
    return max(60, default // 4), min(86400, default * 4)


def decide(policy: str, current: int, bounds: tuple[int, int], ev: Evidence, min_requests: int) -> Decision:
    """Return the TTL the evidence calls for: shorter when data changes often or stale serves are common,
    longer when data is stable and hits are lost to expiry; within `bounds`, never on thin evidence."""
    changes_per_ttl = ev.invalidations_per_h * current / 3600
    evidence = {**asdict(ev), "changes_per_ttl": round(changes_per_ttl, 3)}
    low, high = bounds

    def verdict(ttl: int, reason: str) -> Decision:
        return Decision(policy, current, min(high, max(low, ttl)), reason, evidence)

    if ev.requests < min_requests:
        return verdict(current, f"keep: {ev.requests} requests is too little evidence (need {min_requests})")
    if changes_per_ttl >= CHANGES_PER_TTL_HIGH or ev.stale_share >= STALE_SHARE_HIGH:
        return verdict(
            current // 2,
            f"shorten: data changes {changes_per_ttl:.1f} times per TTL, {ev.stale_share:.0%} of reads were stale",
        )
    expiring = ev.expiry_miss_share >= EXPIRY_MISS_SHARE_HIGH and (ev.hit_rate or 0.0) < TARGET_HIT_RATE
    if changes_per_ttl < CHANGES_PER_TTL_STABLE and expiring:
        return verdict(
            current * 2,
            f"lengthen: data is stable ({changes_per_ttl:.2f} changes per TTL) and "
            f"{ev.expiry_miss_share:.0%} of reads missed a key read before",
        )
    return verdict(current, "keep: change rate and hit rate are in balance")


def _store_key() -> str:
    return keys.tuned_ttls_key()


_memo: dict[str, int] = {}
_memo_at = 0.0
# The store the memo was read from: a namespace change (tests, settings) forces a re-read.
_memo_from = ""
_memo_lock = threading.Lock()


def publish(ttls: Mapping[str, int]) -> None:
    """Replace the tuned TTLs every process uses (policy -> fresh seconds); raise CacheBackendError when down."""

    def write(r: Any) -> None:
        # MULTI/EXEC on one key: readers never see the hash emptied (a cluster runs it on the key's one slot).
        pipe = r.pipeline(transaction=True)
        pipe.delete(_store_key())
        if ttls:
            pipe.hset(_store_key(), mapping={k: int(v) for k, v in ttls.items()})
        pipe.execute()

    backend.call(write)
    forget()


def forget() -> None:
    """Drop this process's memo so the next lookup re-reads the store."""
    global _memo_at
    with _memo_lock:
        _memo_at = 0.0


def _refresh() -> dict[str, int]:
    raw: Any = backend.degrade(lambda: backend.call(lambda r: r.hgetall(_store_key())), None)
    if not isinstance(raw, dict):
        return {}
    return {k.decode(): int(v) for k, v in raw.items()}


def lookup(policy: str) -> int | None:
    """Return the tuned fresh TTL of `policy`, or None to use the configured one (memoised for MEMO_S)."""
    global _memo, _memo_at, _memo_from
    now, store = time.monotonic(), _store_key()
    if now - _memo_at > MEMO_S or store != _memo_from:
        fresh = _refresh()
        with _memo_lock:
            _memo, _memo_at, _memo_from = fresh, now, store
    return _memo.get(policy)


def install() -> None:
    """Make the engine consult the tuned TTLs (called once at start-up)."""
    set_ttl_override_source(lookup)
