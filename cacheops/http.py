"""What every HTTP entry point of this server reads the same way: the client's address and a capped body.

In cacheops because it is the lower layer: the webhook receiver here and the MCP views in mcp_tools both use it, so
a wrong-secret count and a throttle budget name a client alike, and every body is read under the same rules.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from django.conf import settings
from django.http import HttpRequest

# A Content-Length that can be trusted as a number: ASCII digits only (str.isdigit also takes "²") and short.
_CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")


class BodyTooLarge(Exception):
    """The body is larger than the caller's limit (each entry point answers it in its own shape)."""


def client_address(request: HttpRequest) -> str:
    """Return the address the request came from, as budgets and wrong-secret counts name a client.

    REMOTE_ADDR, or behind TRUSTED_PROXY_COUNT proxies the X-Forwarded-For entry the outermost of them appended (the
    entries left of it are the client's own word). An IPv6 address counts by its /64, the block one subscriber gets;
    what is not an address counts as `unknown`.
    """
    hops = int(getattr(settings, "TRUSTED_PROXY_COUNT", 0))
    if hops > 0:
        forwarded = str(request.META.get("HTTP_X_FORWARDED_FOR") or "")
        entries = [entry.strip() for entry in forwarded.split(",") if entry.strip()]
        if len(entries) >= hops and (address := _address_key(entries[-hops])) != "unknown":
            return address
    return _address_key(str(request.META.get("REMOTE_ADDR") or ""))


def _address_key(text: str) -> str:
    text = text.strip()
    if text.startswith("["):  # [2001:db8::1]:443
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # 203.0.113.7:51234
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def read_capped_body(request: HttpRequest, limit: int) -> bytes:
    """Return the request body, raising BodyTooLarge past `limit` bytes, whether it has a Content-Length or not."""
    declared = (request.META.get("CONTENT_LENGTH") or "").strip()
    if _CONTENT_LENGTH.fullmatch(declared) and int(declared) > limit:
        raise BodyTooLarge(limit)
    if not declared and request.META.get("wsgi.input_terminated"):
        # A chunked body (no Content-Length): gunicorn de-chunks it into wsgi.input and says so with
        # wsgi.input_terminated, but Django reads a request without Content-Length as empty. Read the stream itself.
        body = _read_stream(request.META["wsgi.input"], limit + 1)
    else:
        # A missing or lying Content-Length is caught by reading one byte past the limit.
        body = request.read(limit + 1)
    if len(body) > limit:
        raise BodyTooLarge(limit)
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
