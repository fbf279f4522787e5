"""What the server says about itself: name, version, capabilities and the instructions for the model."""

from __future__ import annotations

from typing import Any

from mcp_types import Implementation, ServerCapabilities, ToolsCapability

from mcp_tools.catalog.args import LIST_ARGS_DOC

SERVER_NAME = "jobnimbus-mcp"
SERVER_TITLE = "JobNimbus CRM (cached)"
SERVER_VERSION = "0.1.0"

INSTRUCTIONS = """\
Tools for one JobNimbus CRM account (a roofing contractor's contacts, jobs, estimates, invoices, tasks, \
notes and files). Every record is identified by its `jnid`; pass those ids between tools.
How the tools fit together:
1. Find the customer first: search_contacts (name, phone, email, address) or get_contacts; keep the contact's jnid.
2. Then its jobs: get_jobs with related_to=<contact jnid>, or search_jobs; get_job for one job's detail (its \
`include` brings related records in the same call).
3. Then a job's paperwork and history: get_attachments (job_id), get_activities (related_to=<job jnid>) for \
notes, get_tasks, get_estimates and get_invoices with related_to=<job jnid>. get_activities, get_tasks, \
get_estimates, get_invoices and get_work_orders also take jnid to read one record in full.
4. Writes (create_/update_/delete_ tools) change the CRM immediately; confirm with the user before deleting.
List tools answer {count, from, size, next_from, records}. {list_args} \
Reads are served from a cache kept fresh \
by JobNimbus webhooks; each result's _meta["jobnimbus-mcp/cache"] tells whether it came from the cache and how \
old it is.\
""".replace("{list_args}", LIST_ARGS_DOC)


def implementation() -> Implementation:
    """Return the server's name and version as the wire's `Implementation`."""
    return Implementation(name=SERVER_NAME, title=SERVER_TITLE, version=SERVER_VERSION)


def capabilities() -> ServerCapabilities:
    """Return the capabilities: tools only, and the list never changes while a client is connected."""
    return ServerCapabilities(tools=ToolsCapability(list_changed=False))


def implementation_json() -> dict[str, Any]:
    """Return `implementation()` as JSON, for the 2026-07-28 serverInfo `_meta` key."""
    return implementation().model_dump(mode="json", by_alias=True, exclude_none=True)
