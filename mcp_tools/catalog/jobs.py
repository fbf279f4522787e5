"""Job tools: list, search, detail, create, update, delete."""

from __future__ import annotations

from typing import Any

from mcp_tools.catalog.args import date_schema, jnid_schema, to_epoch
from mcp_tools.catalog.base import Args, ToolSpec
from mcp_tools.catalog.declare import (
    create_tool,
    delete_tool,
    detail_tool,
    list_tool,
    object_schema,
    search_tool,
    text,
    update_tool,
)
from mcp_tools.catalog.search import JOB_FIELDS, JOB_SHAPES_DOC
from mcp_tools.catalog.writes import link, record_body, workflow_defaults

# Each field is described only where its name says too little; the tools' descriptions say the rest once.
JOB_PROPS: dict[str, Any] = {
    "name": text("e.g. 'Smith - Roof Replacement'.", max_length=200, minLength=1),
    "description": text(max_length=4000),
    "primary_contact_id": jnid_schema("The customer contact's jnid."),
    "address_line1": text("Job site street address.", max_length=200),
    "city": text(max_length=100),
    "state_text": text(max_length=50),
    "zip": text(max_length=20),
    "date_start": date_schema("Planned start."),
    "date_end": date_schema("Planned end."),
    "source_name": text("A lead source of the account.", max_length=100),
    "external_id": text("Your system's id for the job.", max_length=100),
    "record_type_name": text("Job workflow, e.g. 'Retail'.", max_length=100),
    "status_name": text(max_length=100),
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


TOOLS: list[ToolSpec] = [
    list_tool(
        name="get_jobs",
        title="List jobs",
        description="List jobs (roofing projects), newest first: related_to=<contact jnid> for a customer's jobs, "
        "status for a pipeline stage ('Lead', 'Production', ...). get_job reads one job and what hangs off it.",
        entity="job",
    ),
    search_tool(
        name="search_jobs",
        title="Search jobs",
        description="Find jobs by name, number or street address. " + JOB_SHAPES_DOC,
        entity="job",
        fields=JOB_FIELDS,
    ),
    detail_tool(
        name="get_job",
        title="Get a job",
        description="Return one job by jnid: name, workflow status, address, dates, totals, its customer (primary).",
        entity="job",
    ),
    create_tool(
        name="create_job",
        title="Create a job",
        description="Create a job, usually for a customer (primary_contact_id). record_type_name/status_name default "
        "to the account's first job workflow and its first status (the answer's notice says which).",
        entity="job",
        schema=object_schema(JOB_PROPS, required=["name"]),
        body=job_body,
        defaults=workflow_defaults,
    ),
    update_tool(
        name="update_job",
        title="Update a job",
        description="Change the given fields of a job (create_job's), e.g. status_name to move it along the "
        "pipeline; others stay.",
        entity="job",
        properties=JOB_PROPS,
        body=job_body,
    ),
    delete_tool(
        name="delete_job",
        title="Delete a job",
        description="Delete a job (JobNimbus marks it inactive; it disappears from lists).",
        entity="job",
    ),
]
