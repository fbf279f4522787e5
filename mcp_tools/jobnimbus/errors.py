"""Typed JobNimbus errors. Each message tells a user what to do; none carries the API key."""

from __future__ import annotations

from cacheops.errors import UpstreamUnavailableError


class JobNimbusError(Exception):
    """Base of every error the client raises. `status` is the HTTP status when there was one."""

    status: int | None = None

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class AuthError(JobNimbusError):
    """JobNimbus refused the API key (401/403), or the key is malformed and was never sent."""

    status = 401


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


class RateLimitedError(JobNimbusError, UpstreamUnavailableError):
    """JobNimbus answered 429. `retry_after_s` comes from Retry-After when present."""

    status = 429

    def __init__(self, message: str, *, retry_after_s: float | None = None, status: int | None = None) -> None:
        JobNimbusError.__init__(self, message, status=status)
        self.retry_after_s = retry_after_s


class UnavailableError(JobNimbusError, UpstreamUnavailableError):
    """JobNimbus could not be reached or answered 5xx, or the time budget ran out."""

    def __init__(self, message: str, *, retry_after_s: float | None = None, status: int | None = None) -> None:
        JobNimbusError.__init__(self, message, status=status)
        self.retry_after_s = retry_after_s
