"""Count the client's own upstream calls and their latency, per method + resource + outcome.

Every HTTP attempt counts (a GET retried twice is three calls), because that is what JobNimbus sees and
what the cache reports as "calls saved". Process-local and thread-safe.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TypedDict


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


def record(call: UpstreamCall) -> None:
    """Count one upstream call."""
    with _lock:
        _totals.setdefault((call.method, call.resource, call.outcome), _Totals()).add(call.duration_s)


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
    """Forget every count."""
    with _lock:
        _totals.clear()
