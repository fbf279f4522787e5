"""Builders for the repeated kinds of tool (list, detail, search, create, update, delete), so each declaration
states only what differs. Every builder is keyword-only and takes the entity's row (`mcp_tools.entities`) for
the policy and resource the declaration names; the handlers it builds read them back from the declaration.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mcp_tools.catalog.args import VERBOSITIES, jnid_schema, list_schema
from mcp_tools.catalog.base import Args, Handler, ToolContext, ToolResult, ToolSpec
from mcp_tools.catalog.runtime import get_record, list_records
from mcp_tools.catalog.search import SearchFields, search_clause
from mcp_tools.catalog.writes import Defaults, created, deleted, updated
from mcp_tools.entities import entity as entity_row
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
    *,
    name: str,
    title: str,
    description: str,
    entity: str,
    date_field: str = "date_created",
    extra: Mapping[str, Any] | None = None,
    required: Sequence[str] = (),
    clauses: Callable[[Args], list[Clause]] | None = None,
    parents: Callable[[Args], list[str | None]] | None = None,
) -> ToolSpec:
    """Declare a list tool over `entity`'s resource with the shared list arguments plus `extra` ones."""

    def handler(spec: ToolSpec, ctx: ToolContext, args: Args) -> ToolResult:
        return list_records(
            ctx,
            spec,
            args,
            date_field=date_field,
            clauses=clauses(args) if clauses else (),
            parents=parents(args) if parents else (),
        )

    row = entity_row(entity)
    return ToolSpec(
        name=name,
        title=title,
        description=description,
        input_schema=list_schema(date_field=date_field, extra=extra, required=required),
        output_schema=LIST_OUTPUT_SCHEMA,
        annotations=READ,
        handler=handler,
        policy=row.cache_policy("list"),
        entity=row.name,
        resource=row.resource,
    )


def search_tool(*, name: str, title: str, description: str, entity: str, fields: SearchFields) -> ToolSpec:
    """Declare a free-text search over `entity`'s resource: the query's shape picks the one field of `fields`."""

    def handler(spec: ToolSpec, ctx: ToolContext, args: Args) -> ToolResult:
        return list_records(ctx, spec, args, clauses=[search_clause(args["query"], fields)], op="search")

    row = entity_row(entity)
    query = {"query": text("What to look for.", max_length=200, minLength=1)}
    return ToolSpec(
        name=name,
        title=title,
        description=description,
        input_schema=list_schema(extra=query, required=["query"]),
        output_schema=LIST_OUTPUT_SCHEMA,
        annotations=READ,
        handler=handler,
        policy=row.cache_policy("search"),
        entity=row.name,
        resource=row.resource,
    )


def detail_tool(*, name: str, title: str, description: str, entity: str) -> ToolSpec:
    """Declare a tool returning one record of `entity`'s resource by its jnid."""

    def handler(spec: ToolSpec, ctx: ToolContext, args: Args) -> ToolResult:
        return get_record(ctx, spec, args)

    row = entity_row(entity)
    return ToolSpec(
        name=name,
        title=title,
        description=description,
        input_schema=object_schema({**_jnid(entity), **SHAPING_PROPS}, required=["jnid"]),
        output_schema=DETAIL_OUTPUT_SCHEMA,
        annotations=READ,
        handler=handler,
        policy=row.cache_policy("get"),
        entity=row.name,
        resource=row.resource,
    )


def create_tool(
    *,
    name: str,
    title: str,
    description: str,
    entity: str,
    schema: Mapping[str, Any],
    body: Callable[[Args], dict[str, Any]],
    defaults: Defaults | None = None,
) -> ToolSpec:
    """Declare a create tool: `body` turns the arguments into the record, `defaults` fills what the account decides."""

    def handler(spec: ToolSpec, ctx: ToolContext, args: Args) -> ToolResult:
        record = body(args)
        notice = defaults(spec, ctx, record) if defaults else None
        return created(ctx, spec, record, notice)

    return _write_tool(name, title, description, entity, schema, CREATE, handler)


def update_tool(
    *,
    name: str,
    title: str,
    description: str,
    entity: str,
    properties: Mapping[str, Any],
    body: Callable[[Args], dict[str, Any]],
) -> ToolSpec:
    """Declare an update tool: the record's jnid plus any of `properties`, turned into the change by `body`."""

    def handler(spec: ToolSpec, ctx: ToolContext, args: Args) -> ToolResult:
        return updated(ctx, spec, args, body(args))

    schema = object_schema({**_jnid(entity), **properties}, required=["jnid"])
    return _write_tool(name, title, description, entity, schema, UPDATE, handler)


def delete_tool(*, name: str, title: str, description: str, entity: str) -> ToolSpec:
    """Declare a delete tool taking the record's jnid."""

    def handler(spec: ToolSpec, ctx: ToolContext, args: Args) -> ToolResult:
        return deleted(ctx, spec, args)

    schema = object_schema(_jnid(entity), required=["jnid"])
    return _write_tool(name, title, description, entity, schema, DELETE, handler)


def _write_tool(
    name: str,
    title: str,
    description: str,
    entity: str,
    schema: Mapping[str, Any],
    annotations: Mapping[str, Any],
    handler: Handler,
) -> ToolSpec:
    """Declare a write tool on `entity`'s resource: never cached, answered with `{record, notice?}`."""
    row = entity_row(entity)
    return ToolSpec(
        name=name,
        title=title,
        description=description,
        input_schema=schema,
        output_schema=WRITE_OUTPUT_SCHEMA,
        annotations=annotations,
        handler=handler,
        entity=row.name,
        resource=row.resource,
    )


def _jnid(entity: str) -> dict[str, Any]:
    return {"jnid": jnid_schema(f"The {entity}'s jnid.")}


def object_schema(properties: Mapping[str, Any], *, required: Sequence[str] = ()) -> dict[str, Any]:
    """Return a closed object schema (unknown arguments are refused)."""
    return {"type": "object", "properties": dict(properties), "required": list(required), "additionalProperties": False}


def text(description: str, *, max_length: int = 500, **extra: Any) -> dict[str, Any]:
    """Return the schema of a free-text argument."""
    return {"type": "string", "maxLength": max_length, "description": description, **extra}
