"""What a model is told when JobNimbus fails (or a call was not made): one sentence per kind, with what to do next.

The kind is read from the error's taxonomy (cacheops.errors.UpstreamError): a refused key, a key backing off, an
unavailable JobNimbus; then the JobNimbus-specific answers (not found, rejected).
"""

from __future__ import annotations

from cacheops.errors import UpstreamError, UpstreamUnavailableError, whole_seconds
from mcp_tools.jobnimbus.errors import AuthError, MalformedKeyError, NotFoundError, ValidationError

# Managed mode: the person never saw the key, so the advice is to ask the staff who mapped it.
HELD_KEY_REFUSED = (
    "JobNimbus refused the JobNimbus key this server's staff mapped to your user{status}: ask them to check it and "
    "its access profile."
)


def upstream_message(exc: UpstreamError, *, held_key: bool = False) -> str:
    """Return what a model should be told about a failed JobNimbus call (`held_key`: the key is server-held)."""
    if exc.refuses_key:
        if held_key:
            return HELD_KEY_REFUSED.format(status=f" (HTTP {exc.status})" if isinstance(exc, AuthError) else "")
        return refused_key_message(exc)
    if exc.backs_off_key:
        return rate_limited_message(exc.retry_after_s)
    if isinstance(exc, NotFoundError):
        return f"Not found in JobNimbus: {exc}. Check the jnid (list or search tools return valid ones)."
    if isinstance(exc, ValidationError):
        if not exc.reached_upstream:
            return f"The request was not sent to JobNimbus: {exc}"
        said = exc.upstream_message or str(exc)
        return f"JobNimbus rejected the request: {said}"
    if exc.server_busy:  # JobNimbus is fine: this server's miss slots are all taken
        return f"This server is busy: {exc}."
    if isinstance(exc, UpstreamUnavailableError):
        return unavailable_message(exc.retry_after_s)
    return f"JobNimbus request failed: {exc}"


def refused_key_message(exc: UpstreamError) -> str:
    """Return what a refused (or malformed) key means, said once: the client's error already names JobNimbus's
    refusal and the header, so only a refusal remembered from moments ago adds its own reason."""
    if isinstance(exc, MalformedKeyError):
        return f"{exc}."
    if isinstance(exc, AuthError):
        return (
            f"JobNimbus refused the API key (HTTP {exc.status}): check the key sent in X-JobNimbus-Api-Key and its "
            "access profile."
        )
    return f"JobNimbus refused the API key: {exc}. Check the key sent in X-JobNimbus-Api-Key."


def unavailable_message(retry_after_s: float | None) -> str:
    """Return the retry advice for an unavailable JobNimbus (Retry-After when it gave one, else 30 s)."""
    return f"JobNimbus is unavailable, retry in {whole_seconds(retry_after_s, 30)} s."


def rate_limited_message(retry_after_s: float | None) -> str:
    """Return the advice for a key JobNimbus rate limits: only that key waits, for the time named."""
    return f"JobNimbus is rate limiting this API key, retry in {whole_seconds(retry_after_s, 30)} s."
