"""Notes, tasks, the calendar and attachments: the things that hang off a contact or a job."""

from __future__ import annotations

from typing import Any

from cacheops.api import list_tag
from mcp_tools.catalog.args import date_schema, jnid_schema, list_query, list_schema, to_epoch
from mcp_tools.catalog.base import Args, ToolContext, ToolResult, ToolSpec
from mcp_tools.catalog.declare import (
    READ,
    create_tool,
    delete_tool,
    list_tool,
    object_schema,
    text,
    update_tool,
)
from mcp_tools.catalog.runtime import client, parent_tags, read, result
from mcp_tools.catalog.writes import first_type_defaults, link, record_body
from mcp_tools.entities import entity
from mcp_tools.jobnimbus.filters import Clause, term
from mcp_tools.shaping import list_result

# Each field is described only where its name says too little; the tools' descriptions say the rest once.
TASK_PROPS: dict[str, Any] = {
    "title": text("e.g. 'Inspect roof'.", max_length=200, minLength=1),
    "description": text(max_length=4000),
    "date_start": date_schema("When it starts or is due."),
    "date_end": date_schema(),
    "priority": {"type": "integer", "minimum": 0, "maximum": 3, "description": "0 (none) to 3 (high)."},
    "record_type_name": text("Task type, e.g. 'Inspection'.", max_length=100),
}
CALENDAR_DOC = (
    "List what is scheduled in a date window: tasks AND activities whose date_start falls between date_from and "
    "date_to, merged and sorted by date_start (earliest first). Each record's type is task or activity; count "
    "totals both."
)


def _attachment_clauses(args: Args) -> list[Clause]:
    clauses = [term("related.id", args[k]) for k in ("job_id", "contact_id") if args.get(k)]
    if args.get("file_type"):
        clauses.append(term("record_type_name", args["file_type"]))
    return clauses


def _task_body(args: Args) -> dict[str, Any]:
    body = record_body(args, {"related_to": "related"})
    if "related" in body:
        body["related"] = link(body["related"])
    for name in ("date_start", "date_end"):
        if name in body:
            body[name] = to_epoch(args, name, end_of_day=name == "date_end")
    return body


def _activity_body(args: Args) -> dict[str, Any]:
    body = {"note": args["note"], "related": link(args["related_to"]), "record_type_name": args.get("record_type_name")}
    return {k: v for k, v in body.items() if v is not None}


# The calendar merges two resources into one entry: each kind's list, read with the caller's window.
_CALENDAR_KINDS = (entity("task"), entity("activity"))


def _calendar(spec: ToolSpec, ctx: ToolContext, args: Args) -> ToolResult:
    """Merge tasks and activities in the window: each kind fetched from 0 to from+size, then sliced."""
    window = {
        **args,
        "from": 0,
        "size": min(args["from"] + args["size"], 200),
        "sort_field": "date_start",
        "sort_direction": "asc",
    }
    query = list_query(window, date_field="date_start")
    api = client(ctx)

    def fetch() -> dict[str, Any]:
        pages = [api.list(str(kind.resource), **query) for kind in _CALENDAR_KINDS]
        merged = sorted((r for p in pages for r in p.records), key=lambda r: r.get("date_start") or 0)
        return {"count": sum(p.count for p in pages), "records": merged}

    tags = [*(list_tag(kind.name) for kind in _CALENDAR_KINDS), *parent_tags(args.get("related_to"))]
    value, meta = read(ctx, spec, op="calendar", args=args, tags=tags, fetch=fetch)
    page = value["records"][args["from"] : args["from"] + args["size"]]
    return result(list_result(value["count"], page, args, "task"), meta)


def _calendar_schema() -> dict[str, Any]:
    schema = list_schema(date_field="date_start", required=["date_from", "date_to"])
    for name in ("sort_field", "sort_direction"):
        schema["properties"].pop(name)
    schema["properties"]["from"]["maximum"] = 100
    return schema


TOOLS: list[ToolSpec] = [
    list_tool(
        name="get_activities",
        title="List activities (notes)",
        description="List activities: notes, emails, calls, status changes. related_to=<job or contact jnid> for "
        "one record's history; jnid for one activity in full.",
        entity="activity",
        by_jnid=True,
    ),
    create_tool(
        name="create_activity",
        title="Add a note",
        description="Add a note to a contact or job (related_to). record_type_name defaults to the account's first "
        "activity type (normally 'Note').",
        entity="activity",
        schema=object_schema(
            {
                "note": text(max_length=10000, minLength=1),
                "related_to": jnid_schema("The contact's or job's jnid."),
                "record_type_name": text("Activity type.", max_length=100),
            },
            required=["note", "related_to"],
        ),
        body=_activity_body,
        defaults=first_type_defaults("activityTypes"),
    ),
    list_tool(
        name="get_tasks",
        title="List tasks",
        description="List tasks (to-dos, appointments). related_to=<job or contact jnid> for one record's tasks; "
        "date_from/date_to filter date_start (when the task is scheduled); jnid for one task in full.",
        entity="task",
        date_field="date_start",
        by_jnid=True,
    ),
    create_tool(
        name="create_task",
        title="Create a task",
        description="Create a task, optionally on a contact or job (related_to). record_type_name defaults to the "
        "account's first task type (the notice says which).",
        entity="task",
        schema=object_schema(
            {**TASK_PROPS, "related_to": jnid_schema("The contact's or job's jnid.")},
            required=["title", "date_start"],
        ),
        body=_task_body,
        defaults=first_type_defaults("taskTypes"),
    ),
    update_tool(
        name="update_task",
        title="Update a task",
        description="Change the given fields of a task, e.g. is_completed=true to close it.",
        entity="task",
        properties={**TASK_PROPS, "is_completed": {"type": "boolean"}},
        body=_task_body,
    ),
    delete_tool(
        name="delete_task",
        title="Delete a task",
        description="Delete a task (JobNimbus marks it inactive).",
        entity="task",
    ),
    ToolSpec(
        name="get_calendar_activities",
        title="Calendar",
        description=CALENDAR_DOC,
        input_schema=_calendar_schema(),
        output_schema=None,
        annotations=READ,
        handler=_calendar,
        # One entry for both kinds, keyed as activity; tasks' changes reach it through its list:task tag.
        policy="calendar",
        entity="activity",
    ),
    list_tool(
        name="get_attachments",
        title="List attachments",
        description="List files (photos, documents, contracts) attached to a job (job_id) or contact (contact_id); "
        "file_type narrows to one file type ('Photo', 'Contract', ...; see get_account_settings fileTypes).",
        entity="file",
        extra={
            "job_id": jnid_schema(),
            "contact_id": jnid_schema(),
            "file_type": text(max_length=100, minLength=1),
        },
        clauses=_attachment_clauses,
        parents=lambda args: [args.get("job_id"), args.get("contact_id")],
    ),
]
