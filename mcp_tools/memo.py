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
    """Least-recently-used map of key → (owner, value), at most `max_entries` long."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[Any, V]] = OrderedDict()
        self._lock = threading.Lock()

    def lookup(self, key: Hashable, owner: Any) -> tuple[bool, V | None]:
        """Return (True, value) when `key` was remembered for this very `owner`, else (False, None)."""
        with self._lock:
            remembered = self._entries.get(key)
            if remembered is None or remembered[0] is not owner:
                return False, None
            self._entries.move_to_end(key)
            return True, remembered[1]

    def remember(self, key: Hashable, owner: Any, value: V) -> None:
        """Keep `value` for `key` and `owner`, forgetting the least recently used entry beyond the bound."""
        with self._lock:
            self._entries[key] = (owner, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
