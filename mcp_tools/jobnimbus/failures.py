"""Turn one HTTP attempt's failure into a typed error: the only place that maps JobNimbus answers to errors.

Each message says what happened and what the user can do. Messages are built from the status, the
resource, the jnid and JobNimbus's own words — never from request headers, so never from the key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import requests

from mcp_tools.jobnimbus.errors import (
    AuthError,
    JobNimbusError,
    NotFoundError,
    RateLimitedError,
    UnavailableError,
    UnsendableRequestError,
    ValidationError,
)
from mcp_tools.jobnimbus.retry import parse_retry_after

# Transient by nature: worth another attempt for a read. 500 is not: JobNimbus uses it for bad writes.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
_MESSAGE_KEYS = ("message", "error", "errors", "detail", "msg", "Message")
_MAX_MESSAGE_CHARS = 500


@dataclass(frozen=True)
class Call:
    """One request the client wants answered. `resource` names it in stats and messages."""

    method: str
    resource: str
    url: str
    path: str
    params: dict[str, str] | None = None
    body: Any = None
    jnid: str | None = None

    @property
    def is_read(self) -> bool:
        """Return whether the call is safe to repeat (only GET; a write is never retried)."""
        return self.method == "GET"

    def describe(self) -> str:
        """Return e.g. 'GET jobs/abc123' for messages."""
        return f"{self.method} {self.resource}" + (f"/{self.jnid}" if self.jnid else "")


@dataclass(frozen=True)
class Failure:
    """A failed attempt: the error to raise, whether it is transient, and the stats outcome."""

    error: JobNimbusError
    outcome: str
    transient: bool
    status: int | None = None
    retry_after_s: float | None = None


def failure_for_response(call: Call, response: requests.Response, *, now: float) -> Failure:
    """Return the Failure a non-success response means."""
    status = response.status_code
    if status in (401, 403):
        return Failure(_auth_error(status), "auth", transient=False, status=status)
    if status == 404:
        return Failure(_not_found_error(call), "not_found", transient=False, status=status)
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now=now)
        return Failure(_rate_limited_error(retry_after), "rate_limited", True, status, retry_after)
    message = upstream_message(response)
    if 400 <= status < 500 or (status == 500 and not call.is_read and message):
        return Failure(_validation_error(call, status, message), "validation", transient=False, status=status)
    if status >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now=now)
        error = _unavailable_error(call, status, retry_after)
        return Failure(error, "server_error", status in RETRYABLE_STATUSES, status, retry_after)
    return unexpected_answer(call, f"HTTP {status}", status=status)


def failure_for_exception(call: Call, exc: requests.RequestException, *, read_timeout_s: float) -> Failure:
    """Return the Failure a transport exception means; timeouts and dropped connections are transient.

    A body requests cannot encode (inf, nan) never left this process: the caller's fault, never JobNimbus's.
    """
    if isinstance(exc, requests.exceptions.InvalidJSONError):
        message = f"The request to {call.describe()} could not be sent: its body is not valid JSON ({exc})"
        return Failure(UnsendableRequestError(message), "validation", transient=False)
    unsaved = "" if call.is_read else "; the change may or may not have been saved — check before repeating it"
    if isinstance(exc, requests.ConnectTimeout):
        message = f"JobNimbus could not be reached within the connect timeout{unsaved}"
        return Failure(UnavailableError(message), "timeout", transient=True)
    if isinstance(exc, requests.Timeout):
        message = f"JobNimbus did not answer {call.describe()} within {read_timeout_s:g} s{unsaved}"
        return Failure(UnavailableError(message), "timeout", transient=True)
    if isinstance(exc, requests.ConnectionError | requests.exceptions.ChunkedEncodingError):
        message = f"JobNimbus could not be reached ({type(exc).__name__}){unsaved}"
        return Failure(UnavailableError(message), "connection_error", transient=True)
    message = f"The request to JobNimbus failed before an answer ({type(exc).__name__}: {exc})"
    return Failure(UnavailableError(message), "bad_response", transient=False)


def unexpected_answer(call: Call, what: str, *, status: int | None = None) -> Failure:
    """Return the Failure for an answer of the wrong shape (HTML instead of JSON, a missing redirect...)."""
    return Failure(unexpected_error(call, what, status=status), "bad_response", transient=False, status=status)


def unexpected_error(call: Call, what: str, *, status: int | None = None) -> UnavailableError:
    """Return the error for an answer JobNimbus should not have given."""
    message = f"JobNimbus answered something unexpected to {call.describe()} ({what}); try again later"
    return UnavailableError(message, status=status)


def upstream_message(response: requests.Response) -> str | None:
    """Return JobNimbus's own error message from the body, or None when it gave none readable."""
    text = response.text.strip()
    if not text:
        return None
    try:
        body = json.loads(text)
    except ValueError:
        return None if text.startswith("<") else text[:_MAX_MESSAGE_CHARS]  # an HTML error page says nothing
    return _message_from_json(body)


def _message_from_json(body: Any) -> str | None:
    if isinstance(body, str):
        return body[:_MAX_MESSAGE_CHARS] or None
    if not isinstance(body, dict):
        return None
    for key in _MESSAGE_KEYS:
        value = body.get(key)
        if value:
            text = value if isinstance(value, str) else json.dumps(value)
            return text[:_MAX_MESSAGE_CHARS]
    return None


def _auth_error(status: int) -> AuthError:
    return AuthError(
        f"JobNimbus refused the API key (HTTP {status}): check the key in X-JobNimbus-Api-Key and its access profile",
        status=status,
    )


def _not_found_error(call: Call) -> NotFoundError:
    if call.jnid:
        message = (
            f"JobNimbus has no {call.resource} record with jnid {call.jnid!r} "
            "(or this key's access profile cannot see it)"
        )
    else:
        message = f"JobNimbus has no endpoint {call.path} (HTTP 404): check JOBNIMBUS_BASE_URL"
    return NotFoundError(message, resource=call.resource, jnid=call.jnid)


def _rate_limited_error(retry_after: float | None) -> RateLimitedError:
    when = f"retry after {retry_after:g} s" if retry_after is not None else "retry in a little while"
    return RateLimitedError(f"JobNimbus is rate limiting this key (HTTP 429): {when}", retry_after_s=retry_after)


def _validation_error(call: Call, status: int, message: str | None) -> ValidationError:
    said = message or "no reason given"
    return ValidationError(
        f"JobNimbus rejected {call.describe()} (HTTP {status}): {said}", status=status, upstream_message=message
    )


def _unavailable_error(call: Call, status: int, retry_after: float | None) -> UnavailableError:
    when = f"try again in {retry_after:g} s" if retry_after is not None else "try again shortly"
    return UnavailableError(
        f"JobNimbus is unavailable (HTTP {status} to {call.describe()}): {when}",
        retry_after_s=retry_after,
        status=status,
    )
