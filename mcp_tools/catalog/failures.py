"""What a model is told when JobNimbus fails (or a call was not made): one sentence per kind, with what to do next.

The kind is read from the error's taxonomy (cacheops.errors.UpstreamError): a refused key, a key backing off, an
unavailable JobNimbus; then the JobNimbus-specific answers (not found, rejected).
"""

from __future__ import annotations

from cacheops.errors import UpstreamError, UpstreamUnavailableError, whole_seconds
from mcp_tools.jobnimbus.errors import NotFoundError, ValidationError


def upstream_message(exc: UpstreamError) -> str:
    """Return what a model should be told about a failed JobNimbus call."""
    if exc.refuses_key:
        return f"JobNimbus refused the API key: {exc}. Check the key sent in X-JobNimbus-Api-Key."
    if exc.backs_off_key:
        return rate_limited_message(exc.retry_after_s)
    if isinstance(exc, NotFoundError):
        return f"Not found in JobNimbus: {exc}. Check the jnid (list or search tools return valid ones)."
    if isinstance(exc, ValidationError):
        if not exc.reached_upstream:
            return f"The request was not sent to JobNimbus: {exc}"
        said = exc.upstream_message or str(exc)
        return f"JobNimbus rejected the request: {said}"
    if isinstance(exc, UpstreamUnavailableError):
        return unavailable_message(exc.retry_after_s)
    return f"JobNimbus request failed: {exc}"


def unavailable_message(retry_after_s: float | None) -> str:
    """Return the retry advice for an unavailable JobNimbus (Retry-After when it gave one, else 30 s)."""
    return f"JobNimbus is unavailable, retry in {whole_seconds(retry_after_s, 30)} s."


def rate_limited_message(retry_after_s: float | None) -> str:
    """Return the advice for a key JobNimbus rate limits: only that key waits, for the time named."""
    return f"JobNimbus is rate limiting this API key, retry in {whole_seconds(retry_after_s, 30)} s."
