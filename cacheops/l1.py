"""The in-process tier: a small LRU bounded in entries and in the memory its decoded values take, with a short TTL.

Entries remember their instance and tags so an invalidation broadcast can drop them; a per-tag generation
counter refuses stores from fetches that began before an invalidation (the L2 guard's local twin).

An entry's `size` is what its value costs in this process, estimated by `decoded_size` from the length of its JSON
text: the compressed size Redis holds is 5 to 10 times smaller and bounded nothing (100-record pages cost ~0.4 MB
each in memory but ~13 KB against the byte limit).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

EPOCH = "\x00epoch"
MAX_GENERATIONS = 100_000

# Bytes of Python objects per byte of JSON text, for values decoded by orjson (tracemalloc over orjson.loads of the
# sandbox's 100-record pages of all 11 list resources: 3.4 for contacts, 3.6 jobs, 4.2-4.5 estimates, invoices,
# work and material orders, tasks, files, 4.6 activities, 4.8 products, 5.0 payments; tests/test_hardening_faults.py
# measures it again). Rounded up: an estimate that is too low lets the tier outgrow its limit, one too high only
# keeps fewer entries. Values of many one-character strings or small floats cost more per JSON byte (up to ~15).
DECODED_BYTES_PER_JSON_BYTE = 6
# What an entry costs besides its value: the envelope dict and its numbers, the L1Entry, its key string, its tag
# frozenset and the LRU and tag-index slots (tracemalloc: ~1.7 KB with a 90-character key and 4 tags, 2 unique).
ENTRY_OVERHEAD_BYTES = 2048


def decoded_size(json_length: int) -> int:
    """Return the memory estimate of an entry whose value's JSON text is `json_length` bytes long."""
    return json_length * DECODED_BYTES_PER_JSON_BYTE + ENTRY_OVERHEAD_BYTES


@dataclass(frozen=True)
class L1Entry:
    """One value held in process; `size` is the memory it takes (see `decoded_size`)."""

    envelope: dict[str, Any]
    instance: str
    tags: frozenset[str]
    size: int
    expires_at: float


class L1Cache:
    """Thread-safe LRU of envelopes; every method holds the lock only for dictionary work."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, L1Entry] = OrderedDict()
        self._bytes = 0
        self._generations: dict[tuple[str, str], int] = {}
        # (instance, tag) -> keys carrying it: an invalidation touches its own entries, never scans them all.
        self._by_tag: dict[tuple[str, str], set[str]] = {}
        # Bumped by clear(): refuses every store from a fetch that began before it.
        self._epoch = 0
        # Keys invalidated but not yet removed: invisible at once, removed by reap() off the invalidating call's path
        # (dropping 10,000 entries one by one took longer than the Redis step).
        self._doomed: set[str] = set()
        self._lock = threading.Lock()

    def get(self, key: str, now: float | None = None) -> dict[str, Any] | None:
        """Return the envelope under `key` if present and not expired."""
        now = time.monotonic() if now is None else now
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.expires_at <= now or key in self._doomed:
                self._remove(key)
                return None
            self._entries.move_to_end(key)
            return entry.envelope

    def generations(self, instance: str, tags: Iterable[str]) -> dict[str, int]:
        """Return the local generation of each tag, to pass back to `put`."""
        with self._lock:
            seen = {tag: self._generations.get((instance, tag), 0) for tag in tags}
            seen[EPOCH] = self._epoch
            return seen

    def put(self, key: str, entry: L1Entry, seen: Mapping[str, int] | None = None) -> bool:
        """Store `entry` unless it is too big or one of its tags was invalidated since `seen`."""
        if entry.size > self.max_bytes or self.max_entries <= 0:
            return False
        with self._lock:
            if seen is not None and self._moved_since(entry.instance, seen):
                return False
            self._remove(key)
            self._entries[key] = entry
            self._bytes += entry.size
            for tag in entry.tags:
                self._by_tag.setdefault((entry.instance, tag), set()).add(key)
            self._evict()
            return True

    def discard(self, key: str) -> bool:
        """Drop the entry under `key`; return whether there was one."""
        with self._lock:
            present = key in self._entries
            self._remove(key)
            return present

    def invalidate(self, instance: str, tags: Iterable[str]) -> int:
        """Make entries of `instance` carrying any of `tags` unreadable now and bump those tags' generations.

        The entries' memory comes back with `reap()` (or as they are touched, replaced or evicted).
        """
        wanted = frozenset(tags)
        with self._lock:
            if len(self._generations) > MAX_GENERATIONS:
                # Forgetting counters is safe only together with an epoch bump (refuses older fetches).
                self._generations.clear()
                self._epoch += 1
            dropped = 0
            for tag in wanted:
                self._generations[(instance, tag)] = self._generations.get((instance, tag), 0) + 1
                members = self._by_tag.pop((instance, tag), None)
                if members:
                    fresh = members - self._doomed
                    dropped += len(fresh)
                    self._doomed |= fresh
            return dropped

    def has_doomed(self) -> bool:
        """Return whether invalidated entries wait to be reaped."""
        return bool(self._doomed)

    def reap(self, batch: int = 200) -> int:
        """Remove invalidated entries, `batch` at a time; return how many.

        Between batches the lock is released and the GIL offered (sleep(0)): reaping is never urgent, and the
        thread that invalidated is usually still waiting on Redis and needs both as soon as its answer arrives.
        """
        removed = 0
        while True:
            with self._lock:
                if not self._doomed:
                    return removed
                for _ in range(min(batch, len(self._doomed))):
                    self._remove(self._doomed.pop())
                    removed += 1
            time.sleep(0)

    def clear(self, instance: str | None = None) -> int:
        """Drop every entry (of `instance` when given); bump every generation so in-flight fetches do not store."""
        with self._lock:
            doomed = [k for k, e in self._entries.items() if instance is None or e.instance == instance]
            for key in doomed:
                self._remove(key)
            self._epoch += 1
            return len(doomed)

    def stats(self) -> dict[str, int]:
        """Return the readable entry count and the byte total (which counts invalidated entries until reaped)."""
        with self._lock:
            return {"entries": len(self._entries) - len(self._doomed), "bytes": self._bytes}

    def _moved_since(self, instance: str, seen: Mapping[str, int]) -> bool:
        if seen.get(EPOCH, self._epoch) != self._epoch:
            return True
        return any(self._generations.get((instance, t), 0) != g for t, g in seen.items() if t != EPOCH)

    def _remove(self, key: str) -> None:
        self._doomed.discard(key)
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._unindex(key, entry)

    def _unindex(self, key: str, entry: L1Entry) -> None:
        self._bytes -= entry.size
        for tag in entry.tags:
            keys = self._by_tag.get((entry.instance, tag))
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_tag[(entry.instance, tag)]

    def _evict(self) -> None:
        while self._entries and (len(self._entries) > self.max_entries or self._bytes > self.max_bytes):
            if self._doomed:  # invalidated entries not yet reaped go before any live one
                self._remove(self._doomed.pop())
                continue
            key, entry = self._entries.popitem(last=False)
            self._unindex(key, entry)
