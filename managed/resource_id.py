"""The one place the protected resource's identifier (RFC 8707 / RFC 9728) is worked out: this server's `/mcp`."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.http import HttpRequest

MCP_PATH = "/mcp"


def for_request(request: HttpRequest) -> str:
    """Return the resource identifier as the client reached this server (scheme and host of the request)."""
    return request.build_absolute_uri(MCP_PATH)


def for_uri(uri: str) -> str:
    """Return the resource identifier of the server that answered `uri` (an oauthlib request's full URL)."""
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}{MCP_PATH}"


def metadata_url(request: HttpRequest) -> str:
    """Return the URL of this resource's Protected Resource Metadata (RFC 9728's path-suffixed form)."""
    return request.build_absolute_uri("/.well-known/oauth-protected-resource" + MCP_PATH)
