"""The warming re-read (cacheops.warming's pluggable WARMER): run a read tool again with the instance's server-held key.

The arguments are the ones the engine saw (shaping arguments already dropped), so the re-read lands on the same
cache entry the callers use.
"""

from __future__ import annotations

from typing import Any

from cacheops.api import tenant_id
from mcp_tools.catalog.base import ToolContext
from mcp_tools.catalog.registry import call_tool, get_tool


def warm_read(instance: str, api_key: str, tool: str, args: dict[str, Any]) -> bool:
    """Re-run read tool `tool` with `args` for `instance`; return whether it succeeded."""
    if not get_tool(tool).read_only:
        return False
    ctx = ToolContext(instance=instance, api_key=api_key, tenant=tenant_id(api_key), request_id="cache-warming")
    return not call_tool(ctx, tool, args).is_error
