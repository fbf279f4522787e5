"""Builders for the three kinds of tool (list, detail, write), so each declaration states only what differs."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mcp_tools.catalog.args import VERBOSITIES, jnid_schema, list_schema
from mcp_tools.catalog.base import Handler, ToolContext, ToolResult, ToolSpec
from mcp_tools.catalog.runtime import Args, get_record, list_records
from mcp_tools.jobnimbus.filters import Clause
from mcp_tools.shaping import DETAIL_OUTPUT_SCHEMA, LIST_OUTPUT_SCHEMA

READ = {"readOnlyHint": True, "destructiveHint": False, "idempotentHint": True, "openWorldHint": True}
CREATE = {"readOnlyHint": False, "destructiveHint": False, "idempotentHint": False, "openWorldHint": True}
UPDATE = {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": True, "openWorldHint": True}
DELETE = UPDATE
WRITE_OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "record": {"type": "object", "additionalProperties": True},
        "notice": {"type": "string"},
    },
    "required": ["record"],
}
SHAPING_PROPS: dict[str, Any] = {
    "verbosity": {"type": "string", "enum": list(VERBOSITIES), "default": "compact"},
    "fields": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 64}, "maxItems": 50},
}


def list_tool(
    name: str,
    title: str,
    description: str,
    *,
    entity: str,
    policy: str,
    resource: str,
    date_field: str = "date_created",
    extra: Mapping[str, Any] | None = None,
    required: Sequence[str] = (),
    clauses: Callable[[Args], list[Clause]] | None = None,
    parents: Callable[[Args], list[str | None]] | None = None,
) -> ToolSpec:
    """Declare a list tool over `resource` with the shared list arguments plus `extra` ones."""

    def handler(ctx: ToolContext, args: Args) -> ToolResult:
        return list_records(
            ctx,
            name,
            args,
            entity=entity,
            policy=policy,
            resource=resource,
            date_field=date_field,
            clauses=clauses(args) if clauses else (),
            parents=parents(args) if parents else (),
        )

    schema = list_schema(date_field=date_field, extra=extra, required=required)
    return ToolSpec(name, title, description, schema, LIST_OUTPUT_SCHEMA, READ, handler, policy)


def detail_tool(name: str, title: str, description: str, *, entity: str, policy: str, resource: str) -> ToolSpec:
    """Declare a tool returning one record of `resource` by its jnid."""

    def handler(ctx: ToolContext, args: Args) -> ToolResult:
        return get_record(ctx, name, args, entity=entity, policy=policy, resource=resource)

    schema = object_schema({"jnid": jnid_schema(f"The {entity}'s jnid."), **SHAPING_PROPS}, required=["jnid"])
    return ToolSpec(name, title, description, schema, DETAIL_OUTPUT_SCHEMA, READ, handler, policy)


def write_tool(
    name: str, title: str, description: str, schema: Mapping[str, Any], annotations: Mapping[str, Any], handler: Handler
) -> ToolSpec:
    """Declare a write tool: never cached, answered with `{record, notice?}`."""
    return ToolSpec(name, title, description, schema, WRITE_OUTPUT_SCHEMA, annotations, handler, None)


def object_schema(properties: Mapping[str, Any], *, required: Sequence[str] = ()) -> dict[str, Any]:
    """Return a closed object schema (unknown arguments are refused)."""
    return {"type": "object", "properties": dict(properties), "required": list(required), "additionalProperties": False}


def text(description: str, *, max_length: int = 500, **extra: Any) -> dict[str, Any]:
    """Return the schema of a free-text argument."""
    return {"type": "string", "maxLength": max_length, "description": description, **extra}
