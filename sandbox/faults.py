"""Fault injection for /api1 requests: error statuses, Retry-After, extra latency and hangs, on demand.

A fault may be scoped to one API key (`api_key`): then only requests whose `Authorization: Bearer` key is that one
are hit, as when JobNimbus rate limits a single key (a 429 with Retry-After for that key, the others served).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field, fields
from typing import Any

HANG_LIMIT_S = 60.0
FAULT_SEED = 20240601  # the same fault config always hits the same requests


class InvalidFault(ValueError):
    """A fault description the control API cannot accept."""


@dataclass
class Fault:
    """One active fault: which requests it hits and what it does to them."""

    status: int | None = None
    rate: float = 1.0
    count: int | None = None
    retry_after: int | None = None
    latency_ms: int = 0
    hang: bool = False
    path_prefix: str = "/api1"
    methods: list[str] | None = None
    api_key: str | None = None
    used: int = 0
    released: threading.Event = field(default_factory=threading.Event, repr=False)

    def public(self) -> dict[str, Any]:
        """Return the fault as shown by GET /__sandbox/faults."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "released"}


def _optional_int(body: dict[str, Any], name: str, low: int, high: int) -> int | None:
    """Return an optional integer field within bounds."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidFault(f"'{name}' must be an integer from {low} to {high}, got {value!r}")
    return value


def parse_fault(body: Any) -> Fault:
    """Return a Fault from a control-API body; raise InvalidFault naming the bad field."""
    if not isinstance(body, dict):
        raise InvalidFault("fault must be a JSON object")
    known = {"status", "rate", "count", "retry_after", "latency_ms", "hang", "path_prefix", "methods", "api_key"}
    unknown = set(body) - known
    if unknown:
        raise InvalidFault(f"unknown fault field(s) {sorted(unknown)}; known: {sorted(known)}")
    rate = body.get("rate", 1.0)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
        raise InvalidFault(f"'rate' must be a number from 0 to 1, got {rate!r}")
    prefix = body.get("path_prefix") or "/api1"
    if not isinstance(prefix, str) or not prefix.startswith("/api1"):
        raise InvalidFault(f"'path_prefix' must start with /api1, got {prefix!r}")
    methods = body.get("methods")
    if methods is not None and (not isinstance(methods, list) or not all(isinstance(m, str) for m in methods)):
        raise InvalidFault("'methods' must be a list of HTTP method names")
    hang = body.get("hang", False)
    if not isinstance(hang, bool):
        raise InvalidFault("'hang' must be true or false")
    api_key = body.get("api_key")
    if api_key is not None and (not isinstance(api_key, str) or not api_key.strip()):
        raise InvalidFault("'api_key' must be a non-empty string (the key whose requests the fault hits)")
    return Fault(
        status=_optional_int(body, "status", 100, 599),
        rate=float(rate),
        count=_optional_int(body, "count", 0, 10**9),
        retry_after=_optional_int(body, "retry_after", 0, 86_400),
        latency_ms=_optional_int(body, "latency_ms", 0, 600_000) or 0,
        hang=hang,
        path_prefix=prefix,
        methods=[m.upper() for m in methods] if methods else None,
        api_key=api_key.strip() if api_key else None,
    )


class Faults:
    """The active fault (at most one) and the deterministic generator deciding which requests it hits."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active: Fault | None = None
        self.rng = random.Random(FAULT_SEED)
        self.stopping = threading.Event()

    def set(self, fault: Fault) -> None:
        """Replace the active fault, releasing anything the old one holds."""
        with self.lock:
            self._release()
            self.active = fault
            self.rng = random.Random(FAULT_SEED)

    def clear(self) -> None:
        """Remove the active fault and release hung requests."""
        with self.lock:
            self._release()
            self.active = None

    def _release(self) -> None:
        if self.active is not None:
            self.active.released.set()

    def show(self) -> dict[str, Any] | None:
        """Return the active fault's public view."""
        with self.lock:
            return self.active.public() if self.active else None

    def pick(self, method: str, path: str, api_key: str | None = None) -> Fault | None:
        """Return the fault to apply to this request (consuming one use), or None.

        `api_key` is the request's bearer key (None without one); a fault scoped to a key hits only that key.
        """
        with self.lock:
            fault = self.active
            if fault is None or not path.startswith(fault.path_prefix):
                return None
            if fault.methods and method not in fault.methods:
                return None
            if fault.api_key is not None and api_key != fault.api_key:
                return None
            if fault.count is not None and fault.used >= fault.count:
                return None
            if self.rng.random() >= fault.rate:
                return None
            fault.used += 1
            return fault

    def hold(self, fault: Fault) -> None:
        """Block a hung request until the fault is cleared, the server stops, or the bound passes."""
        waited = 0.0
        while waited < HANG_LIMIT_S and not fault.released.is_set() and not self.stopping.is_set():
            fault.released.wait(0.1)
            waited += 0.1
