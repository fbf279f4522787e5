"""Which protocol revisions this server speaks, and how one request picks its era."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mcp_types import (
    CLIENT_CAPABILITIES_META_KEY,
    DEFAULT_NEGOTIATED_VERSION,
    HEADER_MISMATCH,
    PROTOCOL_VERSION_META_KEY,
    UNSUPPORTED_PROTOCOL_VERSION,
    UnsupportedProtocolVersionErrorData,
)

from mcp_tools.protocol.errors import Era, RpcError, invalid_params, invalid_request

HANDSHAKE_VERSIONS: tuple[str, ...] = ("2025-03-26", "2025-06-18", "2025-11-25")
MODERN_VERSIONS: tuple[str, ...] = ("2026-07-28",)
SUPPORTED_VERSIONS: tuple[str, ...] = (*HANDSHAKE_VERSIONS, *MODERN_VERSIONS)

VERSION_HEADER = "MCP-Protocol-Version"
METHOD_HEADER = "Mcp-Method"
NAME_HEADER = "Mcp-Name"


@dataclass(frozen=True)
class Negotiated:
    """The era and protocol version one request is answered in."""

    era: Era
    version: str


def negotiate_initialize(requested: Any) -> str:
    """Return the version `initialize` answers: the client's when supported, else the newest handshake one."""
    return requested if requested in HANDSHAKE_VERSIONS else HANDSHAKE_VERSIONS[-1]


def _meta_version(params: Mapping[str, Any] | None) -> tuple[bool, Any]:
    meta = (params or {}).get("_meta")
    if isinstance(meta, Mapping) and PROTOCOL_VERSION_META_KEY in meta:
        return True, meta[PROTOCOL_VERSION_META_KEY]
    return False, None


def is_modern(method: str, params: Mapping[str, Any] | None, header: str | None) -> bool:
    """Tell whether a request is in the 2026-07-28 era: a modern header, a `_meta` version, or discover."""
    has_meta_version, _ = _meta_version(params)
    return header in MODERN_VERSIONS or has_meta_version or method == "server/discover"


def unsupported(requested: Any) -> RpcError:
    """Return the 2026-07-28 error for a version this server does not speak, naming those it does."""
    data = UnsupportedProtocolVersionErrorData(supported=list(SUPPORTED_VERSIONS), requested=str(requested))
    return RpcError(UNSUPPORTED_PROTOCOL_VERSION, "Unsupported protocol version", data.model_dump(mode="json"))


def check_legacy_header(header: str | None) -> Negotiated:
    """Return the legacy era for a request without a modern envelope; an absent header means 2025-03-26."""
    if header is None:
        return Negotiated("legacy", DEFAULT_NEGOTIATED_VERSION)
    if header in HANDSHAKE_VERSIONS:
        return Negotiated("legacy", header)
    supported = ", ".join(SUPPORTED_VERSIONS)
    raise invalid_request(f"unsupported {VERSION_HEADER} header {header!r}; this server supports {supported}")


def check_modern_envelope(method: str, params: Mapping[str, Any] | None, headers: Mapping[str, str]) -> Negotiated:
    """Validate a 2026-07-28 request's `_meta` envelope and routing headers; return its era and version.

    The order follows the SDK's inbound ladder: envelope keys, then header/body agreement (a client that
    disagrees with itself is told so first), then whether the version is served.
    """
    meta = (params or {}).get("_meta")
    if not isinstance(meta, Mapping):
        raise invalid_params(f"params._meta must be an object carrying {PROTOCOL_VERSION_META_KEY!r}")
    missing = [key for key in (PROTOCOL_VERSION_META_KEY, CLIENT_CAPABILITIES_META_KEY) if key not in meta]
    if missing:
        raise invalid_params(f"params._meta is missing {', '.join(missing)}")
    version = meta[PROTOCOL_VERSION_META_KEY]
    _check_routing_headers(method, params or {}, headers, version)
    if version not in MODERN_VERSIONS:
        raise unsupported(version)
    return Negotiated("modern", version)


def _check_routing_headers(method: str, params: Mapping[str, Any], headers: Mapping[str, str], version: Any) -> None:
    if headers.get(VERSION_HEADER) != version:
        raise _mismatch(f"the {VERSION_HEADER} header must equal params._meta[{PROTOCOL_VERSION_META_KEY!r}]")
    if headers.get(METHOD_HEADER) != method:
        raise _mismatch(f"the {METHOD_HEADER} header must equal the body's method {method!r}")
    check_name_header(method, params, headers, required=True)


def check_name_header(method: str, params: Mapping[str, Any], headers: Mapping[str, str], *, required: bool) -> None:
    """Reject an `Mcp-Name` header that disagrees with a `tools/call` body's `name`."""
    name = params.get("name")
    header = headers.get(NAME_HEADER)
    if method != "tools/call" or not isinstance(name, str) or (header is None and not required):
        return
    if header != name:
        raise _mismatch(f"the {NAME_HEADER} header must equal the tool name {name!r}")


def check_method_header(method: str, headers: Mapping[str, str]) -> None:
    """Reject an `Mcp-Method` header that a legacy-era client sent but that disagrees with the body."""
    header = headers.get(METHOD_HEADER)
    if header is not None and header != method:
        raise _mismatch(f"the {METHOD_HEADER} header must equal the body's method {method!r}")


def _mismatch(message: str) -> RpcError:
    return RpcError(HEADER_MISMATCH, f"Header mismatch: {message}")
