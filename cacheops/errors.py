"""Errors the cache engine understands, and the failure taxonomy it decides by.

An upstream failure says one of two things: "the source of truth is unhealthy for this instance" (connect errors,
timeouts, 5xx) or "this caller's request or key is bad" (401/403/404/422, a body that cannot be sent, a 429 scoped
to one key). Only the first may open an instance's breaker; otherwise one caller could make JobNimbus look down to
every tenant. Each error class states what it means in the attributes of `UpstreamError`, and the engine reads
them through `breaker_verdict` and `key_verdict` below: the one place each decision is made.
"""

from __future__ import annotations

import math
from typing import Literal

BreakerVerdict = Literal["failure", "success", "none"]
KeyVerdict = Literal["refused", "accepted", "backoff", "none"]

# Waits shown to users are whole seconds within a day: Retry-After is foreign text (a header of 400 nines parses as
# inf), and math.ceil of inf or nan raises.
MAX_SHOWN_WAIT_S = 86_400


class UpstreamError(Exception):
    """Base of the upstream failures the engine understands; the class attributes say what one means.

    - `instance_fault`: the source is unhealthy for the whole instance; counts against its breaker.
    - `reached_upstream`: the source answered (so it is up); False for requests refused before they were sent.
    - `server_busy`: refused by this server's own miss gate, not by the source (which may be perfectly healthy).
    - `refuses_key`: the source refused the caller's key (401/403): remembered, its cached answers withheld.
    - `backs_off_key`: the source asked this key (not the instance) to wait `retry_after_s` (a 429).
    """

    instance_fault: bool = False
    reached_upstream: bool = True
    server_busy: bool = False
    refuses_key: bool = False
    backs_off_key: bool = False
    retry_after_s: float | None = None


class UpstreamUnavailableError(UpstreamError):
    """The source of truth could not answer this caller now (timeout, 5xx, 429, breaker open).

    The engine serves a stale value within its stale-if-error window on this error. It counts against the
    instance's upstream breaker only when `instance_fault` (a subclass scoped to one key clears it).
    `retry_after_s` is a hint for the user, when known.
    """

    instance_fault = True

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class KeyRefusedError(UpstreamError):
    """The source refused this caller's key moments ago: answered without an upstream call and without the cache."""

    refuses_key = True
    reached_upstream = False

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class KeyBackoffError(UpstreamUnavailableError):
    """The source asked this caller's key to wait (a 429): answered without an upstream call until the wait ends."""

    instance_fault = False
    reached_upstream = False
    backs_off_key = True


def breaker_verdict(exc: BaseException) -> BreakerVerdict:
    """Return what a failed upstream call tells the instance's breaker.

    "failure" only for an instance fault; "success" when the source answered (a 4xx means it is up); "none" for
    a request that never left (an unsendable body, a known-refused key), which says nothing either way.
    Exceptions outside the taxonomy (a fetch that failed reading an answer) count as answered, as they always have.
    """
    if not isinstance(exc, UpstreamError):
        return "success"
    if exc.instance_fault:
        return "failure"
    return "success" if exc.reached_upstream else "none"


def key_verdict(exc: BaseException) -> KeyVerdict:
    """Return what a failed upstream call says about the caller's key: refused, accepted, backing off, or nothing."""
    if not isinstance(exc, UpstreamError) or not exc.reached_upstream:
        return "none"
    if exc.refuses_key:
        return "refused"
    if exc.backs_off_key:
        return "backoff"
    # A 5xx may come before the key is even looked at; any other answer (404, 400, ...) means it was accepted.
    return "none" if exc.instance_fault else "accepted"


def whole_seconds(value: float | None, default: int) -> int:
    """Return a wait as whole seconds for a message: `default` when unknown (None, nan, <= 0), else 1 s to a day."""
    if value is None or math.isnan(value) or value <= 0:
        return default
    return max(1, math.ceil(min(value, MAX_SHOWN_WAIT_S)))


class CacheBackendError(Exception):
    """Redis failed (connection, timeout, protocol). Wrapped once, in the engine's Redis layer."""
