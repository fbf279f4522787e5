"""The miss gate: how many request threads of a process may block on JobNimbus at once."""

from __future__ import annotations

import threading

from cacheops.errors import UpstreamUnavailableError


class UpstreamBusyError(UpstreamUnavailableError):
    """A miss refused because the process's miss slots are all taken (JobNimbus is slow): retry shortly.

    Refused before any request left, so it says nothing about JobNimbus's health (no breaker counts it).
    """

    instance_fault = False
    reached_upstream = False
    server_busy = True


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
