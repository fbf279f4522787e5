"""Request ids on every log line, and redaction of anything that looks like a credential.

The request id comes from an incoming `X-Request-ID` (when it is sane) or is made fresh, is echoed in
the response, and reaches every log record through a context variable, so a line from the cache engine
or the JobNimbus client can be tied to the request that caused it.
"""

from __future__ import annotations

import contextvars
import logging
import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

_SANE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Bearer tokens and anything labelled key/token/secret/password: the value is replaced, the label kept.
_SECRET_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"(?i)((?:api[_-]?key|token|secret|password)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"),
)


def redact(text: str) -> str:
    """Return text with credential values replaced by '[redacted]'."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(r"\1[redacted]", text)
    return text


class RequestIdFilter(logging.Filter):
    """Attach the current request id to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class RedactSecretsFilter(logging.Filter):
    """Redact credentials from the rendered message before any handler writes it.

    Django's request loggers also attach the request itself (`extra={"request": ...}`), which the JSON formatter
    writes as its repr: the full path with its query string, where a webhook's `?token=` would be. It is replaced by
    that repr, redacted.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        request = getattr(record, "request", None)
        if request is not None and not isinstance(request, str):
            record.request = redact(repr(request))
        return True


class RequestIdMiddleware:
    """Give each request an id, expose it to logging, and echo it as X-Request-ID."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _SANE_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-ID"] = request_id
        return response
