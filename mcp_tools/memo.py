"""A bounded, thread-safe memo whose answers hold only for the very object they were worked out from.

Used on the request path for work that depends on one object's content: shaping a cached value (the object L1
hands back until the entry is invalidated) and judging arguments against a validator. Each entry keeps its owner
alive, so the owner's id cannot be reused by another object while the entry exists; a lookup by another object,
however equal, misses.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any, Generic, TypeVar

V = TypeVar("V")


class OwnedMemo(Generic[V]):
    """Least-recently-used map of key → (owner, value), at most `max_entries` long and `max_bytes` large.

    The bytes bound matters because an entry keeps its owner alive: a memo of shaped answers would otherwise hold
    cached values the L1 tier has already dropped, outside the memory L1's own limit accounts for.
    """

    def __init__(self, max_entries: int, max_bytes: int | None = None) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, tuple[Any, V, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def lookup(self, key: Hashable, owner: Any) -> tuple[bool, V | None]:
        """Return (True, value) when `key` was remembered for this very `owner`, else (False, None)."""
        with self._lock:
            remembered = self._entries.get(key)
            if remembered is None or remembered[0] is not owner:
                return False, None
            self._entries.move_to_end(key)
            return True, remembered[1]

    def remember(self, key: Hashable, owner: Any, value: V, size: int = 0) -> None:
        """Keep `value` for `key` and `owner` (`size`: the memory both take), forgetting the least recently used
        entries beyond the bounds. An entry larger than `max_bytes` on its own is not kept."""
        if self.max_bytes is not None and size > self.max_bytes:
            return
        with self._lock:
            previous = self._entries.pop(key, None)
            if previous is not None:
                self._bytes -= previous[2]
            self._entries[key] = (owner, value, size)
            self._bytes += size
            while len(self._entries) > self.max_entries or (
                self.max_bytes is not None and self._bytes > self.max_bytes
            ):
                self._bytes -= self._entries.popitem(last=False)[1][2]

    @property
    def bytes(self) -> int:
        """Return the memory the remembered entries are estimated to take."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)
