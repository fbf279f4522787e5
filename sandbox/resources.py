"""The JobNimbus resources the sandbox serves: one declaration per resource drives routing, envelopes and writes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Resource:
    """One JobNimbus resource: where it lives under /api1 and what a create needs."""

    name: str  # store key
    type: str  # the records' `type` and the webhook `type`
    path: str  # list path under /api1; one record at path/{jnid}
    envelope: str = "results"
    get_one: bool = True
    writable: bool = True  # POST creates
    updatable: bool = True  # PUT updates (and deletes with is_active false)
    required: tuple[str, ...] = ()
    workflow: str | None = None  # settings object_type that record_type_name/status_name must name
    parent_counter: str | None = None  # counter on a related contact/job bumped when one is created
    aliases: tuple[str, ...] = ()  # legacy list-only paths


RESOURCES: tuple[Resource, ...] = (
    Resource("contacts", "contact", "/contacts", required=("record_type_name", "status_name"), workflow="contact"),
    Resource("jobs", "job", "/jobs", required=("name", "record_type_name", "status_name"), workflow="job"),
    Resource("activities", "activity", "/activities", envelope="activity", required=("note", "related")),
    Resource(
        "tasks", "task", "/tasks", required=("title", "date_start", "record_type_name"), parent_counter="task_count"
    ),
    Resource(
        "files",
        "attachment",
        "/files",
        envelope="files",
        get_one=False,
        updatable=False,
        required=("filename", "data", "related"),
        parent_counter="attachment_count",
    ),
    Resource("estimates", "estimate", "/v2/estimates", required=("related",), aliases=("/estimates",)),
    Resource("invoices", "invoice", "/v2/invoices", required=("related",)),
    Resource(
        "workorders",
        "workorder",
        "/v2/workorders",
        required=("record_type_name", "status_name", "related"),
        workflow="workorder",
    ),
    Resource("materialorders", "materialorder", "/v2/materialorders", required=("related",)),
    Resource("products", "product", "/v2/products", writable=False, updatable=False),
    Resource("payments", "payment", "/payments", get_one=False, writable=False, updatable=False),
    Resource("budgets", "budget", "/budgets", get_one=False, writable=False, updatable=False),
)
BY_NAME = {r.name: r for r in RESOURCES}
CONTACT_NAMES = ("first_name", "last_name", "display_name", "company")
READ_ONLY = ("jnid", "recid", "type", "customer", "date_created", "created_by")


def resolve(path: str) -> tuple[Resource, str | None, str] | None:
    """Return (resource, jnid or None, templated path) for a path under /api1, or None if unknown."""
    for res in RESOURCES:
        if path == res.path or path in res.aliases:
            return res, None, path
        if path.startswith(res.path + "/"):
            jnid = path[len(res.path) + 1 :]
            if jnid and "/" not in jnid:
                return res, jnid, f"{res.path}/{{jnid}}"
    return None
