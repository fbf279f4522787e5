"""Errors the cache engine understands. Callers' upstream errors subclass these so the engine can tell
"serve stale / count against the breaker" from "the caller asked for something wrong"."""

from __future__ import annotations


class UpstreamUnavailableError(Exception):
    """The source of truth failed in a way that is not the caller's fault (timeout, 5xx, 429, breaker open).

    The engine serves a stale value within its stale-if-error window on this error, and counts it against
    the instance's upstream breaker. `retry_after_s` is a hint for the user, when known.
    """

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class CacheBackendError(Exception):
    """Redis failed (connection, timeout, protocol). Wrapped once, in the engine's Redis layer."""
