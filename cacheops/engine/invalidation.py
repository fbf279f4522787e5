"""Dropping entries: tag invalidation in every tier and process, its replay after a Redis outage, the reaper that
reclaims L1 memory in the background, and the admin's clear by pattern.

(The facade-level step, a change turned into tags, is not here: this module drops what it is told to.)
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from django.conf import settings

from cacheops import backend, keys, observe
from cacheops.broadcast import invalidation_message
from cacheops.conf import engine_setting
from cacheops.errors import CacheBackendError
from cacheops.l1 import L1Cache
from cacheops.redis_topology import redis_targets

DOWN = backend.DOWN
_l2 = backend.degrade


class Invalidation:
    """Drops entries by tag (or all of an instance) here, in Redis, and in the other processes by broadcast."""

    def __init__(self, l1: L1Cache, pool: ThreadPoolExecutor) -> None:
        self.l1 = l1
        self.pool = pool
        self.generation_ttl_s = int(engine_setting("GENERATION_TTL_S"))
        # Invalidations Redis refused, replayed before this process next reads Redis (oldest first).
        self.pending: deque[tuple[str, list[str]]] = deque(maxlen=10_000)
        self._lock = threading.Lock()
        self._reaping = False
        self._settle_gave_up = False  # the last settle timed out and nothing pending has been replayed since

    def invalidate(self, instance: str, tags: Iterable[str]) -> int:
        """Drop entries of `instance` under `tags` in every tier and process; raise CacheBackendError if Redis fails."""
        wanted = list(dict.fromkeys(tags))
        if not wanted:
            return 0
        # Unreadable here at once; reaped only after the Redis step, so the reaper does not compete with it.
        local = self.l1.invalidate(instance, wanted)
        self.replay_pending()
        try:
            dropped = self._invalidate_l2(instance, wanted)
        except CacheBackendError:
            # Remembered and replayed before this process next touches Redis, so a write made while Redis was
            # away cannot be undone by the entries Redis still holds when it returns. The caller still hears of it.
            with self._lock:
                self.pending.append((instance, wanted))
            raise
        finally:
            # Again after Redis: a local read may have copied a Redis entry into L1 between the two steps.
            local += self.l1.invalidate(instance, wanted)
            if local:
                self._reap_soon()
        self._broadcast(instance, wanted)
        return dropped

    def forget(self, instance: str, tags: Iterable[str]) -> int:
        """Make L1's entries under `tags` unreadable now (another process's invalidation); reclaim them later."""
        dropped = self.l1.invalidate(instance, tags)
        if dropped:
            self._reap_soon()
        return dropped

    def replay_pending(self) -> None:
        """Apply invalidations that failed while Redis was away, oldest first; stop at the first failure."""
        while self.pending:
            with self._lock:
                if not self.pending:
                    return
                instance, tags = self.pending[0]
            if _l2(partial(self._invalidate_l2, instance, tags)) is DOWN:
                return
            self._broadcast(instance, tags)
            with self._lock:
                if self.pending and self.pending[0] == (instance, tags):
                    self.pending.popleft()

    def settle(self, wait_s: float, poll_s: float) -> bool:
        """Replay pending invalidations until none is left or `wait_s` has passed; return whether none is left.

        What a write waits on when Redis refused its invalidation: each round goes through the Redis breaker, whose
        probe closes it as soon as Redis (a new primary after a failover) answers again.
        """
        if self._settle_gave_up:
            # A settle already waited its full time on this outage: later writes (the rows of one bulk import) try
            # once and answer, instead of each waiting again.
            wait_s = 0.0
        deadline = time.monotonic() + wait_s
        while True:
            self.replay_pending()
            if not self.pending:
                self._settle_gave_up = False
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                self._settle_gave_up = True
                return False
            time.sleep(min(poll_s, left))

    def clear_matching(self, instance: str | None, pattern: str | None = None) -> int:
        """Delete this app's entries (of `instance`, matching `pattern` under it) by SCAN; admin use only.

        A pattern names no tags, so the whole instance's epoch is bumped: every fetch of it in flight (begun
        before the clear) is refused its store. Clearing everything bumps the epoch of every instance: the
        configured ones and any other with a key in Redis (a fill in flight holds its lock key). Bumped before the
        delete, so a fetch that read the old epoch is refused whenever it lands. Generation counters are kept:
        deleted, they would count from 0 again and let a fetch that read an old value pass the guard.
        """
        match = keys.app_key_pattern(instance) if pattern is None else keys.app_key_pattern(instance)[:-1] + pattern
        targets: list[str | None] = [instance] if instance is not None else redis_targets()
        self.l1.clear(instance)
        for name in [instance] if instance is not None else self._every_instance(targets):
            backend.bump(keys.epoch_key(name), self.generation_ttl_s)
        deleted = 0
        for target in targets:  # SCAN visits every primary of a cluster (RedisCluster.scan_iter)
            deleted += backend.call(lambda r: _scan_delete(r, match, keys.generation_prefix()), target)
        self.l1.clear(instance)  # again: a read may have copied an entry into L1 during the scan
        self._broadcast(instance, None)
        return deleted

    @staticmethod
    def _every_instance(targets: list[str | None]) -> list[str]:
        """Return every instance a clear of everything must bump: configured, or with keys in any of `targets`."""
        found: set[str] = set(getattr(settings, "JOBNIMBUS_INSTANCES", {}))
        for target in targets:
            found |= backend.call(lambda r: _instances_in(r, keys.app_key_pattern(None)), target)
        return sorted(found)

    def _invalidate_l2(self, instance: str, tags: list[str]) -> int:
        index_keys = [keys.tag_index_key(instance, tag) for tag in tags]
        gen_keys = [keys.generation_key(instance, tag) for tag in tags]
        dropped = backend.invalidate(index_keys, gen_keys, self.generation_ttl_s)
        observe.invalidated(instance, dropped)
        return dropped

    def _broadcast(self, instance: str | None, tags: list[str] | None) -> None:
        payload = invalidation_message(instance, tags)
        # On the instance's Redis, where its invalidation just ran; every process subscribes on every Redis.
        _l2(lambda: backend.call(lambda r: backend.publish(r, keys.invalidation_channel(), payload), instance))

    # --- reclaiming L1 memory ----------------------------------------------------------------------------
    def _reap_soon(self) -> None:
        """Have a pool thread remove invalidated L1 entries, unless one is on it already."""
        with self._lock:
            if self._reaping:
                return
            self._reaping = True
        try:
            self.pool.submit(self._reap)
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


def _instances_in(r: Any, match: str) -> set[str]:
    """Return the instances (hash tags) of the keys matching `match`."""
    found = {keys.hash_tag(key) for key in r.scan_iter(match=match, count=1000)}
    return {name for name in found if name}


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
