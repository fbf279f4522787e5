"""Notes, tasks, the calendar and attachments: the things that hang off a contact or a job."""

from __future__ import annotations

from typing import Any

from cacheops.api import list_tag
from mcp_tools.catalog.args import jnid_schema, list_query, list_schema, to_epoch
from mcp_tools.catalog.base import Args, ToolContext, ToolResult, ToolSpec
from mcp_tools.catalog.declare import (
    READ,
    create_tool,
    delete_tool,
    detail_tool,
    list_tool,
    object_schema,
    text,
    update_tool,
)
from mcp_tools.catalog.runtime import client, parent_tags, read, result
from mcp_tools.catalog.writes import first_type_defaults, link, record_body
from mcp_tools.entities import entity
from mcp_tools.jobnimbus.filters import Clause, term
from mcp_tools.shaping import LIST_OUTPUT_SCHEMA, list_result

DATE = {"type": ["string", "integer"], "minimum": 0, "maxLength": 40}
TASK_PROPS: dict[str, Any] = {
    "title": text("What to do, e.g. 'Inspect roof'.", max_length=200, minLength=1),
    "description": text("Details.", max_length=4000),
    "date_start": {**DATE, "description": "When it starts or is due (ISO date/datetime or unix seconds)."},
    "date_end": {**DATE, "description": "When it ends (ISO date/datetime or unix seconds)."},
    "priority": {"type": "integer", "minimum": 0, "maximum": 3, "description": "0 (none) to 3 (high)."},
    "record_type_name": text("Task type, e.g. 'Inspection' (default: the account's first task type).", max_length=100),
}
CALENDAR_DOC = (
    "List what is scheduled in a date window: tasks AND activities whose date_start falls between date_from and "
    "date_to, merged and sorted by date_start (earliest first). Each record has 'type' task or activity. "
    "count is the total of both kinds."
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
        description="List activities: notes, emails, calls, status changes. Use related_to=<job or contact jnid> for "
        "one record's history; date_from/date_to on creation date.",
        entity="activity",
    ),
    detail_tool(
        name="get_activity",
        title="Get an activity",
        description="Return one activity (note, email, call, status change) by jnid: text, type, the records it is on.",
        entity="activity",
    ),
    create_tool(
        name="create_activity",
        title="Add a note",
        description="Add a note to a contact or job (related_to). record_type_name defaults to the account's first "
        "activity type (normally 'Note').",
        entity="activity",
        schema=object_schema(
            {
                "note": text("The note's text.", max_length=10000, minLength=1),
                "related_to": jnid_schema("jnid of the contact or job the note is about."),
                "record_type_name": text(
                    "Activity type (default: the account's first, normally 'Note').", max_length=100
                ),
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
        "date_from/date_to apply to date_start (when the task is scheduled).",
        entity="task",
        date_field="date_start",
    ),
    detail_tool(
        name="get_task",
        title="Get a task",
        description="Return one task by jnid: title, type, schedule, priority, done or not, the records it is on.",
        entity="task",
    ),
    create_tool(
        name="create_task",
        title="Create a task",
        description="Create a task, optionally on a contact or job (related_to). Needs title and date_start; "
        "record_type_name defaults to the account's first task type (the notice says which).",
        entity="task",
        schema=object_schema(
            {**TASK_PROPS, "related_to": jnid_schema("jnid of the contact or job the task is for.")},
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
        properties={**TASK_PROPS, "is_completed": {"type": "boolean", "description": "Mark done / not done."}},
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
        output_schema=LIST_OUTPUT_SCHEMA,
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
            "job_id": jnid_schema("Only files on this job."),
            "contact_id": jnid_schema("Only files on this contact."),
            "file_type": text("File type name, e.g. 'Photo'.", max_length=100, minLength=1),
        },
        clauses=_attachment_clauses,
        parents=lambda args: [args.get("job_id"), args.get("contact_id")],
    ),
]
