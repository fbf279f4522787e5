"""Contact tools: list, search, detail, create, update, delete, bulk import."""

from __future__ import annotations

from typing import Any

from cacheops.api import guard_upstream
from mcp_tools.catalog.args import ArgumentError, jnid_schema, list_schema
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
from mcp_tools.catalog.failures import upstream_message
from mcp_tools.catalog.runtime import Args, client, drop_none, list_records, result, write
from mcp_tools.catalog.search import CONTACT_FIELDS, SHAPES_DOC, search_clause
from mcp_tools.catalog.validation import first_error, validator_for
from mcp_tools.catalog.writes import created, deleted, fill_workflow, record_body, updated
from mcp_tools.jobnimbus.errors import NotFoundError, ValidationError
from mcp_tools.jobnimbus.filters import must, terms
from mcp_tools.shaping import LIST_OUTPUT_SCHEMA

NAME_FIELDS = ("first_name", "last_name", "display_name", "company")
CONTACT_PROPS: dict[str, Any] = {
    "first_name": text("First name.", max_length=100),
    "last_name": text("Last name.", max_length=100),
    "display_name": text("Name shown in JobNimbus (defaults to first + last).", max_length=200),
    "company": text("Company name.", max_length=200),
    "email": text("Email address.", max_length=254),
    "mobile_phone": text("Mobile phone.", max_length=40),
    "home_phone": text("Home phone.", max_length=40),
    "work_phone": text("Work phone.", max_length=40),
    "address_line1": text("Street address.", max_length=200),
    "address_line2": text("Address line 2.", max_length=200),
    "city": text("City.", max_length=100),
    "state_text": text("State, e.g. 'GA'.", max_length=50),
    "zip": text("ZIP / postal code.", max_length=20),
    "description": text("Free-text description.", max_length=4000),
    "source_name": text("Lead source, one of the account's sources (get_account_settings).", max_length=100),
    "external_id": text("Your system's id for this contact (used to skip duplicates on import).", max_length=100),
    "record_type_name": text("Contact workflow, e.g. 'Customer' (default: the account's first).", max_length=100),
    "status_name": text("Status in that workflow, e.g. 'Lead' (default: the workflow's first).", max_length=100),
}
ROW_SCHEMA = object_schema(CONTACT_PROPS)
_ROW_VALIDATOR = validator_for(ROW_SCHEMA)  # integers as strict as tool arguments
MAX_IMPORT_ROWS = 100


def contact_body(ctx: ToolContext, tool: str, args: Args) -> tuple[dict[str, Any], str | None]:
    """Return the create body for contact `args` and the notice about filled-in workflow defaults."""
    if not any(args.get(name) for name in NAME_FIELDS):
        raise ArgumentError("One of 'first_name', 'last_name', 'display_name' or 'company' is required")
    body = record_body(args)
    if "display_name" not in body:
        body["display_name"] = body.get("company") or " ".join(
            p for p in (body.get("first_name"), body.get("last_name")) if p
        )
    return body, fill_workflow(ctx, tool, "contact", body)


def _create_contact(ctx: ToolContext, args: Args) -> ToolResult:
    body, notice = contact_body(ctx, "create_contact", args)
    return created(ctx, "contacts", "contact", body, notice)


def _update_contact(ctx: ToolContext, args: Args) -> ToolResult:
    return updated(ctx, "contacts", "contact", args, record_body(args))


def _delete_contact(ctx: ToolContext, args: Args) -> ToolResult:
    return deleted(ctx, "contacts", "contact", args)


def _search_contacts(ctx: ToolContext, args: Args) -> ToolResult:
    clause = search_clause(args["query"], CONTACT_FIELDS)
    return list_records(
        ctx,
        "search_contacts",
        args,
        entity="contact",
        policy="contact_search",
        resource="contacts",
        clauses=[clause],
        op="search",
    )


def _bulk_import(ctx: ToolContext, args: Args) -> ToolResult:
    rows: list[Any] = args["rows"]
    existing = _existing_external_ids(ctx, rows)
    outcomes = [_import_row(ctx, i, row, existing) for i, row in enumerate(rows)]
    tally = {s: sum(1 for o in outcomes if o["status"] == s) for s in ("created", "skipped", "failed")}
    return result({**tally, "results": outcomes})


def _existing_external_ids(ctx: ToolContext, rows: list[Any]) -> set[str]:
    """Return which of the rows' external ids JobNimbus already has (asked fresh: imports must not trust a cache)."""
    ids = sorted({str(r["external_id"]) for r in rows if isinstance(r, dict) and r.get("external_id")})
    if not ids:
        return set()
    api = client(ctx)
    page = guard_upstream(
        ctx.instance, lambda: api.list("contacts", size=len(ids), filter=must(terms("external_id", ids))), ctx.tenant
    )
    return {str(r.get("external_id")) for r in page.records}


def _import_row(ctx: ToolContext, index: int, row: Any, existing: set[str]) -> dict[str, Any]:
    """Create one row unless its external_id exists; a bad row is reported, never raised."""
    external_id = str(row["external_id"]) if isinstance(row, dict) and row.get("external_id") else None
    base = drop_none({"row": index, "external_id": external_id})
    problem = first_error(_ROW_VALIDATOR, row, prefix=f"rows[{index}]", remember=False)  # rows never repeat
    if problem:
        return {**base, "status": "failed", "message": problem}
    if external_id and external_id in existing:
        return {**base, "status": "skipped", "message": "A contact with this external_id already exists."}
    try:
        body, notice = contact_body(ctx, "bulk_import_contacts", row)
        api = client(ctx)
        record = write(ctx, "contact", "created", lambda: api.create("contacts", body))
    except ArgumentError as exc:
        return {**base, "status": "failed", "message": f"rows[{index}]: {exc}"}
    except (ValidationError, NotFoundError) as exc:
        # Only the row's own fault is per row; a refused key or an outage stops the import (retrying is safe).
        return {**base, "status": "failed", "message": f"rows[{index}]: {upstream_message(exc)}"}
    if external_id:
        existing.add(external_id)  # a repeated external_id later in the same batch is a duplicate too
    return drop_none({**base, "status": "created", "jnid": record.get("jnid"), "notice": notice})


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
                    "jnid": {"type": "string"},
                    "external_id": {"type": "string"},
                    "message": {"type": "string"},
                    "notice": {"type": "string"},
                },
                "required": ["row", "status"],
            },
        },
    },
    "required": ["created", "skipped", "failed", "results"],
}

JNID = {"jnid": jnid_schema("The contact's jnid.")}

TOOLS: list[ToolSpec] = [
    list_tool(
        "get_contacts",
        "List contacts",
        "List contacts (customers, leads, vendors), newest first. Filter by status, creation date window or "
        "related_to; page with from/size. Each record's jnid is what get_contact, get_jobs(related_to=...) take.",
        entity="contact",
        policy="contacts",
        resource="contacts",
    ),
    ToolSpec(
        "search_contacts",
        "Search contacts",
        "Find contacts by name, email, phone, number or street address. " + SHAPES_DOC,
        list_schema(extra={"query": text("What to look for.", max_length=200, minLength=1)}, required=["query"]),
        LIST_OUTPUT_SCHEMA,
        READ,
        _search_contacts,
        "contact_search",
    ),
    detail_tool(
        "get_contact",
        "Get a contact",
        "Return one contact by jnid: name, email, phones, address, workflow status, sales rep.",
        entity="contact",
        policy="contact_detail",
        resource="contacts",
    ),
    write_tool(
        "create_contact",
        "Create a contact",
        "Create a contact. Give at least one of first_name, last_name, display_name or company. Without "
        "record_type_name/status_name the account's first contact workflow and its first status are used "
        "(the result's notice says which).",
        object_schema(CONTACT_PROPS),
        CREATE,
        _create_contact,
    ),
    write_tool(
        "update_contact",
        "Update a contact",
        "Change the given fields of a contact; fields not passed are left as they are.",
        object_schema({**JNID, **CONTACT_PROPS}, required=["jnid"]),
        UPDATE,
        _update_contact,
    ),
    write_tool(
        "delete_contact",
        "Delete a contact",
        "Delete a contact (JobNimbus marks it inactive; it disappears from lists).",
        object_schema(JNID, required=["jnid"]),
        DELETE,
        _delete_contact,
    ),
    ToolSpec(
        "bulk_import_contacts",
        "Import contacts in bulk",
        f"Create up to {MAX_IMPORT_ROWS} contacts in one call, each row shaped like create_contact's arguments. "
        "Returns a result per row (created with its jnid, skipped, or failed with the reason); a bad row does not "
        "stop the others. Rows whose external_id already exists in JobNimbus are skipped, so give every row an "
        "external_id and a retried import creates no duplicates.",
        object_schema(
            {
                "rows": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_IMPORT_ROWS,
                    "items": {"description": "One contact; a row that is not valid fails alone."},
                    "description": "The contacts to create (create_contact's fields, plus external_id).",
                }
            },
            required=["rows"],
        ),
        IMPORT_OUTPUT_SCHEMA,
        {**CREATE, "idempotentHint": True},
        _bulk_import,
        None,
    ),
]
