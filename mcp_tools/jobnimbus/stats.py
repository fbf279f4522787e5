"""Count the client's own upstream calls and their latency, per method + resource + outcome.

Every HTTP attempt counts (a GET retried twice is three calls), because that is what JobNimbus sees and
what the cache reports as "calls saved". Process-local and thread-safe. The cache engine's metrics
subscribe with `add_listener` so the client never imports them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypedDict

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class UpstreamCall:
    """One HTTP attempt against JobNimbus.

    `outcome` is one of: ok, auth, not_found, validation, rate_limited, server_error, timeout,
    connection_error, bad_response. `status` is the HTTP status when one came back.
    """

    method: str
    resource: str
    outcome: str
    duration_s: float
    status: int | None = None


class CallTotals(TypedDict):
    method: str
    resource: str
    outcome: str
    count: int
    total_s: float
    max_s: float


class StatsSnapshot(TypedDict):
    calls: int
    total_s: float
    by_call: list[CallTotals]


Listener = Callable[[UpstreamCall], None]


@dataclass
class _Totals:
    count: int = 0
    total_s: float = 0.0
    max_s: float = 0.0

    def add(self, duration_s: float) -> None:
        self.count += 1
        self.total_s += duration_s
        self.max_s = max(self.max_s, duration_s)


_lock = threading.Lock()
_totals: dict[tuple[str, str, str], _Totals] = {}
_listeners: list[Listener] = []


def record(call: UpstreamCall) -> None:
    """Count one upstream call and tell the listeners; a failing listener is logged, never raised."""
    with _lock:
        _totals.setdefault((call.method, call.resource, call.outcome), _Totals()).add(call.duration_s)
        listeners = list(_listeners)
    for listener in listeners:
        _notify(listener, call)


def snapshot() -> StatsSnapshot:
    """Return the counts so far, sorted by method, resource and outcome."""
    with _lock:
        rows = [
            CallTotals(method=m, resource=r, outcome=o, count=t.count, total_s=t.total_s, max_s=t.max_s)
            for (m, r, o), t in sorted(_totals.items())
        ]
    return StatsSnapshot(
        calls=sum(row["count"] for row in rows), total_s=sum(row["total_s"] for row in rows), by_call=rows
    )


def count(method: str | None = None, resource: str | None = None, outcome: str | None = None) -> int:
    """Return how many calls match the given method/resource/outcome (None matches any)."""
    wanted = (method, resource, outcome)
    with _lock:
        return sum(
            totals.count
            for key, totals in _totals.items()
            if all(want is None or want == have for want, have in zip(wanted, key, strict=True))
        )


def reset() -> None:
    """Forget every count (listeners stay subscribed)."""
    with _lock:
        _totals.clear()


def add_listener(listener: Listener) -> Callable[[], None]:
    """Call `listener` with every UpstreamCall from now on; return a function that unsubscribes it."""
    with _lock:
        _listeners.append(listener)

    def remove() -> None:
        with _lock:
            if listener in _listeners:
                _listeners.remove(listener)

    return remove


def _notify(listener: Listener, call: UpstreamCall) -> None:
    # Metrics must never break an upstream call: the listener's failure is the listener's problem.
    try:
        listener(call)
    except Exception:
        logger.warning("JobNimbus stats listener %r failed", listener, exc_info=True)
