"""Liveness checks for /health: each returns a small dict, never a secret or a connection string."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypedDict

from django.db import connection

from cacheops.reporting import ping_redis


class CheckResult(TypedDict, total=False):
    ok: bool
    latency_ms: float
    error: str


def _timed(probe: Callable[[], object]) -> CheckResult:
    started = time.perf_counter()
    try:
        probe()
    except Exception as exc:  # noqa: BLE001 - a health probe reports any failure as data
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def _probe_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _probe_redis() -> None:
    # Through the engine's one guarded Redis call: while its breaker is open, Redis counts as down here too.
    ping_redis()


def run_checks() -> dict[str, CheckResult]:
    """Return each dependency's state."""
    return {"database": _timed(_probe_database), "redis": _timed(_probe_redis)}


def public_checks(checks: dict[str, CheckResult]) -> dict[str, CheckResult]:
    """Return what anyone may see of the checks: whether each part is up (no latency, no error type)."""
    return {name: {"ok": bool(result.get("ok"))} for name, result in checks.items()}


def overall_status(checks: dict[str, CheckResult]) -> str:
    """Return 'ok', 'degraded' (Redis down: the server still answers, uncached) or 'error' (no database)."""
    if not checks["database"].get("ok"):
        return "error"
    if not checks["redis"].get("ok"):
        return "degraded"
    return "ok"
