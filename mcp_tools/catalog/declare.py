"""Builders for the repeated kinds of tool (list, detail, search, create, update, delete), so each declaration
states only what differs. Every builder is keyword-only and takes the entity's row (`mcp_tools.entities`) for
the policy and resource the declaration names; the handlers it builds read them back from the declaration.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mcp_tools.catalog.args import SHAPING_ARGS, SHAPING_SCHEMAS, jnid_schema, list_schema
from mcp_tools.catalog.base import Args, Handler, ToolContext, ToolResult, ToolSpec
from mcp_tools.catalog.compose import include_property
from mcp_tools.catalog.notes import note
from mcp_tools.catalog.runtime import get_record, list_records
from mcp_tools.catalog.search import SearchFields, search_clause
from mcp_tools.catalog.writes import Defaults, created, deleted, updated
from mcp_tools.entities import entity as entity_row
from mcp_tools.jobnimbus.filters import Clause

# Tool annotations state only the hints that differ from the MCP defaults (readOnlyHint false, destructiveHint true,
# idempotentHint false, openWorldHint true: every tool here talks to JobNimbus, an open world); `hint()` reads them
# back with the defaults filled in.
HINT_DEFAULTS = {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": False, "openWorldHint": True}
READ = {"readOnlyHint": True, "destructiveHint": False, "idempotentHint": True}
CREATE = {"destructiveHint": False}
UPDATE = {"idempotentHint": True}
DELETE = UPDATE
SHAPING_PROPS: dict[str, Any] = SHAPING_SCHEMAS


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
    by_jnid: bool = False,
) -> ToolSpec:
    """Declare a list tool over `entity`'s resource with the shared list arguments plus `extra` ones.

    `by_jnid` adds a `jnid` argument that answers that one record instead of a page (the detail read, shaped as a
    detail tool shapes it): one tool per entity where a detail tool would only repeat the list's arguments. Only for
    an entity whose detail read has the list's cache policy, so the tool still reads under the one it declares.
    """
    row = entity_row(entity)
    if by_jnid and row.cache_policy("get") != row.cache_policy("list"):
        raise ValueError(f"{name}: {entity} details have a cache policy of their own; declare a detail_tool")

    def handler(spec: ToolSpec, ctx: ToolContext, args: Args) -> ToolResult:
        if by_jnid and args.get("jnid"):
            # Only the id and the shaping arguments: the page and filter defaults never key a record's entry.
            note(_ignored_beside_jnid(spec, args))
            return get_record(ctx, spec, {k: args[k] for k in ("jnid", *SHAPING_ARGS) if k in args})
        return list_records(
            ctx,
            spec,
            args,
            date_field=date_field,
            clauses=clauses(args) if clauses else (),
            parents=parents(args) if parents else (),
        )

    one = {"jnid": jnid_schema()} if by_jnid else {}  # the description says what it does
    return ToolSpec(
        name=name,
        title=title,
        description=description,
        input_schema=list_schema(date_field=date_field, extra={**one, **(extra or {})}, required=required),
        # The list envelope ({count, from, size, next_from, records}) is the same for every list tool and said once,
        # in the server's instructions; an output schema per tool would repeat it 15 times and tell a model nothing.
        output_schema=None,
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
    query = {"query": text(max_length=200, minLength=1)}
    return ToolSpec(
        name=name,
        title=title,
        description=description,
        input_schema=list_schema(extra=query, required=["query"]),
        output_schema=None,
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
        # include: related records in the same answer (catalog.compose), for the entities that have parts.
        input_schema=object_schema({**_jnid(entity), **SHAPING_PROPS, **include_property(row.name)}, required=["jnid"]),
        # A record's fields vary by account: an output schema could say only "an object", so none is declared.
        output_schema=None,
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
    """Declare a write tool on `entity`'s resource: never cached, answered with `{record, notice?}` (no output
    schema: the record's fields are the account's, and the tool's description says what comes back)."""
    row = entity_row(entity)
    return ToolSpec(
        name=name,
        title=title,
        description=description,
        input_schema=schema,
        output_schema=None,
        annotations=annotations,
        handler=handler,
        entity=row.name,
        resource=row.resource,
    )


def _ignored_beside_jnid(spec: ToolSpec, args: Args) -> str | None:
    """Say which list arguments a call naming one record by `jnid` gave and did not use (None when it gave none)."""
    properties = spec.input_schema.get("properties", {})
    ignored = sorted(
        name
        for name, value in args.items()
        if name not in ("jnid", *SHAPING_ARGS) and value != properties.get(name, {}).get("default", _NO_DEFAULT)
    )
    if not ignored:
        return None
    return f"jnid names one record, so {', '.join(ignored)} did not filter anything: the answer is that record."


_NO_DEFAULT = object()


def _jnid(entity: str) -> dict[str, Any]:
    return {"jnid": jnid_schema()}  # get_job's jnid is the job's: the tool's name says whose


def object_schema(properties: Mapping[str, Any], *, required: Sequence[str] = ()) -> dict[str, Any]:
    """Return a closed object schema (unknown arguments are refused); `required` is left out when empty."""
    schema: dict[str, Any] = {"type": "object", "properties": dict(properties), "additionalProperties": False}
    return {**schema, "required": list(required)} if required else schema


def text(description: str | None = None, *, max_length: int = 500, **extra: Any) -> dict[str, Any]:
    """Return the schema of a free-text argument, described only when its name and tool say too little."""
    schema = {"type": "string", "maxLength": max_length, **extra}
    return {**schema, "description": description} if description else schema


# Keywords that only guard the server (a pasted blob, an id that cannot be one, a list longer than any real one; a
# limit a model needs, like bulk_import_contacts' 100 rows, is in the tool's description): validation applies them,
# refusing with a message that names the bound, but no model's real argument meets them, so the published schema
# leaves them out (`published`) rather than repeat them in every conversation's tool list.
GUARD_KEYWORDS = frozenset({"maxLength", "minLength", "pattern", "maxItems"})


def published(schema: Any) -> Any:
    """Return `schema` as tools/list shows it: the validation schema without its GUARD_KEYWORDS, at every depth.

    Only keywords directly in a schema object are dropped: a property that happens to be called `pattern` stays.
    """
    if not isinstance(schema, Mapping):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in GUARD_KEYWORDS:
            continue
        if key == "properties" and isinstance(value, Mapping):
            out[key] = {name: published(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = published(value)
        elif key in ("anyOf", "allOf", "oneOf") and isinstance(value, list):
            out[key] = [published(sub) for sub in value]
        else:
            out[key] = value
    return out


def hint(annotations: Mapping[str, Any], name: str) -> bool:
    """Return annotation hint `name` of a tool, its MCP default when the declaration leaves it out."""
    return bool(annotations.get(name, HINT_DEFAULTS[name]))
