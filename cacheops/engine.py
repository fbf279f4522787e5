"""The read-through engine: L1 → L2 (Redis) → single flight → upstream, with the three RFC 5861 windows.

The facade (cacheops.api) calls `read`, `guarded_call` and `invalidate`; everything else is internal.
Whether a Redis failure degrades (skip L2) or raises is decided in one place: `backend.degrade` (here `_l2`).

Measuring it (bench/): `read_through` outcomes carry the status; `cacheops.metrics.snapshot()` sums counters
(reads by tool/status, upstream calls, writes, bytes) across processes; `engine().l1` is the in-process tier
(`.clear()` forces the next read to L2); `engine().wait_idle()` waits out background refreshes; Redis bytes
of an entry are `STRLEN` of `cacheops.keys.entry_key(...)` (prefix CACHE_KEY_NAMESPACE).
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from cacheops import backend, callers, history, keys, metrics
from cacheops.breakers import reset_breakers, upstream_breaker
from cacheops.broadcast import Subscriber, invalidation_message
from cacheops.conf import engine_setting
from cacheops.errors import (
    CacheBackendError,
    UpstreamError,
    UpstreamUnavailableError,
    breaker_verdict,
    key_verdict,
    whole_seconds,
)
from cacheops.l1 import L1Cache, L1Entry, decoded_size
from cacheops.policies import Policy, effective_policy

if TYPE_CHECKING:
    from cacheops.types import ReadRequest

logger = logging.getLogger(__name__)
T = TypeVar("T")

DOWN = backend.DOWN
_l2 = backend.degrade
_UNSET: Any = object()


@dataclass(frozen=True)
class Read:
    """What the facade gets back: the value and how it was obtained."""

    value: Any
    status: str
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


@dataclass
class Flight:
    """An in-process fetch that other threads asking for the same key wait on."""

    # The L1 generations of the key's tags when it took off: once they move, the flight may carry pre-write data.
    seen: dict[str, int]
    done: threading.Event = field(default_factory=threading.Event)
    value: Any = _UNSET
    error: BaseException | None = None


@dataclass(frozen=True)
class Claim:
    """One round trip's answer: whether this caller took the key's lock, the key as stored, its generations."""

    locked: bool
    raw: bytes | None
    generations: list[Any]


def generation_keys(p: Plan) -> list[str]:
    """Return the Redis keys whose values a fill of `p` must find unchanged: its tags' and both epochs."""
    return [
        *(keys.generation_key(p.instance, tag) for tag in p.tags),
        keys.epoch_key(p.instance),
        keys.epoch_key(None),
    ]


# Wall clock of stored-at times and windows; tests move it instead of sleeping.
wall_clock: Callable[[], float] = time.time


def _now() -> float:
    return wall_clock()


def _count_upstream(tool: str, outcome: str) -> None:
    """Count one JobNimbus call in the Prometheus metrics and the dashboard's history."""
    metrics.UPSTREAM_CALLS.labels(tool, outcome).inc()
    history.record_upstream(tool, outcome)


def plan(request: ReadRequest) -> Plan:
    """Return the key, tags and policy of `request`."""
    normalised = keys.normalise_args(request.args, request.defaults)
    scope = request.scope
    key = keys.entry_key(scope.instance, scope.tenant, request.entity, request.op, normalised)
    tags = tuple(dict.fromkeys([*request.tags, *keys.entity_tags(request.entity, request.tags)]))
    return Plan(key, scope.instance, request.tool, tags, effective_policy(request.policy), scope.tenant)


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


class UpstreamBusyError(UpstreamUnavailableError):
    """A miss refused because the process's miss slots are all taken (JobNimbus is slow): retry shortly.

    Refused before any request left, so it says nothing about JobNimbus's health (no breaker counts it).
    """

    instance_fault = False
    reached_upstream = False


class MissGate:
    """Bounds the request threads a process lets block on misses, so cached hits always find a free thread.

    A miss (leading a fetch, following another thread's flight, or waiting on another process's lock) holds one
    of `slots`; when all are taken, up to `queue` more wait at most `wait_s` for one, and the rest are refused at
    once. A web worker with more threads than slots + queue therefore always has threads left for hits, however
    slow JobNimbus is. Background refreshes run on their own pool and take no slot. `slots` 0 means no limit.
    """

    def __init__(self, slots: int, queue: int, wait_s: float) -> None:
        self.slots = slots
        self.queue = queue
        self.wait_s = wait_s
        self.running = 0
        self.waiting = 0
        self._cond = threading.Condition(threading.Lock())

    def enter(self) -> bool:
        """Take a slot (waiting for one in the queue when there is room); False when refused."""
        with self._cond:
            if self.slots <= 0 or self.running < self.slots:
                self.running += 1
                return True
            if self.waiting >= self.queue:
                return False
            self.waiting += 1
            try:
                if not self._cond.wait_for(lambda: self.running < self.slots, self.wait_s):
                    return False
            finally:
                self.waiting -= 1
            self.running += 1
            return True

    def leave(self) -> None:
        """Give a slot back (after a successful `enter`)."""
        with self._cond:
            self.running -= 1
            self._cond.notify()


class Engine:
    """The process's cache engine: L1, flights, the refresher pool and the subscriber."""

    def __init__(self) -> None:
        self.l1 = L1Cache(int(engine_setting("L1_MAX_ENTRIES")), int(engine_setting("L1_MAX_BYTES")))
        self.l1_ttl_s = float(engine_setting("L1_TTL_S"))
        self.max_item_bytes = int(engine_setting("MAX_ITEM_SIZE_KB")) * 1024
        self.lock_ttl_ms = int(float(engine_setting("LOCK_TTL_S")) * 1000)
        self.lock_wait_s = float(engine_setting("LOCK_WAIT_S"))
        self.recheck_s = float(engine_setting("LOCK_RECHECK_S"))
        self.xfetch_beta = float(engine_setting("XFETCH_BETA"))
        self.generation_ttl_s = int(engine_setting("GENERATION_TTL_S"))
        self.max_pending = int(engine_setting("REFRESH_MAX_PENDING"))
        self.miss_gate = MissGate(
            int(engine_setting("MISS_CONCURRENCY")),
            int(engine_setting("MISS_QUEUE")),
            float(engine_setting("MISS_QUEUE_WAIT_S")),
        )
        self.subscriber = Subscriber(self._forget, self.l1.clear)
        self.callers = callers.CallerMemory()
        self._pool = ThreadPoolExecutor(int(engine_setting("REFRESH_WORKERS")), thread_name_prefix="cacheops-refresh")
        self._flights: dict[str, Flight] = {}
        self._refreshing: set[str] = set()
        self._pending: deque[tuple[str, list[str]]] = deque(maxlen=10_000)
        self._lock = threading.Lock()
        self._reaping = False

    # --- reads -------------------------------------------------------------------------------------------
    def read(self, request: ReadRequest, fetch: Callable[[], Any]) -> Read:
        """Return the value of `request` from the best tier that may serve it."""
        started = time.perf_counter()
        p = plan(request)
        self.subscriber.ensure_started()
        result = self._resolve(p, fetch)
        elapsed = time.perf_counter() - started
        metrics.count_read(p.tool, result.status, elapsed)
        history.observe_read(request, p.key, result.status, elapsed)  # the dashboard's history (never raises)
        return result

    def _resolve(self, p: Plan, fetch: Callable[[], Any]) -> Read:
        now = _now()
        self.subscriber.drain_pending()  # an invalidation that has reached this process applies before L1 answers
        standing = self.callers.local(p.instance, p.tenant)
        callers.raise_if_refused(standing)  # a refused key is answered neither by JobNimbus nor by the cache
        local = self.l1.get(p.key)
        if local is not None and standing.accepted:
            return self._served(local, "hit_l1", p, now)
        if self._pending:
            self._replay_pending()
        # Taken before the Redis read: an invalidation landing after it must keep what we read out of L1.
        seen = self.l1.generations(p.instance, p.tags)
        stored, standing = self._stored(p, standing)
        # An untrusted key's L1 copy is its fallback when Redis cannot say (away, or the entry gone from it).
        candidate = stored if isinstance(stored, dict) else (None if standing.accepted else local)
        fallback = None
        if candidate is not None:
            served, p, fallback = self._use_stored(p, fetch, candidate, standing.accepted, seen)
            if served is not None:
                return served
        try:
            value, status = self._miss(p, fetch, redis_ok=stored is not DOWN)
        except UpstreamUnavailableError:  # UpstreamBusyError included: stale-if-error serves a busy miss too
            if fallback is None:
                raise
            return self._served(fallback, "stale", p, _now())
        return Read(value, status, 0.0, p.policy.fresh_s)

    def _miss(self, p: Plan, fetch: Callable[[], Any], *, redis_ok: bool) -> tuple[Any, str]:
        """Resolve a miss in one of the process's miss slots; refuse it (UpstreamBusyError) when none frees up."""
        if not self.miss_gate.enter():
            metrics.UPSTREAM_CALLS.labels(p.tool, "busy").inc()  # never sent: not in the history of JobNimbus calls
            raise UpstreamBusyError(
                "too many JobNimbus reads are in flight on this server, retry in 1 s", retry_after_s=1
            )
        try:
            return self._single_flight(p, fetch, redis_ok=redis_ok)
        finally:
            self.miss_gate.leave()

    def _stored(self, p: Plan, standing: callers.Standing) -> tuple[Any, callers.Standing]:
        """Return the stored envelope (None, or DOWN) and the caller's standing, which `_get` read along with it.

        Raises KeyRefusedError when any process has recorded that JobNimbus refused the caller's key.
        """
        if self._pending:  # a write's invalidation still unreplayed: Redis may hold what it made stale
            return DOWN, standing
        stored = _l2(lambda: self._get(p))
        if stored is DOWN:
            return DOWN, standing
        standing = self.callers.local(p.instance, p.tenant)
        callers.raise_if_refused(standing)
        return stored, standing

    def _use_stored(
        self, p: Plan, fetch: Callable[[], Any], stored: dict[str, Any], trusted: bool, seen: dict[str, int]
    ) -> tuple[Read | None, Plan, dict[str, Any] | None]:
        """Serve `stored` if its window and the caller's key allow; else return the plan to fetch with, and a fallback.

        An untrusted key (JobNimbus has not accepted it within KEY_REVALIDATE_S) is not served from cache: the read
        asks JobNimbus first, and this value answers only if JobNimbus is unavailable.
        """
        now = _now()
        window = window_of(stored, p.policy, now)
        if not trusted:
            return None, replace(p, distrust_before=float(stored["t"])), (None if window == "gone" else stored)
        if window == "fresh":
            self._remember(p, stored, now, seen)
            self._maybe_xfetch(p, fetch, stored, now)
            return self._served(stored, "hit_l2", p, now), p, None
        if window == "swr":
            self._schedule_refresh(p, fetch, stored["t"], "swr")
            return self._served(stored, "stale", p, now), p, None
        return None, p, (stored if window == "error_only" else None)

    def _served(self, envelope: dict[str, Any], status: str, p: Plan, now: float) -> Read:
        return Read(envelope["v"], status, round(age_of(envelope, now), 3), p.policy.fresh_s)

    def _get(self, p: Plan) -> dict[str, Any] | None:
        """Return the stored envelope of `p` (or None); what Redis knows of the caller's key, read in the same round
        trip, goes into the caller memory (cacheops.callers)."""

        def run(r: Any) -> list[Any]:
            pipe = r.pipeline(transaction=False)
            pipe.get(p.key)
            callers.queue_reads(pipe, p.instance, p.tenant)
            answers: list[Any] = pipe.execute()
            return answers

        raw, *standing = backend.call(run)
        self.callers.merge(p.instance, p.tenant, standing)
        return None if raw is None else self._decode(p, raw)

    def _decode(self, p: Plan, raw: bytes) -> dict[str, Any]:
        metrics.BYTES.labels(p.tool, "read").inc(len(raw))
        envelope: dict[str, Any]
        envelope, text_length = backend.decode_sized(raw)
        envelope["_size"] = decoded_size(text_length)  # the memory it takes here, not its compressed bytes
        return envelope

    def _remember(self, p: Plan, envelope: dict[str, Any], now: float, seen: dict[str, int] | None = None) -> None:
        """Keep a fresh envelope in L1 until the sooner of the L1 TTL and the end of its fresh window."""
        fresh_left = float(envelope["t"]) + p.policy.fresh_s - now
        ttl = min(self.l1_ttl_s, fresh_left)
        if ttl <= 0:
            return
        entry = L1Entry(envelope, p.instance, frozenset(p.tags), int(envelope.get("_size", 0)), time.monotonic() + ttl)
        if self.l1.put(p.key, entry, seen):
            metrics.WRITES.labels(p.tool, "l1").inc()

    def _maybe_xfetch(self, p: Plan, fetch: Callable[[], Any], envelope: dict[str, Any], now: float) -> None:
        """Refresh early with probability rising as expiry nears, scaled by the fetch cost (XFetch)."""
        delta = float(envelope.get("d", 0.0))
        if delta <= 0 or self.xfetch_beta <= 0:
            return
        expiry = float(envelope["t"]) + p.policy.fresh_s
        if now - delta * self.xfetch_beta * math.log(1.0 - random.random()) >= expiry:
            self._schedule_refresh(p, fetch, envelope["t"], "xfetch")

    # --- single flight -----------------------------------------------------------------------------------
    def _single_flight(self, p: Plan, fetch: Callable[[], Any], *, redis_ok: bool) -> tuple[Any, str]:
        flight, leader = self._board(p)
        if not leader:
            return self._follow(p, fetch, flight, redis_ok)
        try:
            flight.value, status = self._across_processes(p, fetch, redis_ok)
            return flight.value, status
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                if self._flights.get(p.key) is flight:  # a later flight may have replaced it
                    del self._flights[p.key]
            flight.done.set()

    def _board(self, p: Plan) -> tuple[Flight, bool]:
        """Return the flight to wait on and False, or a new flight this caller leads and True.

        A flight that took off before an invalidation of its tags (here or broadcast) is not joined: it may
        bring back what JobNimbus held before the write, and a read that starts after a write must see it.
        """
        with self._lock:
            seen = self.l1.generations(p.instance, p.tags)
            flight = self._flights.get(p.key)
            if flight is not None and flight.seen == seen:
                return flight, False
            flight = self._flights[p.key] = Flight(seen)
            return flight, True

    def _follow(self, p: Plan, fetch: Callable[[], Any], flight: Flight, redis_ok: bool) -> tuple[Any, str]:
        if not flight.done.wait(self.lock_wait_s):
            return self._fetch_and_store(p, fetch, redis_ok), "miss"
        if flight.error is not None:
            raise flight.error
        return flight.value, "coalesced"

    def _across_processes(self, p: Plan, fetch: Callable[[], Any], redis_ok: bool) -> tuple[Any, str]:
        if not redis_ok:
            return self._fetch_and_store(p, fetch, redis_ok=False), "miss"
        token = uuid.uuid4().hex
        deadline = time.monotonic() + self.lock_wait_s
        event = None
        try:
            while True:
                seen_l1 = self.l1.generations(p.instance, p.tags)
                claim = self._claim(p, token)
                if claim is DOWN:
                    return self._fetch_and_store(p, fetch, redis_ok=False), "miss"
                if claim.locked:
                    return self._lead(p, fetch, token, claim, seen_l1)
                if event is None:
                    event = self.subscriber.watch(p.key)
                    _l2(lambda: backend.call(lambda r: r.set(keys.waiters_key(p.key), 1, px=self.lock_ttl_ms)))
                filled = self._filled(p)
                if filled is not None:
                    return filled, "coalesced"
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return self._fetch_and_store(p, fetch, redis_ok=True), "miss"
                # Woken by the holder's announcement; the re-check slice covers a holder that died.
                event.wait(min(self.recheck_s, remaining))
                event.clear()
        finally:
            if event is not None:
                self.subscriber.unwatch(p.key, event)

    def _claim(self, p: Plan, token: str) -> Claim | Any:
        """Try the key's single-flight lock, and read the key and its generations, in one round trip (or DOWN).

        Redis runs the three in order, so the read is the double-check after taking the lock and the generations
        are seen before the fetch starts: what the guard needs, without three trips on every miss.
        """
        gen_keys = generation_keys(p)

        def run(r: Any) -> list[Any]:
            pipe = r.pipeline(transaction=False)
            pipe.set(keys.lock_key(p.key), token, nx=True, px=self.lock_ttl_ms)
            pipe.get(p.key)
            pipe.mget(gen_keys)
            result: list[Any] = pipe.execute()
            return result

        answer = _l2(lambda: backend.call(run))
        if answer is DOWN:
            return DOWN
        locked, raw, generations = answer
        return Claim(bool(locked), raw, generations)

    @staticmethod
    def _lock_of(p: Plan, token: str) -> backend.Release:
        return backend.Release(p.key, keys.lock_key(p.key), keys.waiters_key(p.key), token, keys.fill_channel())

    def _release(self, lock: backend.Release) -> None:
        """Release `lock` unless a store step released it already."""
        if not lock.done:
            _l2(lambda: backend.release(lock))

    def _filled(self, p: Plan) -> Any:
        seen = self.l1.generations(p.instance, p.tags)
        return self._fresh_value(p, _l2(lambda: self._get(p), None), seen)

    def _fresh_value(self, p: Plan, stored: dict[str, Any] | None, seen: dict[str, int]) -> Any:
        """Return the value of `stored` if it is fresh and may answer `p` (kept in L1 too), else None."""
        if not isinstance(stored, dict) or (p.distrust_before is not None and stored["t"] <= p.distrust_before):
            return None
        if window_of(stored, p.policy, _now()) == "fresh":
            self._remember(p, stored, _now(), seen)
            return stored["v"]
        return None

    def _lead(
        self, p: Plan, fetch: Callable[[], Any], token: str, claim: Claim, seen_l1: dict[str, int]
    ) -> tuple[Any, str]:
        lock = self._lock_of(p, token)
        try:
            # Double-checked: the previous holder may have filled the key between our read and our lock.
            stored = self._decode(p, claim.raw) if claim.raw is not None else None
            filled = self._fresh_value(p, stored, seen_l1)
            if filled is not None:
                return filled, "coalesced"
            return self._fetch_and_store(p, fetch, redis_ok=True, seen=(claim.generations, seen_l1), lock=lock), "miss"
        finally:
            self._release(lock)  # when the store did not run (too big, a failure) or Redis did not answer it

    # --- fetch and store ---------------------------------------------------------------------------------
    def _fetch_and_store(
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
            seen_l2 = _l2(lambda: backend.call(lambda r: r.mget(gen_keys))) if redis_ok else DOWN
            seen_l1 = self.l1.generations(p.instance, p.tags)
        started = time.perf_counter()
        value = self.guarded_call(p.instance, p.tool, fetch, tenant=p.tenant)
        envelope = {"v": value, "t": _now(), "d": round(time.perf_counter() - started, 6), "f": p.policy.fresh_s}
        raw, text_length = backend.encode_sized(envelope)
        if len(raw) > self.max_item_bytes:
            metrics.UNCACHEABLE.labels(p.tool, "too_big").inc()
            return value
        envelope["_size"] = decoded_size(text_length)
        if seen_l2 is not DOWN and self._store_l2(p, raw, gen_keys, seen_l2, lock) is False:
            metrics.UNCACHEABLE.labels(p.tool, "invalidated_during_fetch").inc()
            return value
        self._remember(p, envelope, _now(), seen_l1)
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
            metrics.WRITES.labels(p.tool, "l2").inc()
            metrics.BYTES.labels(p.tool, "written").inc(len(raw))
        return stored

    def check_key(self, instance: str, tenant: str) -> None:
        """Raise at once if any process knows the caller's key may not be sent now (refused, or backing off)."""
        callers.raise_if_held(self.callers.shared(instance, tenant))

    def guarded_call(self, instance: str, tool: str, call: Callable[[], T], tenant: str | None = None) -> T:
        """Run an upstream call under the instance's breaker (one probe at a time when half-open).

        With the caller's `tenant`, a key this process knows to be refused or backing off is not sent at all, and
        what the answer says about the key is remembered (cacheops.callers).
        """
        if tenant:
            callers.raise_if_held(self.callers.local(instance, tenant))
        breaker, gate = upstream_breaker(instance)
        state = breaker.state
        if state == "OPEN":
            _count_upstream(tool, "breaker_open")
            wait = whole_seconds(breaker.retry_after_s(), 1)
            raise UpstreamUnavailableError(f"JobNimbus is unavailable, retry in {wait} s", retry_after_s=wait)
        probe = state == "HALF_OPEN"
        if probe and not gate.try_enter():
            _count_upstream(tool, "breaker_open")
            raise UpstreamUnavailableError("JobNimbus is unavailable, retry in 1 s", retry_after_s=1)
        try:
            return self._counted(breaker, tool, call, (instance, tenant) if tenant else None)
        finally:
            if probe:
                gate.leave()

    def _counted(self, breaker: Any, tool: str, call: Callable[[], T], caller: tuple[str, str] | None) -> T:
        try:
            value = call()
        except Exception as exc:
            self._account_failure(breaker, tool, exc, caller)
            raise
        breaker.record_success()
        _count_upstream(tool, "ok")
        if caller is not None:
            self.callers.accept(*caller)
        return value

    def _account_failure(self, breaker: Any, tool: str, exc: Exception, caller: tuple[str, str] | None) -> None:
        """Tell the breaker and the caller memory what a failed call means; the error classes decide (errors.py).

        Only an instance fault counts against the breaker: one caller's bad request, refused key or 429 must never
        make JobNimbus look down to every tenant. A request that never left counts neither way.
        """
        verdict = breaker_verdict(exc)
        if verdict == "failure":
            breaker.record_failure(getattr(exc, "retry_after_s", None))
            _count_upstream(tool, "unavailable")
        elif verdict == "success":
            breaker.record_success()
            _count_upstream(tool, "error")
        if caller is not None:
            self._note_key(caller, exc)

    def _note_key(self, caller: tuple[str, str], exc: Exception) -> None:
        verdict = key_verdict(exc)
        if verdict == "refused":
            self.callers.refuse(*caller)
        elif verdict == "backoff" and isinstance(exc, UpstreamError):
            # The user is told the wait this server holds the key back for (Retry-After, capped), not a day of nines.
            exc.retry_after_s = self.callers.back_off(*caller, exc.retry_after_s)
        elif verdict == "accepted":
            self.callers.accept(*caller)

    # --- background refresh ------------------------------------------------------------------------------
    def _schedule_refresh(self, p: Plan, fetch: Callable[[], Any], seen_t: float, trigger: str) -> None:
        with self._lock:
            if p.key in self._refreshing or len(self._refreshing) >= self.max_pending:
                return
            self._refreshing.add(p.key)
        self._pool.submit(self._refresh, p, fetch, seen_t, trigger)

    def _refresh(self, p: Plan, fetch: Callable[[], Any], seen_t: float, trigger: str) -> None:
        outcome = "skipped"
        try:
            outcome = self._refresh_once(p, fetch, seen_t)
        except UpstreamUnavailableError:
            outcome = "unavailable"
        except Exception:
            # JobNimbus answered with a refusal (a revoked key, a deleted record): serving the old answer on
            # through the stale window would hide it, so the entry goes and the next read asks and reports it.
            outcome = "error"
            self._drop(p)
            logger.exception("background refresh of %s failed; its entry was dropped", p.tool)
        finally:
            with self._lock:
                self._refreshing.discard(p.key)
            metrics.REFRESHES.labels(trigger, outcome).inc()

    def _refresh_once(self, p: Plan, fetch: Callable[[], Any], seen_t: float) -> str:
        token = uuid.uuid4().hex
        seen_l1 = self.l1.generations(p.instance, p.tags)
        claim = self._claim(p, token)
        if claim is DOWN or not claim.locked:
            return "skipped"  # another process is fetching this key already (or Redis is away)
        lock = self._lock_of(p, token)
        try:
            current = self._decode(p, claim.raw) if claim.raw is not None else None
            if current is not None and current["t"] != seen_t:
                return "skipped"  # refreshed (or replaced) since the reader saw it
            self._fetch_and_store(p, fetch, redis_ok=True, seen=(claim.generations, seen_l1), lock=lock)
            return "ok"
        finally:
            self._release(lock)

    def _drop(self, p: Plan) -> None:
        """Delete the entry of `p` here and in Redis (other processes' L1 copies expire within the L1 TTL)."""
        self.l1.discard(p.key)
        _l2(lambda: backend.call(lambda r: r.delete(p.key)))

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no background refresh is queued or running (tests, shutdown); return whether it is."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._refreshing:
                    return True
            time.sleep(0.005)
        return False

    # --- invalidation ------------------------------------------------------------------------------------
    def invalidate(self, instance: str, tags: Iterable[str]) -> int:
        """Drop entries of `instance` under `tags` in every tier and process; raise CacheBackendError if Redis fails."""
        wanted = list(dict.fromkeys(tags))
        if not wanted:
            return 0
        # Unreadable here at once; reaped only after the Redis step, so the reaper does not compete with it.
        local = self.l1.invalidate(instance, wanted)
        self._replay_pending()
        try:
            dropped = self._invalidate_l2(instance, wanted)
        except CacheBackendError:
            # Remembered and replayed before this process next touches Redis, so a write made while Redis was
            # away cannot be undone by the entries Redis still holds when it returns. The caller still hears of it.
            with self._lock:
                self._pending.append((instance, wanted))
            raise
        finally:
            # Again after Redis: a local read may have copied a Redis entry into L1 between the two steps.
            local += self.l1.invalidate(instance, wanted)
            if local:
                self._reap_soon()
        self._broadcast(instance, wanted)
        return dropped

    def _forget(self, instance: str, tags: Iterable[str]) -> int:
        """Make L1's entries under `tags` unreadable now; their memory is reclaimed in the background."""
        dropped = self.l1.invalidate(instance, tags)
        if dropped:
            self._reap_soon()
        return dropped

    def _reap_soon(self) -> None:
        """Have a pool thread remove invalidated L1 entries, unless one is on it already."""
        with self._lock:
            if self._reaping:
                return
            self._reaping = True
        try:
            self._pool.submit(self._reap)
        except RuntimeError:  # the pool is shut down (process exit): reclaim here
            self._reap()

    def _reap(self) -> None:
        try:
            self.l1.reap()
        finally:
            with self._lock:
                self._reaping = False
        if self.l1.has_doomed():  # invalidated after the reap ended but before the flag dropped: go round again
            self._reap_soon()

    def _invalidate_l2(self, instance: str, tags: list[str]) -> int:
        index_keys = [keys.tag_index_key(instance, tag) for tag in tags]
        gen_keys = [keys.generation_key(instance, tag) for tag in tags]
        dropped = backend.invalidate(index_keys, gen_keys, self.generation_ttl_s)
        metrics.INVALIDATIONS.labels(instance).inc(dropped)
        return dropped

    def _replay_pending(self) -> None:
        """Apply invalidations that failed while Redis was away, oldest first; stop at the first failure."""
        while self._pending:
            with self._lock:
                if not self._pending:
                    return
                instance, tags = self._pending[0]
            if _l2(partial(self._invalidate_l2, instance, tags)) is DOWN:
                return
            self._broadcast(instance, tags)
            with self._lock:
                if self._pending and self._pending[0] == (instance, tags):
                    self._pending.popleft()

    def clear_matching(self, instance: str | None, pattern: str | None = None) -> int:
        """Delete this app's entries (of `instance`, matching `pattern` under it) by SCAN; admin use only.

        A pattern names no tags, so the whole instance's epoch is bumped: every fetch of it in flight (begun
        before the clear) is refused its store. Generation counters are kept: deleted, they would count from
        0 again and let a fetch that read an old value pass the guard.
        """
        match = keys.app_key_pattern(instance) if pattern is None else keys.app_key_pattern(instance)[:-1] + pattern
        self.l1.clear(instance)
        backend.bump(keys.epoch_key(instance), self.generation_ttl_s)
        deleted = backend.call(lambda r: _scan_delete(r, match, keys.generation_prefix()))
        self.l1.clear(instance)  # again: a read may have copied an entry into L1 during the scan
        self._broadcast(instance, None)
        return deleted

    def _broadcast(self, instance: str | None, tags: list[str] | None) -> None:
        payload = invalidation_message(instance, tags)
        _l2(lambda: backend.call(lambda r: r.publish(keys.invalidation_channel(), payload)))

    def close(self) -> None:
        """Stop the subscriber and the refresher pool."""
        self.subscriber.stop()
        self._pool.shutdown(wait=True, cancel_futures=True)


def _scan_delete(r: Any, match: str, keep_prefix: str) -> int:
    deleted = 0
    batch: list[bytes] = []
    keep = keep_prefix.encode()
    for key in r.scan_iter(match=match, count=1000):
        if key.startswith(keep):
            continue
        batch.append(key)
        if len(batch) >= 500:
            deleted += r.unlink(*batch)
            batch = []
    if batch:
        deleted += r.unlink(*batch)
    return int(deleted)


_engine: Engine | None = None
_engine_pid = 0
_engine_lock = threading.Lock()


def engine() -> Engine:
    """Return the process's engine, built from settings on first use."""
    global _engine, _engine_pid
    if _engine is None or _engine_pid != os.getpid():
        with _engine_lock:
            # A forked child (gunicorn --preload) inherits no threads: it builds its own engine.
            if _engine is None or _engine_pid != os.getpid():
                _engine, _engine_pid = Engine(), os.getpid()
    return _engine


def reset_engine() -> None:
    """Stop and forget the engine, breakers and loaded scripts (settings changed, tests)."""
    global _engine
    with _engine_lock:
        old, _engine = _engine, None
    if old is not None:
        old.close()
    reset_breakers()
    backend.reset_scripts()
