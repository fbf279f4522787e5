"""Job tools: list, search, detail, create, update, delete."""

from __future__ import annotations

from typing import Any

from mcp_tools.catalog.args import jnid_schema, list_schema, to_epoch
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
from mcp_tools.catalog.runtime import Args, list_records
from mcp_tools.catalog.search import JOB_FIELDS, JOB_SHAPES_DOC, search_clause
from mcp_tools.catalog.writes import created, deleted, fill_workflow, link, record_body, updated
from mcp_tools.shaping import LIST_OUTPUT_SCHEMA

DATE = {"type": ["string", "integer"], "minimum": 0, "maxLength": 40}
JOB_PROPS: dict[str, Any] = {
    "name": text("Job name, e.g. 'Smith - Roof Replacement'.", max_length=200, minLength=1),
    "description": text("Free-text description.", max_length=4000),
    "primary_contact_id": jnid_schema("jnid of the customer contact this job is for."),
    "address_line1": text("Street address of the job site.", max_length=200),
    "city": text("City.", max_length=100),
    "state_text": text("State, e.g. 'GA'.", max_length=50),
    "zip": text("ZIP / postal code.", max_length=20),
    "date_start": {**DATE, "description": "Planned start (ISO date/datetime or unix seconds)."},
    "date_end": {**DATE, "description": "Planned end (ISO date/datetime or unix seconds)."},
    "source_name": text("Lead source, one of the account's sources.", max_length=100),
    "external_id": text("Your system's id for this job.", max_length=100),
    "record_type_name": text(
        "Job workflow, e.g. 'Retail' (default: the account's first job workflow).", max_length=100
    ),
    "status_name": text("Status in that workflow, e.g. 'Lead' (default: the workflow's first).", max_length=100),
}


def job_body(args: Args) -> dict[str, Any]:
    """Return the JobNimbus body for job arguments (contact link and dates translated)."""
    body = record_body(args)
    contact = body.pop("primary_contact_id", None)
    if contact:
        body["primary"], body["related"] = {"id": contact}, link(contact)
    for name in ("date_start", "date_end"):
        if name in body:
            body[name] = to_epoch(args, name, end_of_day=name == "date_end")
    return body


def _create_job(ctx: ToolContext, args: Args) -> ToolResult:
    body = job_body(args)
    notice = fill_workflow(ctx, "create_job", "job", body)
    return created(ctx, "jobs", "job", body, notice)


def _update_job(ctx: ToolContext, args: Args) -> ToolResult:
    return updated(ctx, "jobs", "job", args, job_body(args))


def _delete_job(ctx: ToolContext, args: Args) -> ToolResult:
    return deleted(ctx, "jobs", "job", args)


def _search_jobs(ctx: ToolContext, args: Args) -> ToolResult:
    clause = search_clause(args["query"], JOB_FIELDS)
    return list_records(
        ctx, "search_jobs", args, entity="job", policy="job_search", resource="jobs", clauses=[clause], op="search"
    )


JNID = {"jnid": jnid_schema("The job's jnid.")}

TOOLS: list[ToolSpec] = [
    list_tool(
        "get_jobs",
        "List jobs",
        "List jobs (roofing projects), newest first. Use related_to=<contact jnid> for a customer's jobs, status "
        "for a pipeline stage ('Lead', 'Production', ...; see get_account_settings), date_from/date_to on creation "
        "date. Then use get_job, get_attachments(job_id=...), get_activities(related_to=...).",
        entity="job",
        policy="jobs",
        resource="jobs",
    ),
    ToolSpec(
        "search_jobs",
        "Search jobs",
        "Find jobs by name, number or street address. " + JOB_SHAPES_DOC,
        list_schema(extra={"query": text("What to look for.", max_length=200, minLength=1)}, required=["query"]),
        LIST_OUTPUT_SCHEMA,
        READ,
        _search_jobs,
        "job_search",
    ),
    detail_tool(
        "get_job",
        "Get a job",
        "Return one job by jnid: name, workflow status, address, dates, totals, its customer (primary).",
        entity="job",
        policy="job_detail",
        resource="jobs",
    ),
    write_tool(
        "create_job",
        "Create a job",
        "Create a job, usually for a customer (primary_contact_id). Without record_type_name/status_name the "
        "account's first job workflow and its first status are used (the result's notice says which).",
        object_schema(JOB_PROPS, required=["name"]),
        CREATE,
        _create_job,
    ),
    write_tool(
        "update_job",
        "Update a job",
        "Change the given fields of a job (e.g. status_name to move it along the pipeline); others stay.",
        object_schema({**JNID, **JOB_PROPS}, required=["jnid"]),
        UPDATE,
        _update_job,
    ),
    write_tool(
        "delete_job",
        "Delete a job",
        "Delete a job (JobNimbus marks it inactive; it disappears from lists).",
        object_schema(JNID, required=["jnid"]),
        DELETE,
        _delete_job,
    ),
]
