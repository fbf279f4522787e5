"""JSON-RPC methods: one handler per method, the era each is served in, and the shape of their results."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from mcp_types import (
    SERVER_INFO_META_KEY,
    DiscoverResult,
    EmptyResult,
    InitializeRequestParams,
    InitializeResult,
    ListToolsResult,
    Result,
)
from pydantic import ValidationError

from mcp_tools.catalog.base import ToolContext
from mcp_tools.conf import mcp_setting
from mcp_tools.protocol import serverinfo, tools
from mcp_tools.protocol.errors import Era, invalid_params, method_not_found
from mcp_tools.protocol.versions import SUPPORTED_VERSIONS, Negotiated, negotiate_initialize

# Fields that exist only in 2026-07-28 results; a handshake-era answer leaves them out.
_MODERN_ONLY_FIELDS = {"result_type", "ttl_ms", "cache_scope"}


class ToolCaller(Protocol):
    """Who asks, as far as the protocol needs to know: able to run tools under their key (mcp_tools.tenancy)."""

    def tool_context(self, request_id: str, tool: str = "") -> ToolContext: ...


@dataclass(frozen=True)
class Exchange:
    """One JSON-RPC request with everything a handler may need."""

    method: str
    params: Mapping[str, Any]
    negotiated: Negotiated
    caller: ToolCaller
    request_id: str


Handler = Callable[[Exchange], Result]


def handle(exchange: Exchange) -> dict[str, Any]:
    """Run the method's handler and return the JSON result; raise `RpcError` for protocol errors."""
    handler = _handler(exchange.method, exchange.negotiated.era)
    return _dump(handler(exchange), exchange.negotiated.era)


def _handler(method: str, era: Era) -> Handler:
    served = _HANDLERS.get(method)
    if served is None or era not in served[1]:
        raise method_not_found(method)
    return served[0]


def _dump(result: Result, era: Era) -> dict[str, Any]:
    if era == "legacy":
        return result.model_dump(mode="json", by_alias=True, exclude_none=True, exclude=_MODERN_ONLY_FIELDS)
    meta = {**(result.meta or {}), SERVER_INFO_META_KEY: serverinfo.implementation_json()}
    return result.model_copy(update={"meta": meta}).model_dump(mode="json", by_alias=True, exclude_none=True)


def initialize(exchange: Exchange) -> Result:
    """Answer the handshake: the negotiated version, capabilities, server info and instructions."""
    try:
        params = InitializeRequestParams.model_validate(exchange.params)
    except ValidationError as exc:
        raise invalid_params(f"initialize needs protocolVersion, capabilities and clientInfo ({_first(exc)})") from exc
    return InitializeResult(
        protocol_version=negotiate_initialize(params.protocol_version),
        capabilities=serverinfo.capabilities(),
        server_info=serverinfo.implementation(),
        instructions=serverinfo.INSTRUCTIONS,
    )


def ping(exchange: Exchange) -> Result:
    """Answer a ping with an empty result."""
    return EmptyResult()


def discover(exchange: Exchange) -> Result:
    """Answer `server/discover` (2026-07-28): versions, capabilities, instructions; cacheable by anyone."""
    return DiscoverResult(
        supported_versions=list(SUPPORTED_VERSIONS),
        capabilities=serverinfo.capabilities(),
        instructions=serverinfo.INSTRUCTIONS,
        ttl_ms=mcp_setting("LIST_TTL_MS"),
        cache_scope="public",
    )


def list_tools(exchange: Exchange) -> Result:
    """Answer one page of the catalog. The list is the same for every caller, hence `public`."""
    page, next_cursor = tools.list_page(exchange.params.get("cursor"))
    return ListToolsResult.model_validate(
        {"tools": page, "nextCursor": next_cursor, "ttlMs": mcp_setting("LIST_TTL_MS"), "cacheScope": "public"}
    )


def call_tool(exchange: Exchange) -> Result:
    """Run a tool for the caller (a key is required) and answer its result."""
    name, arguments = call_arguments(exchange.params)
    ctx = exchange.caller.tool_context(exchange.request_id, name)
    return tools.call_result(tools.run_tool(ctx, name, arguments))


def call_arguments(params: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Return the tool name and arguments of a call, or raise -32602 saying what is wrong."""
    name = params.get("name")
    if not isinstance(name, str) or not name:
        raise invalid_params("tools/call needs a string 'name' (the tool to call)")
    arguments = params.get("arguments")
    if arguments is None:
        return name, {}
    if not isinstance(arguments, dict):
        raise invalid_params(f"'arguments' must be an object, got {type(arguments).__name__}")
    return name, arguments


def _first(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "params"
    return f"{where}: {error['msg']}"


_BOTH: frozenset[Era] = frozenset({"legacy", "modern"})
_HANDLERS: dict[str, tuple[Handler, frozenset[Era]]] = {
    "initialize": (initialize, frozenset({"legacy"})),
    "ping": (ping, frozenset({"legacy"})),
    "server/discover": (discover, frozenset({"modern"})),
    "tools/list": (list_tools, _BOTH),
    "tools/call": (call_tool, _BOTH),
}
