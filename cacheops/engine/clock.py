"""The engine's wall clock (stored-at times and windows), read through the package so tests can move it.

Tests replace `cacheops.engine.wall_clock` (monkeypatch) instead of sleeping; every module of the engine reads
the time through `now`, which looks that attribute up at call time, so one replacement moves them all.
"""

from __future__ import annotations

import sys

# The package object itself (already in sys.modules while its submodules load); its `wall_clock` is read per call.
_package = sys.modules[__package__ or "cacheops.engine"]


def now() -> float:
    """Return the engine's current wall-clock time in epoch seconds."""
    clock: float = _package.wall_clock()
    return clock
