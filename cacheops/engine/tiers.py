"""The two tiers as one read and one store: L1 puts, Redis reads (with the caller's standing), the single-flight
lock's claim and release, and the fetch-then-store step under the generation guard.

Whether a Redis failure degrades (skip L2) or raises is decided by `backend.degrade` (here `_l2`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cacheops import backend, callers, keys, observe
from cacheops.conf import engine_setting
from cacheops.engine.clock import now
from cacheops.engine.plans import Plan, generation_keys, window_of
from cacheops.engine.upstream import UpstreamGuard
from cacheops.l1 import L1Cache, L1Entry, decoded_size

DOWN = backend.DOWN
_l2 = backend.degrade


@dataclass(frozen=True)
class Claim:
    """One round trip's answer: whether this caller took the key's lock, the key as stored, its generations."""

    locked: bool
    raw: bytes | None
    generations: list[Any]


class Tiers:
    """L1 and Redis seen by one read: get, remember, claim the key's fill, fetch and store."""

    def __init__(self, l1: L1Cache, memory: callers.CallerMemory, guard: UpstreamGuard) -> None:
        self.l1 = l1
        self.callers = memory
        self.guard = guard
        self.l1_ttl_s = float(engine_setting("L1_TTL_S"))
        self.max_item_bytes = int(engine_setting("MAX_ITEM_SIZE_KB")) * 1024
        self.lock_ttl_ms = int(float(engine_setting("LOCK_TTL_S")) * 1000)

    # --- reading -----------------------------------------------------------------------------------------
    def get(self, p: Plan) -> dict[str, Any] | None:
        """Return the stored envelope of `p` (or None); what Redis knows of the caller's key, read in the same round
        trip, goes into the caller memory (cacheops.callers)."""

        def run(r: Any) -> list[Any]:
            pipe = r.pipeline(transaction=False)
            pipe.get(p.key)
            callers.queue_reads(pipe, p.instance, p.tenant)
            answers: list[Any] = pipe.execute()
            return answers

        raw, *standing = backend.call(run, p.instance)
        self.callers.merge(p.instance, p.tenant, standing)
        return None if raw is None else self.decode(p, raw)

    def decode(self, p: Plan, raw: bytes) -> dict[str, Any]:
        """Return the envelope stored as `raw`, sized by the memory it takes here (not its compressed bytes)."""
        observe.loaded(p.tool, len(raw))
        envelope: dict[str, Any]
        envelope, text_length = backend.decode_sized(raw)
        envelope["_size"] = decoded_size(text_length)
        return envelope

    def remember(self, p: Plan, envelope: dict[str, Any], at: float, seen: dict[str, int] | None = None) -> None:
        """Keep a fresh envelope in L1 until the sooner of the L1 TTL and the end of its fresh window."""
        fresh_left = float(envelope["t"]) + p.policy.fresh_s - at
        ttl = min(self.l1_ttl_s, fresh_left)
        if ttl <= 0:
            return
        entry = L1Entry(envelope, p.instance, frozenset(p.tags), int(envelope.get("_size", 0)), time.monotonic() + ttl)
        if self.l1.put(p.key, entry, seen):
            observe.stored(p.tool, "l1")

    def fresh_value(self, p: Plan, stored: dict[str, Any] | None, seen: dict[str, int]) -> Any:
        """Return the value of `stored` if it is fresh and may answer `p` (kept in L1 too), else None."""
        if not isinstance(stored, dict) or (p.distrust_before is not None and stored["t"] <= p.distrust_before):
            return None
        if window_of(stored, p.policy, now()) == "fresh":
            self.remember(p, stored, now(), seen)
            return stored["v"]
        return None

    def filled(self, p: Plan) -> Any:
        """Return the fresh value another reader stored for `p` meanwhile, or None."""
        seen = self.l1.generations(p.instance, p.tags)
        return self.fresh_value(p, _l2(lambda: self.get(p), None), seen)

    # --- the key's fill lock -----------------------------------------------------------------------------
    def claim(self, p: Plan, token: str) -> Claim | Any:
        """Try the key's single-flight lock, and read the key and its generations, in one round trip (or DOWN).

        Redis runs the three in order, so the read is the double-check after taking the lock and the generations
        are seen before the fetch starts: what the guard needs, without three trips on every miss.
        """
        gen_keys = generation_keys(p)

        def run(r: Any) -> list[Any]:
            pipe = r.pipeline(transaction=False)
            pipe.set(keys.lock_key(p.key), token, nx=True, px=self.lock_ttl_ms)
            pipe.get(p.key)
            for gen_key in gen_keys:  # GETs, not MGET: a cluster pipeline refuses MGET (same round trip either way)
                pipe.get(gen_key)
            result: list[Any] = pipe.execute()
            return result

        answer = _l2(lambda: backend.call(run, p.instance))
        if answer is DOWN:
            return DOWN
        locked, raw, *generations = answer
        return Claim(bool(locked), raw, generations)

    @staticmethod
    def lock_of(p: Plan, token: str) -> backend.Release:
        """Return the release of the fill lock `token` holds on the key of `p`."""
        return backend.Release(p.key, keys.lock_key(p.key), keys.waiters_key(p.key), token, keys.fill_channel())

    @staticmethod
    def release(lock: backend.Release) -> None:
        """Release `lock` unless a store step released it already."""
        if not lock.done:
            _l2(lambda: backend.release(lock))

    def announce_waiter(self, p: Plan) -> None:
        """Ask the holder of the key's lock to announce its fill (this process waits on the fill channel)."""
        _l2(lambda: backend.call(lambda r: r.set(keys.waiters_key(p.key), 1, px=self.lock_ttl_ms), p.instance))

    # --- fetch and store ---------------------------------------------------------------------------------
    def fetch_and_store(
        self,
        p: Plan,
        fetch: Callable[[], Any],
        redis_ok: bool,
        seen: tuple[list[Any], dict[str, int]] | None = None,
        lock: backend.Release | None = None,
    ) -> Any:
        """Fetch, then store under the generation guard; `seen` = (L2, L1) generations already read before.

        With `lock`, the store step also releases that single-flight lock (and marks it done).
        """
        gen_keys = generation_keys(p)
        if seen is not None:
            seen_l2, seen_l1 = seen
        else:
            seen_l2 = _l2(lambda: backend.call(lambda r: r.mget(gen_keys), p.instance)) if redis_ok else DOWN
            seen_l1 = self.l1.generations(p.instance, p.tags)
        started = time.perf_counter()
        value = self.guard.guarded_call(p.instance, p.tool, fetch, tenant=p.tenant)
        envelope = {"v": value, "t": now(), "d": round(time.perf_counter() - started, 6), "f": p.policy.fresh_s}
        raw, text_length = backend.encode_sized(envelope)
        if len(raw) > self.max_item_bytes:
            observe.uncacheable(p.tool, "too_big")
            return value
        envelope["_size"] = decoded_size(text_length)
        if seen_l2 is not DOWN and self._store_l2(p, raw, gen_keys, seen_l2, lock) is False:
            observe.uncacheable(p.tool, "invalidated_during_fetch")
            return value
        self.remember(p, envelope, now(), seen_l1)
        return value

    def _store_l2(
        self, p: Plan, raw: bytes, gen_keys: list[str], seen: list[Any], lock: backend.Release | None = None
    ) -> Any:
        """Store under the generation guard (releasing `lock` in the same step); return True, False or DOWN."""
        generations = [int(g) if g is not None else 0 for g in seen]
        index_keys = [keys.tag_index_key(p.instance, tag) for tag in p.tags]
        px = p.policy.lifetime_s * 1000
        stored = _l2(lambda: backend.store(p.key, raw, px, gen_keys, generations, index_keys, lock))
        if stored is True:
            observe.stored(p.tool, "l2", len(raw))
        return stored

    def drop(self, p: Plan) -> None:
        """Delete the entry of `p` here and in Redis (other processes' L1 copies expire within the L1 TTL)."""
        self.l1.discard(p.key)
        _l2(lambda: backend.call(lambda r: r.delete(p.key), p.instance))
