"""HTTP checks shared by `/mcp` and the compatibility endpoints: Origin, method, size, content type; and the
DRF parsers that read their bodies under those rules."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from django.http import HttpRequest

from cacheops.http import BodyTooLarge, read_capped_body
from cacheops.rest import CappedBodyParser
from mcp_tools.conf import mcp_setting
from mcp_tools.protocol import messages
from mcp_tools.protocol.errors import (
    BadRequest,
    ForbiddenOrigin,
    MethodNotAllowed,
    PayloadTooLarge,
    RpcError,
    UnsupportedMediaType,
)

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
    if origin is None or origin_allowed(origin, list(mcp_setting("ALLOWED_ORIGINS"))):
        return
    raise ForbiddenOrigin(f"Origin {origin[:200]!r} is not allowed; add it to MCP_ALLOWED_ORIGINS to permit it")


def require_post(method: str | None) -> None:
    """Refuse every method but POST: this server keeps no sessions and opens no event stream (GET, DELETE)."""
    if method == "POST":
        return
    raise MethodNotAllowed(
        f"{method} is not supported here: send JSON-RPC messages with POST (this server keeps no "
        "sessions and opens no event stream)",
        headers={"Allow": "POST"},
    )


def check_content_type(content_type: str | None) -> None:
    """Refuse a body that is not declared `application/json`."""
    if content_type == "application/json":
        return
    raise UnsupportedMediaType(
        f"Content-Type must be application/json, got {content_type or 'none'!r}",
        headers={"Accept-Post": "application/json"},
    )


def read_limited(request: HttpRequest) -> bytes:
    """Return the body, or raise 413 past MCP_MAX_BODY_BYTES (chunked bodies too)."""
    limit = int(mcp_setting("MAX_BODY_BYTES"))
    try:
        return read_capped_body(request, limit)
    except BodyTooLarge:
        raise _too_large(limit) from None


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The body is larger than {limit} bytes (MCP_MAX_BODY_BYTES)")


class McpBodyParser(CappedBodyParser):
    """An MCP POST's body: at most MCP_MAX_BODY_BYTES (413), declared `application/json` (415); the raw bytes."""

    allow_empty = False  # True: an empty body needs no Content-Type (the compat list takes no arguments)

    def max_bytes(self) -> int:
        return int(mcp_setting("MAX_BODY_BYTES"))

    def too_large(self, limit: int) -> Exception:
        return _too_large(limit)

    def decode(self, request: HttpRequest, body: bytes) -> Any:
        if not (self.allow_empty and not body):
            check_content_type(request.content_type)
        return self.load(body)

    def load(self, body: bytes) -> Any:
        """Return `request.data` for the checked body: the bytes themselves here."""
        return body


class OptionalBodyParser(McpBodyParser):
    """`POST /mcp/tools/list`: the body is read and checked, never used; it may be empty."""

    allow_empty = True


class JsonRpcParser(McpBodyParser):
    """`POST /mcp`: the body as JSON (orjson); not JSON is the JSON-RPC parse error."""

    def load(self, body: bytes) -> Any:
        return messages.parse(body)


class JsonParser(McpBodyParser):
    """A compat endpoint's body as JSON (orjson); not JSON is a 400 in the compat shape."""

    def load(self, body: bytes) -> Any:
        try:
            return messages.parse(body)
        except RpcError as error:
            raise BadRequest("The body is not valid JSON") from error
