"""Typed JobNimbus errors. Each message tells a user what to do; none carries the API key.

Each class states what it means for the cache engine through the attributes of `cacheops.errors.UpstreamError`
(instance fault, reached JobNimbus, key refused, key backing off); the engine decides from those alone.
"""

from __future__ import annotations

from cacheops.errors import UpstreamError, UpstreamUnavailableError


class JobNimbusError(UpstreamError):
    """Base of every error the client raises. `status` is the HTTP status when there was one.

    By default an answer about this caller's request: JobNimbus answered, so it is up.
    """

    status: int | None = None

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class AuthError(JobNimbusError):
    """JobNimbus refused the API key (401/403): the key is remembered as refused (see cacheops.callers)."""

    status = 401
    refuses_key = True


class MalformedKeyError(AuthError):
    """The key is malformed and was never sent: refused here at no cost, so there is nothing to remember."""

    reached_upstream = False


class NotFoundError(JobNimbusError):
    """The record or path does not exist (404). `resource` and `jnid` say what was looked for."""

    status = 404

    def __init__(
        self, message: str, *, status: int | None = None, resource: str | None = None, jnid: str | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.resource = resource
        self.jnid = jnid


class ValidationError(JobNimbusError):
    """JobNimbus rejected the request body or parameters (400, or 500 on a missing required field).

    `upstream_message` is JobNimbus's own words, when it gave any.
    """

    status = 400

    def __init__(self, message: str, *, status: int | None = None, upstream_message: str | None = None) -> None:
        super().__init__(message, status=status)
        self.upstream_message = upstream_message


class UnsupportedOperationError(ValidationError):
    """The caller asked for a resource or operation JobNimbus has no endpoint for; nothing was sent upstream."""

    reached_upstream = False


class UnsendableRequestError(ValidationError):
    """The request could not be sent (its body is not JSON, e.g. a number out of range): the caller's fault alone."""

    reached_upstream = False


class RateLimitedError(JobNimbusError, UpstreamUnavailableError):
    """JobNimbus answered 429. `retry_after_s` comes from Retry-After when present.

    JobNimbus rate limits per key, so this backs off that key only and never counts against the instance's breaker;
    the caller's stale entries may still be served meanwhile (it stays an UpstreamUnavailableError).
    """

    status = 429
    instance_fault = False
    backs_off_key = True

    def __init__(self, message: str, *, retry_after_s: float | None = None, status: int | None = None) -> None:
        JobNimbusError.__init__(self, message, status=status)
        self.retry_after_s = retry_after_s


class UnavailableError(JobNimbusError, UpstreamUnavailableError):
    """JobNimbus could not be reached or answered 5xx, or the time budget ran out: an instance fault."""

    instance_fault = True

    def __init__(self, message: str, *, retry_after_s: float | None = None, status: int | None = None) -> None:
        JobNimbusError.__init__(self, message, status=status)
        self.retry_after_s = retry_after_s
