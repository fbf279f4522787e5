"""The read-through engine: L1 → L2 (Redis) → single flight → upstream, with the three RFC 5861 windows.

The facade (cacheops.api) calls `engine()`'s `read`, `guarded_call`, `check_key` and `invalidate`; staff views
call `clear_matching`. The package, one module per responsibility:

- `coordinator`: `Engine`, the read path (L1, L2 windows, the miss) and what the facade calls;
- `plans`: a read's `Plan` (key, tags, policy), the windows of a stored value, the `Read` answer;
- `tiers`: L1 puts and Redis reads, the key's fill lock, fetch-then-store under the generation guard;
- `flight`: single flight, in this process and across processes; `gate`: the `MissGate` and `UpstreamBusyError`;
- `refresh`: background refresh (stale-while-revalidate, XFetch); `invalidation`: dropping by tag, its replay
  after a Redis outage, the L1 reaper, clear by pattern;
- `upstream`: the breaker and caller-key guard around every JobNimbus call; `clock`: the wall clock below.

Whether a Redis failure degrades (skip L2) or raises is decided in one place: `backend.degrade`. Every read,
upstream call and store is reported once to cacheops.observe (Prometheus and the dashboard's history).

Measuring it (bench/): `read_through` outcomes carry the status; `cacheops.metrics.snapshot()` sums counters
(reads by tool/status, upstream calls, writes, bytes) across processes; `engine().l1` is the in-process tier
(`.clear()` forces the next read to L2); `engine().wait_idle()` waits out background refreshes; Redis bytes
of an entry are `STRLEN` of `cacheops.keys.entry_key(...)` (prefix CACHE_KEY_NAMESPACE).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from cacheops import backend
from cacheops.breakers import reset_breakers
from cacheops.engine.coordinator import Engine
from cacheops.engine.gate import MissGate, UpstreamBusyError
from cacheops.engine.plans import Plan, Read, age_of, generation_keys, plan, window_of

__all__ = [
    "DOWN",
    "Engine",
    "MissGate",
    "Plan",
    "Read",
    "UpstreamBusyError",
    "age_of",
    "engine",
    "generation_keys",
    "plan",
    "reset_engine",
    "wall_clock",
    "window_of",
]

DOWN = backend.DOWN

# Wall clock of stored-at times and windows; tests move it instead of sleeping (read through engine.clock.now).
wall_clock: Callable[[], float] = time.time

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
