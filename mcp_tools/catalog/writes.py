"""Write tools' shared steps: defaults from account settings, then create/update/delete with read-your-writes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mcp_tools.catalog.args import ArgumentError
from mcp_tools.catalog.base import Args, ToolContext, ToolResult, ToolSpec
from mcp_tools.catalog.runtime import (
    account_settings,
    client,
    declared_entity,
    declared_resource,
    drop_none,
    result,
    write,
)
from mcp_tools.shaping import write_result

# Schema arguments that are tool controls, never record fields.
_CONTROL_ARGS = frozenset({"jnid"})


def record_body(args: Mapping[str, Any], renames: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Return the JobNimbus body for the given arguments (controls dropped, `renames` applied, None dropped)."""
    renames = renames or {}
    return drop_none({renames.get(k, k): v for k, v in args.items() if k not in _CONTROL_ARGS})


def link(jnid: str | None) -> list[dict[str, str]] | None:
    """Return a `related` list pointing at `jnid`, or None when there is no parent."""
    return [{"id": jnid}] if jnid else None


def fill_workflow(ctx: ToolContext, tool: str, object_type: str, body: dict[str, Any]) -> str | None:
    """Fill `record_type_name`/`status_name` the caller left out from the account's workflows; return a notice.

    The first workflow of `object_type` and its first status (by `order`) are what JobNimbus's own forms preselect.
    """
    if body.get("record_type_name") and body.get("status_name"):
        return None
    settings, _ = account_settings(ctx, tool)
    workflow = _workflow(settings, object_type, body.get("record_type_name"))
    statuses = sorted(workflow.get("status") or [], key=lambda s: s.get("order", 0))
    if not statuses:
        raise ArgumentError(f"Workflow {workflow.get('name')!r} has no statuses; pass 'status_name'")
    filled = {"record_type_name": workflow["name"], "status_name": statuses[0]["name"]}
    given = [k for k in filled if body.get(k)]
    defaults = {k: v for k, v in filled.items() if k not in given}
    body.update(defaults)
    said = ", ".join(f"{k}={v!r}" for k, v in defaults.items())
    return f"Used the account's default {said} (the first {object_type} workflow and its first status)."


# Fills what a create left out from the account (workflow, type) and returns the notice saying so, or None.
Defaults = Callable[[ToolSpec, ToolContext, dict[str, Any]], str | None]


def workflow_defaults(spec: ToolSpec, ctx: ToolContext, body: dict[str, Any]) -> str | None:
    """Fill the workflow and status of the tool's entity from the account (see fill_workflow)."""
    return fill_workflow(ctx, spec.name, declared_entity(spec), body)


def first_type_defaults(kind: str) -> Defaults:
    """Return the defaults that fill `record_type_name` from the account's first `kind` (see first_type)."""

    def fill(spec: ToolSpec, ctx: ToolContext, body: dict[str, Any]) -> str | None:
        return first_type(ctx, spec.name, kind, body)

    return fill


def _workflow(settings: Mapping[str, Any], object_type: str, name: str | None) -> dict[str, Any]:
    workflows = [w for w in settings.get("workflows") or [] if w.get("object_type") == object_type]
    if not workflows:
        raise ArgumentError(f"The account has no {object_type} workflow; pass 'record_type_name' and 'status_name'")
    if name is None:
        return dict(workflows[0])
    for workflow in workflows:
        if workflow.get("name") == name:
            return dict(workflow)
    known = ", ".join(repr(w.get("name")) for w in workflows)
    raise ArgumentError(
        f"Argument 'record_type_name' must be one of the account's {object_type} workflows ({known}), got {name!r}"
    )


def first_type(ctx: ToolContext, tool: str, kind: str, body: dict[str, Any]) -> str | None:
    """Fill `record_type_name` from the account's first `kind` (taskTypes, activityTypes) when left out."""
    if body.get("record_type_name"):
        return None
    settings, _ = account_settings(ctx, tool)
    types = settings.get(kind) or []
    if not types:
        raise ArgumentError(f"The account has no {kind}; pass 'record_type_name'")
    body["record_type_name"] = types[0]["name"]
    return f"Used the account's default record_type_name={types[0]['name']!r} (its first entry in {kind})."


def create_record(ctx: ToolContext, spec: ToolSpec, body: dict[str, Any]) -> dict[str, Any]:
    """Create a record of the tool's resource and invalidate what it touches; return it as JobNimbus stored it."""
    resource, api = declared_resource(spec), client(ctx)
    return write(ctx, declared_entity(spec), "created", lambda: api.create(resource, body))


def created(ctx: ToolContext, spec: ToolSpec, body: dict[str, Any], notice: str | None = None) -> ToolResult:
    """Create a record, invalidate what it touches, and answer with it (and `notice` about filled defaults)."""
    return result(write_result(create_record(ctx, spec, body), notice=notice))


def updated(ctx: ToolContext, spec: ToolSpec, args: Args, body: dict[str, Any]) -> ToolResult:
    """Change the given fields of record `args["jnid"]`, invalidate, and answer with the record."""
    if not body:
        raise ArgumentError("Pass at least one field to change besides 'jnid'")
    jnid, resource, api = args["jnid"], declared_resource(spec), client(ctx)
    record = write(ctx, declared_entity(spec), "updated", lambda: api.update(resource, jnid, body), jnid)
    return result(write_result(record))


def deleted(ctx: ToolContext, spec: ToolSpec, args: Args) -> ToolResult:
    """Delete record `args["jnid"]` (JobNimbus sets is_active false), invalidate, and answer with it."""
    jnid, resource, entity, api = args["jnid"], declared_resource(spec), declared_entity(spec), client(ctx)
    record = write(ctx, entity, "deleted", lambda: api.delete(resource, jnid), jnid)
    return result(write_result(record, notice=f"{entity} {jnid} deleted (JobNimbus keeps it with is_active false)."))
