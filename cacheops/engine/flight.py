"""Single flight: one fetch per key at a time, in this process (threads wait on a Flight) and across processes
(the key's Redis lock; waiters are woken by the holder's announcement on the fill channel)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cacheops.broadcast import Subscriber
from cacheops.conf import engine_setting
from cacheops.engine.plans import Plan
from cacheops.engine.tiers import DOWN, Claim, Tiers
from cacheops.types import CacheStatus

_UNSET: Any = object()


@dataclass
class Flight:
    """An in-process fetch that other threads asking for the same key wait on."""

    # The L1 generations of the key's tags when it took off: once they move, the flight may carry pre-write data.
    seen: dict[str, int]
    done: threading.Event = field(default_factory=threading.Event)
    value: Any = _UNSET
    error: BaseException | None = None


class SingleFlight:
    """Resolves misses so that concurrent readers of one key share a fetch; returns (value, "miss"/"coalesced")."""

    def __init__(self, tiers: Tiers, subscriber: Subscriber) -> None:
        self.tiers = tiers
        self.subscriber = subscriber
        self.lock_wait_s = float(engine_setting("LOCK_WAIT_S"))
        self.recheck_s = float(engine_setting("LOCK_RECHECK_S"))
        self._flights: dict[str, Flight] = {}
        self._lock = threading.Lock()

    def run(self, p: Plan, fetch: Callable[[], Any], *, redis_ok: bool) -> tuple[Any, CacheStatus]:
        """Join the key's flight in this process, or lead it (and take the key's lock across processes)."""
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
            seen = self.tiers.l1.generations(p.instance, p.tags)
            flight = self._flights.get(p.key)
            if flight is not None and flight.seen == seen:
                return flight, False
            flight = self._flights[p.key] = Flight(seen)
            return flight, True

    def _follow(self, p: Plan, fetch: Callable[[], Any], flight: Flight, redis_ok: bool) -> tuple[Any, CacheStatus]:
        if not flight.done.wait(self.lock_wait_s):
            return self.tiers.fetch_and_store(p, fetch, redis_ok), "miss"
        if flight.error is not None:
            raise flight.error
        return flight.value, "coalesced"

    def _across_processes(self, p: Plan, fetch: Callable[[], Any], redis_ok: bool) -> tuple[Any, CacheStatus]:
        if not redis_ok:
            return self.tiers.fetch_and_store(p, fetch, redis_ok=False), "miss"
        token = uuid.uuid4().hex
        deadline = time.monotonic() + self.lock_wait_s
        event = None
        try:
            while True:
                seen_l1 = self.tiers.l1.generations(p.instance, p.tags)
                claim = self.tiers.claim(p, token)
                if claim is DOWN:
                    return self.tiers.fetch_and_store(p, fetch, redis_ok=False), "miss"
                if claim.locked:
                    return self._lead(p, fetch, token, claim, seen_l1)
                if event is None:
                    event = self.subscriber.watch(p.key)
                    self.tiers.announce_waiter(p)
                filled = self.tiers.filled(p)
                if filled is not None:
                    return filled, "coalesced"
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return self.tiers.fetch_and_store(p, fetch, redis_ok=True), "miss"
                # Woken by the holder's announcement; the re-check slice covers a holder that died.
                event.wait(min(self.recheck_s, remaining))
                event.clear()
        finally:
            if event is not None:
                self.subscriber.unwatch(p.key, event)

    def _lead(
        self, p: Plan, fetch: Callable[[], Any], token: str, claim: Claim, seen_l1: dict[str, int]
    ) -> tuple[Any, CacheStatus]:
        lock = self.tiers.lock_of(p, token)
        try:
            # Double-checked: the previous holder may have filled the key between our read and our lock.
            stored = self.tiers.decode(p, claim.raw) if claim.raw is not None else None
            filled = self.tiers.fresh_value(p, stored, seen_l1)
            if filled is not None:
                return filled, "coalesced"
            seen = (claim.generations, seen_l1)
            return self.tiers.fetch_and_store(p, fetch, redis_ok=True, seen=seen, lock=lock), "miss"
        finally:
            self.tiers.release(lock)  # when the store did not run (too big, a failure) or Redis did not answer it
