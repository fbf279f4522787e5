"""Background refresh: a stale-while-revalidate read, or an early refresh (XFetch), fetches again off the request
path, on the engine's pool, at most once per key at a time."""

from __future__ import annotations

import logging
import math
import random
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cacheops import observe
from cacheops.conf import engine_setting
from cacheops.engine.plans import Plan
from cacheops.engine.tiers import DOWN, Tiers
from cacheops.errors import UpstreamUnavailableError

logger = logging.getLogger(__name__)


class Refresher:
    """Schedules and runs background refreshes; `wait_idle` waits them out (tests, shutdown)."""

    def __init__(self, tiers: Tiers, pool: ThreadPoolExecutor) -> None:
        self.tiers = tiers
        self.pool = pool
        self.xfetch_beta = float(engine_setting("XFETCH_BETA"))
        self.max_pending = int(engine_setting("REFRESH_MAX_PENDING"))
        self._refreshing: set[str] = set()
        self._lock = threading.Lock()

    def maybe_xfetch(self, p: Plan, fetch: Callable[[], Any], envelope: dict[str, Any], now: float) -> None:
        """Refresh early with probability rising as expiry nears, scaled by the fetch cost (XFetch)."""
        delta = float(envelope.get("d", 0.0))
        if delta <= 0 or self.xfetch_beta <= 0:
            return
        expiry = float(envelope["t"]) + p.policy.fresh_s
        if now - delta * self.xfetch_beta * math.log(1.0 - random.random()) >= expiry:
            self.schedule(p, fetch, envelope["t"], "xfetch")

    def schedule(self, p: Plan, fetch: Callable[[], Any], seen_t: float, trigger: str) -> None:
        """Queue one refresh of `p` (stored at `seen_t`) unless one is queued already or too many are."""
        with self._lock:
            if p.key in self._refreshing or len(self._refreshing) >= self.max_pending:
                return
            self._refreshing.add(p.key)
        self.pool.submit(self._refresh, p, fetch, seen_t, trigger)

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
            self.tiers.drop(p)
            logger.exception("background refresh of %s failed; its entry was dropped", p.tool)
        finally:
            with self._lock:
                self._refreshing.discard(p.key)
            observe.refreshed(trigger, outcome)

    def _refresh_once(self, p: Plan, fetch: Callable[[], Any], seen_t: float) -> str:
        token = uuid.uuid4().hex
        seen_l1 = self.tiers.l1.generations(p.instance, p.tags)
        claim = self.tiers.claim(p, token)
        if claim is DOWN or not claim.locked:
            return "skipped"  # another process is fetching this key already (or Redis is away)
        lock = self.tiers.lock_of(p, token)
        try:
            current = self.tiers.decode(p, claim.raw) if claim.raw is not None else None
            if current is not None and current["t"] != seen_t:
                return "skipped"  # refreshed (or replaced) since the reader saw it
            self.tiers.fetch_and_store(p, fetch, redis_ok=True, seen=(claim.generations, seen_l1), lock=lock)
            return "ok"
        finally:
            self.tiers.release(lock)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no background refresh is queued or running; return whether none is."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._refreshing:
                    return True
            time.sleep(0.005)
        return False
