"""What a model is told when JobNimbus fails: one sentence per kind of failure, with what to do next."""

from __future__ import annotations

import math

from cacheops.errors import UpstreamUnavailableError
from mcp_tools.jobnimbus.errors import AuthError, JobNimbusError, NotFoundError, ValidationError


def upstream_message(exc: JobNimbusError) -> str:
    """Return what a model should be told about a JobNimbus failure."""
    if isinstance(exc, AuthError):
        return f"JobNimbus refused the API key: {exc}. Check the key sent in X-JobNimbus-Api-Key."
    if isinstance(exc, NotFoundError):
        return f"Not found in JobNimbus: {exc}. Check the jnid (list or search tools return valid ones)."
    if isinstance(exc, ValidationError):
        said = exc.upstream_message or str(exc)
        return f"JobNimbus rejected the request: {said}"
    if isinstance(exc, UpstreamUnavailableError):
        return unavailable_message(getattr(exc, "retry_after_s", None))
    return f"JobNimbus request failed: {exc}"


def unavailable_message(retry_after_s: float | None) -> str:
    """Return the retry advice for an unavailable JobNimbus (Retry-After when it gave one, else 30 s)."""
    wait = max(1, math.ceil(retry_after_s)) if retry_after_s else 30
    return f"JobNimbus is unavailable, retry in {wait} s."
