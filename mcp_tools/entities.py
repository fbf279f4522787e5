"""The JobNimbus record types this server knows: ONE row per entity, the one place to add one.

Everything in mcp_tools that varies by entity derives from this table: the client's resource table
(`jobnimbus.resources.RESOURCES`), the types change polling lists (`change_source.POLLED_RESOURCES`), the compact
projections (`shaping.COMPACT_FIELDS`), and the cache policy and resource every tool builder (`catalog.declare`)
puts on its declaration. A leaf module (it imports nothing of the project), so the client may read it too.

The cache engine keeps its own declarations of an entity (invalidation rules, policies, the tuner's policy →
entity map) because cacheops may not import mcp_tools; a new row's policy names must exist there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Operation = Literal["list", "get", "create", "update"]
# Payments are created on the api2 host path; every other path is under the configured base.
ApiRoot = Literal["api1", "api2"]
ReadKind = Literal["list", "get", "search"]

CRUD: tuple[Operation, ...] = ("list", "get", "create", "update")
COMMON_FIELDS = ("date_created", "date_updated", "primary", "sales_rep_name", "external_id")
ADDRESS_FIELDS = ("address_line1", "city", "state_text", "zip")


@dataclass(frozen=True, kw_only=True)
class EntityRow:
    """One JobNimbus record type.

    `name` is the singular the cache engine uses (`job`), `resource` the plural the client is called with (`jobs`;
    None for types read through an account endpoint or not at all), `record_type` the `type` JobNimbus puts on its
    records when it differs from `name` (`attachment` for files). `path` is the collection path: a record is at
    `{path}/{jnid}`; `operations` are the endpoints JobNimbus has there. `policy` is the cache policy of the
    type's lists (None: never cached), `detail_policy`/`search_policy` those of its detail and search reads when
    they differ. `compact_fields` is what a model usually needs of a record on top of the summary fields (empty:
    the common ones). `polled` says whether change polling lists it: every record it lists has a `date_updated`.
    """

    name: str
    policy: str | None
    resource: str | None = None
    record_type: str | None = None
    path: str | None = None
    operations: tuple[Operation, ...] = ()
    envelope: str = "results"
    create_path: str | None = None
    create_root: ApiRoot = "api1"
    detail_policy: str | None = None
    search_policy: str | None = None
    compact_fields: tuple[str, ...] = ()
    polled: bool = False

    def cache_policy(self, read: ReadKind = "list") -> str:
        """Return the cache policy of a `read` of this type (the list policy unless the type has its own)."""
        own = {"list": self.policy, "get": self.detail_policy, "search": self.search_policy}[read]
        policy = own or self.policy
        if policy is None:
            raise LookupError(f"entity {self.name!r} is never cached: it has no cache policy")
        return policy

    @property
    def readable_by_id(self) -> bool:
        """Tell whether one record can be read by its jnid through the cache (a get endpoint and a policy)."""
        return "get" in self.operations and self.policy is not None and self.resource is not None


def _resource(name: str, resource: str, path: str, policy: str | None, **columns: Any) -> EntityRow:
    """Return the row of a type with a resource of its own: the four endpoints and polled, unless it says otherwise."""
    return EntityRow(
        name=name, resource=resource, path=path, policy=policy, **{"operations": CRUD, "polled": True, **columns}
    )


ENTITIES: tuple[EntityRow, ...] = (
    _resource(
        "contact",
        "contacts",
        "/contacts",
        "contacts",
        detail_policy="contact_detail",
        search_policy="contact_search",
        compact_fields=(
            *COMMON_FIELDS,
            *ADDRESS_FIELDS,
            "first_name",
            "last_name",
            "company",
            "email",
            "mobile_phone",
            "home_phone",
            "work_phone",
            "source_name",
        ),
    ),
    _resource(
        "job",
        "jobs",
        "/jobs",
        "jobs",
        detail_policy="job_detail",
        search_policy="job_search",
        compact_fields=(
            *COMMON_FIELDS,
            *ADDRESS_FIELDS,
            "description",
            "date_start",
            "date_end",
            "approved_estimate_total",
            "approved_invoice_total",
            "source_name",
        ),
    ),
    _resource(
        "activity",
        "activities",
        "/activities",
        "activities",
        envelope="activity",
        compact_fields=(*COMMON_FIELDS, "note", "is_status_change", "related", "created_by_name"),
    ),
    _resource(
        "task",
        "tasks",
        "/tasks",
        "tasks",
        compact_fields=(*COMMON_FIELDS, "priority", "date_start", "date_end", "is_completed", "related"),
    ),
    # GET /files/{jnid} is a 302 to a signed download URL, not JSON; POST /files is deprecated but works.
    _resource(
        "file",
        "files",
        "/files",
        "attachments",
        record_type="attachment",
        operations=("list", "create"),
        envelope="files",
        compact_fields=(*COMMON_FIELDS, "filename", "content_type", "size", "description", "related"),
    ),
    _resource(
        "estimate",
        "estimates",
        "/v2/estimates",
        "estimates",
        compact_fields=(*COMMON_FIELDS, "status", "total", "subtotal", "tax", "date_estimate", "date_due", "related"),
    ),
    _resource(
        "invoice",
        "invoices",
        "/v2/invoices",
        "invoices",
        compact_fields=(*COMMON_FIELDS, "status", "total", "total_paid", "due", "date_invoice", "date_due", "related"),
    ),
    _resource(
        "workorder",
        "workorders",
        "/v2/workorders",
        "workorders",
        compact_fields=(*COMMON_FIELDS, "status", "total", "date_start", "date_end", "related"),
    ),
    _resource(
        "materialorder",
        "materialorders",
        "/v2/materialorders",
        "materialorders",
        compact_fields=(*COMMON_FIELDS, "status", "total", "date_start", "related"),
    ),
    _resource(
        "product",
        "products",
        "/v2/products",
        "products",
        operations=("list", "get"),
        compact_fields=("description", "uom", "price", "cost", "sku", "category"),
    ),
    _resource(
        "payment",
        "payments",
        "/payments",
        "payments",
        operations=("list", "create"),
        create_path="/v2/payments",
        create_root="api2",
        compact_fields=(*COMMON_FIELDS, "total", "amount", "method", "reference", "invoice", "related"),
    ),
    # Known to the client only: no tool reads budgets, so they are neither cached nor polled.
    _resource("budget", "budgets", "/budgets", None, operations=("list",), polled=False),
    # Account-wide answers (jobnimbus.resources.ACCOUNT_ENDPOINTS): no date_updated, so never polled.
    EntityRow(name="user", policy="users", compact_fields=("id", "first_name", "last_name", "email", "is_active")),
    EntityRow(name="settings", policy="settings"),
    # get_webhooks: this server's own set-up and deliveries, cached only as the caller's key check.
    EntityRow(name="webhook", policy="webhooks"),
)

BY_NAME: Mapping[str, EntityRow] = {row.name: row for row in ENTITIES}


def entity(name: str) -> EntityRow:
    """Return the row of entity `name`; raise KeyError naming the known ones when there is none."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown entity {name!r}; known: {', '.join(BY_NAME)}") from None
