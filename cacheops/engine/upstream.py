"""The upstream guard: every JobNimbus call the engine makes passes the instance's breaker and the caller's key.

What a failed call means (an instance fault for the breaker, a refused or backed-off key for the caller memory)
is decided by the error classes (cacheops.errors), read here in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from cacheops import callers, observe
from cacheops.breakers import upstream_breaker
from cacheops.errors import UpstreamError, UpstreamUnavailableError, breaker_verdict, key_verdict, whole_seconds

T = TypeVar("T")


class UpstreamGuard:
    """Runs upstream calls under the breakers and keeps the caller memory told of what JobNimbus said."""

    def __init__(self, memory: callers.CallerMemory) -> None:
        self.callers = memory

    def check_key(self, instance: str, tenant: str) -> None:
        """Raise at once if any process knows the caller's key may not be sent now (refused, or backing off)."""
        callers.raise_if_held(self.callers.shared(instance, tenant))

    def guarded_call(self, instance: str, tool: str, call: Callable[[], T], tenant: str | None = None) -> T:
        """Run an upstream call under the instance's breaker (one probe at a time when half-open).

        With the caller's `tenant`, a key this process knows to be refused or backing off is not sent at all, and
        what the answer says about the key is remembered (cacheops.callers).
        """
        if tenant:
            callers.raise_if_held(self.callers.local(instance, tenant))
        breaker, gate = upstream_breaker(instance)
        state = breaker.state
        if state == "OPEN":
            observe.upstream(tool, "breaker_open")
            wait = whole_seconds(breaker.retry_after_s(), 1)
            raise UpstreamUnavailableError(f"JobNimbus is unavailable, retry in {wait} s", retry_after_s=wait)
        probe = state == "HALF_OPEN"
        if probe and not gate.try_enter():
            observe.upstream(tool, "breaker_open")
            raise UpstreamUnavailableError("JobNimbus is unavailable, retry in 1 s", retry_after_s=1)
        try:
            return self._counted(breaker, tool, call, (instance, tenant) if tenant else None)
        finally:
            if probe:
                gate.leave()

    def _counted(self, breaker: Any, tool: str, call: Callable[[], T], caller: tuple[str, str] | None) -> T:
        try:
            value = call()
        except Exception as exc:
            self._account_failure(breaker, tool, exc, caller)
            raise
        breaker.record_success()
        observe.upstream(tool, "ok")
        if caller is not None:
            self.callers.accept(*caller)
        return value

    def _account_failure(self, breaker: Any, tool: str, exc: Exception, caller: tuple[str, str] | None) -> None:
        """Tell the breaker and the caller memory what a failed call means; the error classes decide (errors.py).

        Only an instance fault counts against the breaker: one caller's bad request, refused key or 429 must never
        make JobNimbus look down to every tenant. A request that never left counts neither way.
        """
        verdict = breaker_verdict(exc)
        if verdict == "failure":
            breaker.record_failure(getattr(exc, "retry_after_s", None))
            observe.upstream(tool, "unavailable")
        elif verdict == "success":
            breaker.record_success()
            observe.upstream(tool, "error")
        if caller is not None:
            self._note_key(caller, exc)

    def _note_key(self, caller: tuple[str, str], exc: Exception) -> None:
        verdict = key_verdict(exc)
        if verdict == "refused":
            self.callers.refuse(*caller)
        elif verdict == "backoff" and isinstance(exc, UpstreamError):
            # The user is told the wait this server holds the key back for (Retry-After, capped), not a day of nines.
            exc.retry_after_s = self.callers.back_off(*caller, exc.retry_after_s)
        elif verdict == "accepted":
            self.callers.accept(*caller)
