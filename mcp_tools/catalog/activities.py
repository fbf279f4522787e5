"""Notes, tasks, the calendar and attachments: the things that hang off a contact or a job."""

from __future__ import annotations

from typing import Any

from cacheops.api import list_tag
from mcp_tools.catalog.args import jnid_schema, list_query, list_schema, to_epoch
from mcp_tools.catalog.base import ToolContext, ToolResult, ToolSpec
from mcp_tools.catalog.declare import (
    CREATE,
    DELETE,
    READ,
    UPDATE,
    detail_tool,
    list_tool,
    object_schema,
    text,
    write_tool,
)
from mcp_tools.catalog.runtime import Args, cached, client, parent_tags, result
from mcp_tools.catalog.writes import created, deleted, first_type, link, record_body, updated
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


def _create_task(ctx: ToolContext, args: Args) -> ToolResult:
    body = _task_body(args)
    notice = first_type(ctx, "create_task", "taskTypes", body)
    return created(ctx, "tasks", "task", body, notice)


def _update_task(ctx: ToolContext, args: Args) -> ToolResult:
    return updated(ctx, "tasks", "task", args, _task_body(args))


def _delete_task(ctx: ToolContext, args: Args) -> ToolResult:
    return deleted(ctx, "tasks", "task", args)


def _create_activity(ctx: ToolContext, args: Args) -> ToolResult:
    body = {"note": args["note"], "related": link(args["related_to"]), "record_type_name": args.get("record_type_name")}
    body = {k: v for k, v in body.items() if v is not None}
    notice = first_type(ctx, "create_activity", "activityTypes", body)
    return created(ctx, "activities", "activity", body, notice)


def _calendar(ctx: ToolContext, args: Args) -> ToolResult:
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
        pages = [api.list(resource, **query) for resource in ("tasks", "activities")]
        merged = sorted((r for p in pages for r in p.records), key=lambda r: r.get("date_start") or 0)
        return {"count": sum(p.count for p in pages), "records": merged}

    tags = [list_tag("task"), list_tag("activity"), *parent_tags(args.get("related_to"))]
    value, meta = cached(
        ctx,
        "get_calendar_activities",
        entity="activity",
        op="calendar",
        policy="calendar",
        args=args,
        tags=tags,
        fetch=fetch,
    )
    page = value["records"][args["from"] : args["from"] + args["size"]]
    return result(list_result(value["count"], page, args, "task"), meta)


def _calendar_schema() -> dict[str, Any]:
    schema = list_schema(date_field="date_start", required=["date_from", "date_to"])
    for name in ("sort_field", "sort_direction"):
        schema["properties"].pop(name)
    schema["properties"]["from"]["maximum"] = 100
    return schema


TASK_JNID = {"jnid": jnid_schema("The task's jnid.")}

TOOLS: list[ToolSpec] = [
    list_tool(
        "get_activities",
        "List activities (notes)",
        "List activities: notes, emails, calls, status changes. Use related_to=<job or contact jnid> for one "
        "record's history; date_from/date_to on creation date.",
        entity="activity",
        policy="activities",
        resource="activities",
    ),
    detail_tool(
        "get_activity",
        "Get an activity",
        "Return one activity (note, email, call, status change) by jnid: text, type, the records it is on.",
        entity="activity",
        policy="activities",
        resource="activities",
    ),
    write_tool(
        "create_activity",
        "Add a note",
        "Add a note to a contact or job (related_to). record_type_name defaults to the account's first activity "
        "type (normally 'Note').",
        object_schema(
            {
                "note": text("The note's text.", max_length=10000, minLength=1),
                "related_to": jnid_schema("jnid of the contact or job the note is about."),
                "record_type_name": text(
                    "Activity type (default: the account's first, normally 'Note').", max_length=100
                ),
            },
            required=["note", "related_to"],
        ),
        CREATE,
        _create_activity,
    ),
    list_tool(
        "get_tasks",
        "List tasks",
        "List tasks (to-dos, appointments). related_to=<job or contact jnid> for one record's tasks; "
        "date_from/date_to apply to date_start (when the task is scheduled).",
        entity="task",
        policy="tasks",
        resource="tasks",
        date_field="date_start",
    ),
    detail_tool(
        "get_task",
        "Get a task",
        "Return one task by jnid: title, type, schedule, priority, done or not, the records it is on.",
        entity="task",
        policy="tasks",
        resource="tasks",
    ),
    write_tool(
        "create_task",
        "Create a task",
        "Create a task, optionally on a contact or job (related_to). Needs title and date_start; "
        "record_type_name defaults to the account's first task type (the notice says which).",
        object_schema(
            {**TASK_PROPS, "related_to": jnid_schema("jnid of the contact or job the task is for.")},
            required=["title", "date_start"],
        ),
        CREATE,
        _create_task,
    ),
    write_tool(
        "update_task",
        "Update a task",
        "Change the given fields of a task, e.g. is_completed=true to close it.",
        object_schema(
            {**TASK_JNID, **TASK_PROPS, "is_completed": {"type": "boolean", "description": "Mark done / not done."}},
            required=["jnid"],
        ),
        UPDATE,
        _update_task,
    ),
    write_tool(
        "delete_task",
        "Delete a task",
        "Delete a task (JobNimbus marks it inactive).",
        object_schema(TASK_JNID, required=["jnid"]),
        DELETE,
        _delete_task,
    ),
    ToolSpec(
        "get_calendar_activities",
        "Calendar",
        CALENDAR_DOC,
        _calendar_schema(),
        LIST_OUTPUT_SCHEMA,
        READ,
        _calendar,
        "calendar",
    ),
    list_tool(
        "get_attachments",
        "List attachments",
        "List files (photos, documents, contracts) attached to a job (job_id) or contact (contact_id); file_type "
        "narrows to one file type ('Photo', 'Contract', ...; see get_account_settings fileTypes).",
        entity="file",
        policy="attachments",
        resource="files",
        extra={
            "job_id": jnid_schema("Only files on this job."),
            "contact_id": jnid_schema("Only files on this contact."),
            "file_type": text("File type name, e.g. 'Photo'.", max_length=100, minLength=1),
        },
        clauses=_attachment_clauses,
        parents=lambda args: [args.get("job_id"), args.get("contact_id")],
    ),
]
