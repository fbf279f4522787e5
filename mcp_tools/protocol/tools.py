"""The catalog as the wire sees it: tool declarations, list pages with opaque cursors, and tool calls.

Shared by the JSON-RPC methods and the plain-JSON compatibility endpoints, so both list and call the
same tools the same way.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from django.core import signing
from mcp_types import CallToolResult, TextContent, Tool, ToolAnnotations

from cacheops.api import CacheOutcome
from mcp_tools.catalog import registry
from mcp_tools.catalog.base import ToolContext, ToolResult, ToolSpec
from mcp_tools.catalog.declare import published
from mcp_tools.conf import mcp_setting
from mcp_tools.protocol.errors import invalid_params

CACHE_META_KEY = "jobnimbus-mcp/cache"
_CURSOR_SALT = "mcp_tools.protocol.tools.cursor"


def catalog() -> ModuleType:
    """Return the tool registry (a function, so protocol tests can stand a small catalog in for it)."""
    return registry


def tool_json(spec: ToolSpec) -> dict[str, Any]:
    """Return a tool's declaration in the wire's `Tool` shape: its input schema as published (without the bounds
    that only guard the server, `declare.GUARD_KEYWORDS`; the registry validates with them)."""
    tool = Tool(
        name=spec.name,
        title=spec.title,
        description=spec.description,
        input_schema=published(spec.input_schema),
        output_schema=dict(spec.output_schema) if spec.output_schema is not None else None,
        annotations=ToolAnnotations.model_validate(dict(spec.annotations)) if spec.annotations else None,
    )
    return tool.model_dump(mode="json", by_alias=True, exclude_none=True)


def all_tools_json() -> list[dict[str, Any]]:
    """Return every tool's declaration."""
    return [tool_json(spec) for spec in catalog().all_tools()]


def list_page(cursor: Any) -> tuple[list[dict[str, Any]], str | None]:
    """Return one page of tools from `cursor` (None for the first) and the cursor of the next page, if any."""
    tools = all_tools_json()
    start = _cursor_offset(cursor, len(tools))
    end = start + int(mcp_setting("TOOLS_PAGE_SIZE"))
    next_cursor = signing.dumps(end, salt=_CURSOR_SALT, compress=True) if end < len(tools) else None
    return tools[start:end], next_cursor


def _cursor_offset(cursor: Any, total: int) -> int:
    if cursor is None:
        return 0
    if not isinstance(cursor, str):
        raise invalid_params("cursor must be a string returned as nextCursor by tools/list")
    try:
        offset = signing.loads(cursor, salt=_CURSOR_SALT)
    except signing.BadSignature as exc:
        raise invalid_params("cursor is not one this server issued; start again without a cursor") from exc
    if not isinstance(offset, int) or not 0 <= offset < total:
        raise invalid_params("cursor is out of range; the tool list changed, start again without a cursor")
    return offset


def run_tool(ctx: ToolContext, name: str, arguments: dict[str, Any]) -> ToolResult:
    """Call a tool and return its result; the registry turns every failure (an unknown tool, bad arguments,
    JobNimbus's answers, a crash) into an `is_error` result, so nothing is caught here. A write made with a managed
    token goes to the audit trail (`ctx.audit`), whether it succeeded or not."""
    result = catalog().call_tool(ctx, name, arguments)
    if ctx.audit is not None and catalog().is_write_tool(name):
        ctx.audit(name, arguments, result.structured, not result.is_error)
    return result


def cache_meta(result: ToolResult) -> dict[str, Any]:
    """Return the cache outcome for `_meta`; a tool that did not go through the cache reports `bypass`."""
    return result.cache or CacheOutcome.without_value("bypass").meta()


def call_result(result: ToolResult) -> CallToolResult:
    """Return a tool result in the wire's `CallToolResult` shape (text, structured content, cache `_meta`)."""
    return CallToolResult(
        content=[TextContent(type="text", text=result.text)],
        structured_content=result.structured,
        is_error=result.is_error,
        _meta={CACHE_META_KEY: cache_meta(result)},
    )
