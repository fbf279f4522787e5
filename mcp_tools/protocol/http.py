"""HTTP checks shared by `/mcp` and the compatibility endpoints: method, Origin, size, content type."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest

from mcp_tools.protocol.errors import ForbiddenOrigin, MethodNotAllowed, PayloadTooLarge, UnsupportedMediaType


def read_json_body(request: HttpRequest, *, allow_empty: bool = False) -> bytes:
    """Return the POSTed body after the transport checks, or raise the `HttpProblem` that refuses it."""
    check_origin(request.headers.get("Origin"))
    if request.method != "POST":
        raise MethodNotAllowed(
            f"{request.method} is not supported here: send JSON-RPC messages with POST (this server keeps no "
            "sessions and opens no event stream)",
            headers={"Allow": "POST"},
        )
    body = _read_limited(request, settings.MCP_MAX_BODY_BYTES)
    if not (allow_empty and not body):
        check_content_type(request.content_type)
    return body


# An origin as browsers send it (RFC 6454): scheme://host with an optional port; an IPv6 host in brackets.
_ORIGIN = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://(?:\[[0-9A-Fa-f:.]+\]|[^\s\[\]/?#@:]+)(?::[0-9]{1,5})?")


def origin_allowed(origin: str, allowed: list[str]) -> bool:
    """Tell whether `origin` is allowed: exact entry, or an entry without port matching any port, or `*`."""
    if "*" in allowed or origin in allowed:
        return True
    if not _ORIGIN.fullmatch(origin):  # not an origin at all (e.g. "http://[::1"): no entry can allow it
        return False
    try:
        parts = urlsplit(origin)
    except ValueError:  # brackets holding no IPv6 address ("http://[1:::::]")
        return False
    without_port = f"{parts.scheme}://{parts.hostname or ''}"
    if parts.hostname and ":" in parts.hostname:
        without_port = f"{parts.scheme}://[{parts.hostname}]"
    return without_port in allowed


def check_origin(origin: str | None) -> None:
    """Refuse a browser request from an origin not in MCP_ALLOWED_ORIGINS (DNS-rebinding defence)."""
    if origin is None or origin_allowed(origin, list(settings.MCP_ALLOWED_ORIGINS)):
        return
    raise ForbiddenOrigin(f"Origin {origin[:200]!r} is not allowed; add it to MCP_ALLOWED_ORIGINS to permit it")


def check_content_type(content_type: str | None) -> None:
    """Refuse a body that is not declared `application/json`."""
    if content_type == "application/json":
        return
    raise UnsupportedMediaType(
        f"Content-Type must be application/json, got {content_type or 'none'!r}",
        headers={"Accept-Post": "application/json"},
    )


# A Content-Length that can be trusted as a number: ASCII digits only (str.isdigit also takes "²") and short.
_CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")


def _read_limited(request: HttpRequest, limit: int) -> bytes:
    declared = (request.META.get("CONTENT_LENGTH") or "").strip()
    if _CONTENT_LENGTH.fullmatch(declared) and int(declared) > limit:
        raise _too_large(limit)
    if not declared and request.META.get("wsgi.input_terminated"):
        # A chunked body (no Content-Length): gunicorn de-chunks it into wsgi.input and says so with
        # wsgi.input_terminated, but Django reads a request without Content-Length as empty. Read the stream itself.
        body = _read_stream(request.META["wsgi.input"], limit + 1)
    else:
        # A missing or lying Content-Length is caught by reading one byte past the limit.
        body = request.read(limit + 1)
    if len(body) > limit:
        raise _too_large(limit)
    return body


def _read_stream(stream: Any, most: int) -> bytes:
    """Return up to `most` bytes of a stream that ends on its own (reads may come back short)."""
    chunks: list[bytes] = []
    left = most
    while left > 0:
        chunk = stream.read(min(left, 65536))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The body is larger than {limit} bytes (MCP_MAX_BODY_BYTES)")
