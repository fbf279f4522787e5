"""The Engine: the coordinator the facade (cacheops.api) calls. A read goes L1 → L2 (Redis) → single flight →
upstream, with the three RFC 5861 windows; the steps it hands off live in the sibling modules."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from cacheops import backend, callers, observe
from cacheops.broadcast import Subscriber
from cacheops.conf import engine_setting
from cacheops.engine.clock import now
from cacheops.engine.flight import SingleFlight
from cacheops.engine.gate import MissGate, UpstreamBusyError
from cacheops.engine.invalidation import Invalidation
from cacheops.engine.plans import Plan, Read, plan, served, window_of
from cacheops.engine.refresh import Refresher
from cacheops.engine.tiers import DOWN, Tiers
from cacheops.engine.upstream import UpstreamGuard
from cacheops.errors import UpstreamUnavailableError
from cacheops.l1 import L1Cache
from cacheops.redis_topology import redis_targets

if TYPE_CHECKING:
    from cacheops.types import CacheStatus, ReadRequest

T = TypeVar("T")
_l2 = backend.degrade


class Engine:
    """The process's cache engine: L1, flights, the refresher pool and the subscriber."""

    def __init__(self) -> None:
        self.l1 = L1Cache(int(engine_setting("L1_MAX_ENTRIES")), int(engine_setting("L1_MAX_BYTES")))
        self.callers = callers.CallerMemory()
        self.miss_gate = MissGate(
            int(engine_setting("MISS_CONCURRENCY")),
            int(engine_setting("MISS_QUEUE")),
            float(engine_setting("MISS_QUEUE_WAIT_S")),
        )
        # One pool for refreshes and the reaper: neither may take a request thread.
        self._pool = ThreadPoolExecutor(int(engine_setting("REFRESH_WORKERS")), thread_name_prefix="cacheops-refresh")
        self.upstream = UpstreamGuard(self.callers)
        self.tiers = Tiers(self.l1, self.callers, self.upstream)
        self.invalidation = Invalidation(self.l1, self._pool)
        self.subscriber = Subscriber(self.invalidation.forget, self.l1.clear, redis_targets())
        self.flights = SingleFlight(self.tiers, self.subscriber)
        self.refresher = Refresher(self.tiers, self._pool)

    # --- reads -------------------------------------------------------------------------------------------
    def read(self, request: ReadRequest, fetch: Callable[[], Any]) -> Read:
        """Return the value of `request` from the best tier that may serve it."""
        started = time.perf_counter()
        p = plan(request)
        self.subscriber.ensure_started()
        result = self._resolve(p, fetch)
        observe.read(request, p.key, result.status, time.perf_counter() - started)
        return result

    def _resolve(self, p: Plan, fetch: Callable[[], Any]) -> Read:
        at = now()
        self.subscriber.drain_pending()  # an invalidation that has reached this process applies before L1 answers
        standing = self.callers.local(p.instance, p.tenant)
        callers.raise_if_refused(standing)  # a refused key is answered neither by JobNimbus nor by the cache
        local = self.l1.get(p.key)
        if local is not None and standing.accepted:
            return served(local, "hit_l1", p, at)
        if self.invalidation.pending:
            self.invalidation.replay_pending()
        # Taken before the Redis read: an invalidation landing after it must keep what we read out of L1.
        seen = self.l1.generations(p.instance, p.tags)
        stored, standing = self._stored(p, standing)
        # An untrusted key's L1 copy is its fallback when Redis cannot say (away, or the entry gone from it).
        candidate = stored if isinstance(stored, dict) else (None if standing.accepted else local)
        fallback = None
        if candidate is not None:
            answer, p, fallback = self._use_stored(p, fetch, candidate, standing.accepted, seen)
            if answer is not None:
                return answer
        try:
            value, status = self._miss(p, fetch, redis_ok=stored is not DOWN)
        except UpstreamUnavailableError:  # UpstreamBusyError included: stale-if-error serves a busy miss too
            if fallback is None:
                raise
            return served(fallback, "stale", p, now())
        return Read(value, status, 0.0, p.policy.fresh_s)

    def _miss(self, p: Plan, fetch: Callable[[], Any], *, redis_ok: bool) -> tuple[Any, CacheStatus]:
        """Resolve a miss in one of the process's miss slots; refuse it (UpstreamBusyError) when none frees up."""
        if not self.miss_gate.enter():
            observe.upstream(p.tool, "busy")
            raise UpstreamBusyError(
                "too many JobNimbus reads are in flight on this server, retry in 1 s", retry_after_s=1
            )
        try:
            return self.flights.run(p, fetch, redis_ok=redis_ok)
        finally:
            self.miss_gate.leave()

    def _stored(self, p: Plan, standing: callers.Standing) -> tuple[Any, callers.Standing]:
        """Return the stored envelope (None, or DOWN) and the caller's standing, which `get` read along with it.

        Raises KeyRefusedError when any process has recorded that JobNimbus refused the caller's key.
        """
        if self.invalidation.pending:  # a write's invalidation still unreplayed: Redis may hold what it made stale
            return DOWN, standing
        stored = _l2(lambda: self.tiers.get(p))
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
        at = now()
        window = window_of(stored, p.policy, at)
        if not trusted:
            return None, replace(p, distrust_before=float(stored["t"])), (None if window == "gone" else stored)
        if window == "fresh":
            self.tiers.remember(p, stored, at, seen)
            self.refresher.maybe_xfetch(p, fetch, stored, at)
            return served(stored, "hit_l2", p, at), p, None
        if window == "swr":
            self.refresher.schedule(p, fetch, stored["t"], "swr")
            return served(stored, "stale", p, at), p, None
        return None, p, (stored if window == "error_only" else None)

    # --- what the facade calls besides reads -------------------------------------------------------------
    def check_key(self, instance: str, tenant: str) -> None:
        """Raise at once if any process knows the caller's key may not be sent now (refused, or backing off)."""
        self.upstream.check_key(instance, tenant)

    def guarded_call(self, instance: str, tool: str, call: Callable[[], T], tenant: str | None = None) -> T:
        """Run an upstream call under the instance's breaker and the caller's key standing (see UpstreamGuard)."""
        return self.upstream.guarded_call(instance, tool, call, tenant)

    def invalidate(self, instance: str, tags: Iterable[str]) -> int:
        """Drop entries of `instance` under `tags` in every tier and process; raise CacheBackendError if Redis fails."""
        return self.invalidation.invalidate(instance, tags)

    def clear_matching(self, instance: str | None, pattern: str | None = None) -> int:
        """Delete this app's entries (of `instance`, matching `pattern` under it) by SCAN; admin use only."""
        return self.invalidation.clear_matching(instance, pattern)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no background refresh is queued or running (tests, shutdown); return whether it is."""
        return self.refresher.wait_idle(timeout)

    def close(self) -> None:
        """Stop the subscriber and the refresher pool."""
        self.subscriber.stop()
        self._pool.shutdown(wait=True, cancel_futures=True)
