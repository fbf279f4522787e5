"""HTTP checks shared by `/mcp` and the compatibility endpoints: method, Origin, size, content type."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest

from cacheops.http import BodyTooLarge, read_capped_body
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


def _read_limited(request: HttpRequest, limit: int) -> bytes:
    try:
        return read_capped_body(request, limit)
    except BodyTooLarge:
        raise _too_large(limit) from None


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The body is larger than {limit} bytes (MCP_MAX_BODY_BYTES)")
