"""Contact tools: list, search, detail, create, update, delete, bulk import."""

from __future__ import annotations

from typing import Any

from cacheops.api import guard_upstream
from mcp_tools.catalog.args import ArgumentError
from mcp_tools.catalog.base import Args, ToolContext, ToolResult, ToolSpec
from mcp_tools.catalog.declare import (
    CREATE,
    create_tool,
    delete_tool,
    detail_tool,
    list_tool,
    object_schema,
    search_tool,
    text,
    update_tool,
)
from mcp_tools.catalog.failures import upstream_message
from mcp_tools.catalog.runtime import client, declared_resource, drop_none, result
from mcp_tools.catalog.search import CONTACT_FIELDS, SHAPES_DOC
from mcp_tools.catalog.validation import first_error, validator_for
from mcp_tools.catalog.writes import create_record, record_body, workflow_defaults
from mcp_tools.entities import entity
from mcp_tools.jobnimbus.errors import NotFoundError, ValidationError
from mcp_tools.jobnimbus.filters import must, terms

NAME_FIELDS = ("first_name", "last_name", "display_name", "company")
# Each field is described only where its name says too little; the tools' descriptions say the rest once.
CONTACT_PROPS: dict[str, Any] = {
    "first_name": text(max_length=100),
    "last_name": text(max_length=100),
    "display_name": text(max_length=200),
    "company": text(max_length=200),
    "email": text(max_length=254),
    "mobile_phone": text(max_length=40),
    "home_phone": text(max_length=40),
    "work_phone": text(max_length=40),
    "address_line1": text(max_length=200),
    "address_line2": text(max_length=200),
    "city": text(max_length=100),
    "state_text": text(max_length=50),
    "zip": text(max_length=20),
    "description": text(max_length=4000),
    "source_name": text("A lead source of the account (get_account_settings).", max_length=100),
    "external_id": text("Your system's id for the contact.", max_length=100),
    "record_type_name": text("Contact workflow.", max_length=100),
    "status_name": text(max_length=100),
}
ROW_SCHEMA = object_schema(CONTACT_PROPS)
_ROW_VALIDATOR = validator_for(ROW_SCHEMA)  # integers as strict as tool arguments
MAX_IMPORT_ROWS = 100


def contact_record(args: Args) -> dict[str, Any]:
    """Return the create body for contact `args` (display_name made up from the names when left out)."""
    if not any(args.get(name) for name in NAME_FIELDS):
        raise ArgumentError("One of 'first_name', 'last_name', 'display_name' or 'company' is required")
    body = record_body(args)
    if "display_name" not in body:
        body["display_name"] = body.get("company") or " ".join(
            p for p in (body.get("first_name"), body.get("last_name")) if p
        )
    return body


def _bulk_import(spec: ToolSpec, ctx: ToolContext, args: Args) -> ToolResult:
    rows: list[Any] = args["rows"]
    existing = _existing_external_ids(spec, ctx, rows)
    outcomes = [_import_row(spec, ctx, i, row, existing) for i, row in enumerate(rows)]
    tally = {s: sum(1 for o in outcomes if o["status"] == s) for s in ("created", "skipped", "failed")}
    return result({**tally, "results": outcomes})


def _existing_external_ids(spec: ToolSpec, ctx: ToolContext, rows: list[Any]) -> set[str]:
    """Return which of the rows' external ids JobNimbus already has (asked fresh: imports must not trust a cache)."""
    ids = sorted({str(r["external_id"]) for r in rows if isinstance(r, dict) and r.get("external_id")})
    if not ids:
        return set()
    api, resource = client(ctx), declared_resource(spec)
    page = guard_upstream(
        ctx.instance, lambda: api.list(resource, size=len(ids), filter=must(terms("external_id", ids))), ctx.tenant
    )
    return {str(r.get("external_id")) for r in page.records}


def _import_row(spec: ToolSpec, ctx: ToolContext, index: int, row: Any, existing: set[str]) -> dict[str, Any]:
    """Create one row unless its external_id exists; a bad row is reported, never raised."""
    external_id = str(row["external_id"]) if isinstance(row, dict) and row.get("external_id") else None
    base = drop_none({"row": index, "external_id": external_id})
    problem = first_error(_ROW_VALIDATOR, row, prefix=f"rows[{index}]", remember=False)  # rows never repeat
    if problem:
        return {**base, "status": "failed", "message": problem}
    if external_id and external_id in existing:
        return {**base, "status": "skipped", "message": "A contact with this external_id already exists."}
    try:
        body = contact_record(row)
        notice = workflow_defaults(spec, ctx, body)
        record = create_record(ctx, spec, body)
    except ArgumentError as exc:
        return {**base, "status": "failed", "message": f"rows[{index}]: {exc}"}
    except (ValidationError, NotFoundError) as exc:
        # Only the row's own fault is per row; a refused key or an outage stops the import (retrying is safe).
        return {**base, "status": "failed", "message": f"rows[{index}]: {upstream_message(exc)}"}
    if external_id:
        existing.add(external_id)  # a repeated external_id later in the same batch is a duplicate too
    return drop_none({**base, "status": "created", "jnid": record.get("jnid"), "notice": notice})


# The one output schema beside the list envelope: a program reading an import needs the per-row outcome.
IMPORT_OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "created": {"type": "integer"},
        "skipped": {"type": "integer"},
        "failed": {"type": "integer"},
        "results": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "row": {"type": "integer"},
                    "status": {"type": "string", "enum": ["created", "skipped", "failed"]},
                },
                "required": ["row", "status"],
            },
        },
    },
    "required": ["created", "skipped", "failed", "results"],
}

_CONTACT = entity("contact")

TOOLS: list[ToolSpec] = [
    list_tool(
        name="get_contacts",
        title="List contacts",
        description="List contacts (customers, leads, vendors), newest first. A contact's jnid is what get_contact "
        "and get_jobs(related_to=...) take.",
        entity="contact",
    ),
    search_tool(
        name="search_contacts",
        title="Search contacts",
        description="Find contacts by name, email, phone, number or street address. " + SHAPES_DOC,
        entity="contact",
        fields=CONTACT_FIELDS,
    ),
    detail_tool(
        name="get_contact",
        title="Get a contact",
        description="Return one contact by jnid: name, email, phones, address, workflow status, sales rep.",
        entity="contact",
    ),
    create_tool(
        name="create_contact",
        title="Create a contact",
        description="Create a contact; give first_name, last_name, display_name (default: first + last) or company. "
        "record_type_name/status_name default to the account's first contact workflow and its first status (the "
        "answer's notice says which).",
        entity="contact",
        schema=object_schema(CONTACT_PROPS),
        body=contact_record,
        defaults=workflow_defaults,
    ),
    update_tool(
        name="update_contact",
        title="Update a contact",
        description="Change the given fields of a contact (create_contact's); fields not passed stay as they are.",
        entity="contact",
        properties=CONTACT_PROPS,
        body=record_body,
    ),
    delete_tool(
        name="delete_contact",
        title="Delete a contact",
        description="Delete a contact (JobNimbus marks it inactive; it disappears from lists).",
        entity="contact",
    ),
    ToolSpec(
        name="bulk_import_contacts",
        title="Import contacts in bulk",
        description=f"Create up to {MAX_IMPORT_ROWS} contacts, each row an object of create_contact's arguments; "
        "answers per row (created with its jnid, skipped, or failed and why), a bad row failing alone. A row whose "
        "external_id JobNimbus has is skipped: give each row one and a retried import creates no duplicates.",
        input_schema=object_schema(
            {
                # Each row is checked on its own (ROW_SCHEMA), so a row with a bad field fails alone; the schema
                # says only that rows are objects.
                "rows": {"type": "array", "minItems": 1, "maxItems": MAX_IMPORT_ROWS, "items": {"type": "object"}}
            },
            required=["rows"],
        ),
        output_schema=IMPORT_OUTPUT_SCHEMA,
        annotations={**CREATE, "idempotentHint": True},
        handler=_bulk_import,
        entity=_CONTACT.name,
        resource=_CONTACT.resource,
    ),
]
