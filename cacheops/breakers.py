"""Circuit breakers: one per Redis (failures within a window), one per JobNimbus instance (consecutive failures).

A breaker only decides and records; it never holds its lock across the call it guards. State changes are
logged and counted. A breaker given a `probe` (the Redis one: a PING) does not wait out its cool-down: while it is
open one thread of the process runs the probe every `probe_interval_s` and closes the breaker on the first success,
so the tier it guards is back within about one interval of the service's return rather than after a fixed minute.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Literal

from cacheops import metrics
from cacheops.conf import engine_setting

logger = logging.getLogger(__name__)

State = Literal["CLOSED", "OPEN", "HALF_OPEN"]
Clock = Callable[[], float]


class Breaker:
    """Closed → open after failures → half-open after a cool-down → closed after enough successes."""

    def __init__(
        self,
        name: str,
        *,
        open_s: float,
        half_open_successes: int,
        clock: Clock = time.monotonic,
        probe: Callable[[], bool] | None = None,
        probe_interval_s: float = 0.0,
    ) -> None:
        self.name = name
        self.open_s = open_s
        self.half_open_successes = half_open_successes
        self.clock = clock
        # Asked while open, off every request path, whether the service answers again (never raises; True = up).
        self.probe = probe if probe_interval_s > 0 else None
        self.probe_interval_s = probe_interval_s
        self._state: State = "CLOSED"
        self._opened_at = 0.0
        self._cooldown_s = open_s
        self._successes = 0
        self._lock = threading.Lock()
        self._prober: threading.Thread | None = None
        self._prober_pid = 0
        self._stopped = threading.Event()

    @property
    def state(self) -> State:
        """Return the current state, moving open → half-open when the cool-down is over."""
        with self._lock:
            return self._current()

    def allow(self) -> bool:
        """Return whether a guarded call may go ahead now."""
        return self.state != "OPEN"

    def retry_after_s(self) -> float:
        """Return the seconds left before an open breaker lets a probe through (0 when not open)."""
        with self._lock:
            if self._current() != "OPEN":
                return 0.0
            return max(0.0, self._opened_at + self._cooldown_s - self.clock())

    def record_success(self) -> None:
        """Count a successful call."""
        with self._lock:
            state = self._current()
            if state == "HALF_OPEN":
                self._successes += 1
                if self._successes >= self.half_open_successes:
                    self._move("CLOSED")
            elif state == "CLOSED":
                self._on_closed_success()

    def record_failure(self, retry_after_s: float | None = None) -> None:
        """Count a failed call; open (again) when the threshold is reached or a probe failed."""
        with self._lock:
            state = self._current()
            if state == "HALF_OPEN" or (state == "CLOSED" and self._on_closed_failure()):
                self._open(retry_after_s)

    def reset(self) -> None:
        """Close the breaker and forget its history."""
        with self._lock:
            self._state = "CLOSED"
            self._successes = 0
            self._on_reset()

    def stop_probing(self) -> None:
        """End this breaker's prober thread, if one runs (the breaker is being forgotten)."""
        self._stopped.set()

    def _current(self) -> State:
        if self._state == "OPEN" and self.clock() >= self._opened_at + self._cooldown_s:
            self._move("HALF_OPEN")
        return self._state

    def _open(self, retry_after_s: float | None) -> None:
        self._opened_at = self.clock()
        self._cooldown_s = self._cooldown(retry_after_s)
        self._move("OPEN")
        self._start_prober()

    def _start_prober(self) -> None:
        """Start the thread probing this open breaker, unless one runs in this process already (lock held)."""
        if self.probe is None or self._stopped.is_set():
            return
        running = self._prober is not None and self._prober.is_alive() and self._prober_pid == os.getpid()
        if running:
            return
        self._prober_pid = os.getpid()  # a forked child inherits the breaker but not the thread: it starts its own
        self._prober = threading.Thread(target=self._probe_until_closed, name=f"breaker-probe-{self.name}", daemon=True)
        self._prober.start()

    def _probe_until_closed(self) -> None:
        probe = self.probe
        assert probe is not None
        while not self._stopped.wait(self.probe_interval_s):
            with self._lock:
                if self._state == "CLOSED":
                    return
            up = probe()  # outside the lock: it waits on the network
            with self._lock:
                if self._state == "CLOSED":
                    return
                if up:
                    logger.warning("breaker %s: probe answered; closing", self.name)
                    self._move("CLOSED")
                    return

    def _move(self, state: State) -> None:
        if state == self._state:
            return
        logger.warning("breaker %s: %s -> %s", self.name, self._state, state)
        metrics.BREAKER_TRANSITIONS.labels(self.name, state).inc()
        self._state = state
        self._successes = 0
        if state == "CLOSED":
            self._on_reset()

    # Hooks for the two failure rules.
    def _cooldown(self, retry_after_s: float | None) -> float:
        return self.open_s

    def _on_closed_success(self) -> None:
        return None

    def _on_closed_failure(self) -> bool:
        raise NotImplementedError

    def _on_reset(self) -> None:
        return None


class WindowBreaker(Breaker):
    """Open after `failures` failures within `window_s` (the Redis rule: 5 in 120 s → open 60 s)."""

    def __init__(self, name: str, *, failures: int, window_s: float, **kwargs: object) -> None:
        super().__init__(name, **kwargs)  # type: ignore[arg-type]
        self.failures = failures
        self.window_s = window_s
        self._failed_at: deque[float] = deque()

    def _on_closed_failure(self) -> bool:
        now = self.clock()
        self._failed_at.append(now)
        while self._failed_at and self._failed_at[0] < now - self.window_s:
            self._failed_at.popleft()
        return len(self._failed_at) >= self.failures

    def _on_reset(self) -> None:
        self._failed_at.clear()


class ConsecutiveBreaker(Breaker):
    """Open after `failures` consecutive failures, for a cool-down that honours Retry-After (upstream rule)."""

    def __init__(self, name: str, *, failures: int, max_open_s: float, **kwargs: object) -> None:
        super().__init__(name, **kwargs)  # type: ignore[arg-type]
        self.failures = failures
        self.max_open_s = max_open_s
        self._consecutive = 0

    def _cooldown(self, retry_after_s: float | None) -> float:
        return min(self.max_open_s, max(self.open_s, retry_after_s or 0.0))

    def _on_closed_success(self) -> None:
        self._consecutive = 0

    def _on_closed_failure(self) -> bool:
        self._consecutive += 1
        return self._consecutive >= self.failures

    def _on_reset(self) -> None:
        self._consecutive = 0


class HalfOpenGate:
    """Lets one probe at a time through a half-open upstream breaker; others are told it is still open."""

    def __init__(self) -> None:
        self._busy = threading.Lock()

    def try_enter(self) -> bool:
        """Return True if the caller is the probe; it must call `leave` afterwards."""
        return self._busy.acquire(blocking=False)

    def leave(self) -> None:
        """Let the next probe through."""
        self._busy.release()


_registry_lock = threading.Lock()
# One per Redis (CACHES alias): a tenant's own Redis failing never opens the breaker of the others.
_redis_breakers: dict[str, WindowBreaker] = {}
# Installed by cacheops.backend (which imports this module): PING the Redis of an alias, True on an answer.
_redis_probe: Callable[[str], bool] | None = None
_upstream: dict[str, tuple[ConsecutiveBreaker, HalfOpenGate]] = {}
DEFAULT_REDIS = "default"


def redis_breaker_name(alias: str) -> str:
    """Return the name a Redis breaker is reported by: `redis` for `default`, else its alias (`redis-<instance>`).

    No colon: the dashboard reads `kind:instance` names as JobNimbus instances.
    """
    return "redis" if alias == DEFAULT_REDIS else alias


def redis_breaker(alias: str = DEFAULT_REDIS) -> WindowBreaker:
    """Return the process's breaker of Redis `alias` (the `default` one unless told), from
    CACHEOPS_ENGINE["REDIS_BREAKER"].

    While open it PINGs Redis every PROBE_INTERVAL_S (one thread) and closes on the first answer; OPEN_S is only
    the cool-down after which request traffic probes by itself (half-open), should the prober not get there first.
    """
    with _registry_lock:
        breaker = _redis_breakers.get(alias)
        if breaker is None:
            conf = engine_setting("REDIS_BREAKER")
            probe = _redis_probe
            breaker = _redis_breakers[alias] = WindowBreaker(
                redis_breaker_name(alias),
                failures=int(conf["FAILURES"]),
                window_s=float(conf["WINDOW_S"]),
                open_s=float(conf["OPEN_S"]),
                half_open_successes=int(conf["HALF_OPEN_SUCCESSES"]),
                probe=None if probe is None else (lambda: probe(alias)),
                probe_interval_s=float(conf["PROBE_INTERVAL_S"]),
            )
        return breaker


def redis_breakers() -> dict[str, WindowBreaker]:
    """Return every Redis breaker built so far by alias, `default` always among them."""
    redis_breaker()
    with _registry_lock:
        return dict(_redis_breakers)


def set_redis_probe(probe: Callable[[str], bool]) -> None:
    """Install the check an open Redis breaker runs to close early (the Redis layer installs its PING of an alias)."""
    global _redis_probe
    _redis_probe = probe


def upstream_breaker(instance: str) -> tuple[ConsecutiveBreaker, HalfOpenGate]:
    """Return the breaker (and its half-open probe gate) of JobNimbus instance `instance`."""
    with _registry_lock:
        if instance not in _upstream:
            conf = engine_setting("UPSTREAM_BREAKER")
            breaker = ConsecutiveBreaker(
                f"jobnimbus:{instance}",
                failures=int(conf["FAILURES"]),
                open_s=float(conf["OPEN_S"]),
                max_open_s=float(conf["MAX_OPEN_S"]),
                half_open_successes=1,
            )
            _upstream[instance] = (breaker, HalfOpenGate())
        return _upstream[instance]


def all_states() -> dict[str, State]:
    """Return every breaker's state by name."""
    states: dict[str, State] = {b.name: b.state for b in redis_breakers().values()}
    with _registry_lock:
        upstream = dict(_upstream)
    for instance, (breaker, _) in upstream.items():
        states[f"jobnimbus:{instance}"] = breaker.state
    return states


def reset_breakers() -> None:
    """Forget every breaker (tests and settings changes rebuild them from settings)."""
    with _registry_lock:
        for breaker in _redis_breakers.values():
            breaker.stop_probing()
        _redis_breakers.clear()
        _upstream.clear()
