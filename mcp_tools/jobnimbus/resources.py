"""The JobNimbus resources the client knows: one table, one place to add a resource.

Paths are relative to the API base (`settings.JOBNIMBUS_BASE_URL`, `.../api1`). `None` means JobNimbus
has no such endpoint for the resource, and the client refuses the operation without calling upstream.
Facts from what is known of the public JobNimbus API (paths, envelopes, filters).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from mcp_tools.jobnimbus.errors import UnsupportedOperationError

Operation = Literal["list", "get", "create", "update", "download"]
# Payments are created on the api2 host path; every other path is under the configured base.
ApiRoot = Literal["api1", "api2"]


@dataclass(frozen=True)
class Resource:
    """One JobNimbus resource: where each operation lives and how its list answers are wrapped.

    `name` is the plural the client is called with (`jobs`), `entity` the singular the cache engine uses
    (`job`), `record_type` the `type` JobNimbus puts on its records (`attachment` for files).
    `one_path`/`update_path`/`download_path` contain `{jnid}`.
    """

    name: str
    entity: str
    record_type: str
    list_path: str | None
    one_path: str | None
    create_path: str | None
    update_path: str | None
    envelope: str = "results"
    download_path: str | None = None
    create_root: ApiRoot = "api1"

    def path(self, operation: Operation) -> str:
        """Return the path template of `operation`, or raise UnsupportedOperationError naming the resource."""
        template = self._paths()[operation]
        if template is None:
            raise UnsupportedOperationError(
                f"JobNimbus has no '{operation}' endpoint for {self.name}; "
                f"supported here: {', '.join(self.supported()) or 'none'}"
            )
        return template

    def supported(self) -> list[str]:
        """Return the operations this resource has an endpoint for."""
        return [operation for operation, path in self._paths().items() if path is not None]

    def _paths(self) -> dict[str, str | None]:
        return {
            "list": self.list_path,
            "get": self.one_path,
            "create": self.create_path,
            "update": self.update_path,
            "download": self.download_path,
        }


def _crud(name: str, entity: str, base: str, *, record_type: str | None = None) -> Resource:
    """Return a resource with the usual four endpoints under `base`."""
    return Resource(
        name=name,
        entity=entity,
        record_type=record_type or entity,
        list_path=base,
        one_path=f"{base}/{{jnid}}",
        create_path=base,
        update_path=f"{base}/{{jnid}}",
    )


RESOURCES: dict[str, Resource] = {
    resource.name: resource
    for resource in (
        _crud("contacts", "contact", "/contacts"),
        _crud("jobs", "job", "/jobs"),
        Resource(
            name="activities",
            entity="activity",
            record_type="activity",
            list_path="/activities",
            one_path="/activities/{jnid}",
            create_path="/activities",
            update_path="/activities/{jnid}",
            envelope="activity",
        ),
        _crud("tasks", "task", "/tasks"),
        # GET /files/{jnid} is a 302 to a signed download URL, not JSON; POST /files is deprecated but works.
        Resource(
            name="files",
            entity="file",
            record_type="attachment",
            list_path="/files",
            one_path=None,
            create_path="/files",
            update_path=None,
            envelope="files",
            download_path="/files/{jnid}",
        ),
        _crud("estimates", "estimate", "/v2/estimates"),
        _crud("invoices", "invoice", "/v2/invoices"),
        _crud("workorders", "workorder", "/v2/workorders"),
        _crud("materialorders", "materialorder", "/v2/materialorders"),
        Resource(
            name="products",
            entity="product",
            record_type="product",
            list_path="/v2/products",
            one_path="/v2/products/{jnid}",
            create_path=None,
            update_path=None,
        ),
        Resource(
            name="payments",
            entity="payment",
            record_type="payment",
            list_path="/payments",
            one_path=None,
            create_path="/v2/payments",
            update_path=None,
            create_root="api2",
        ),
        Resource(
            name="budgets",
            entity="budget",
            record_type="budget",
            list_path="/budgets",
            one_path=None,
            create_path=None,
            update_path=None,
        ),
    )
}


@dataclass(frozen=True)
class AccountEndpoint:
    """An account-wide endpoint: its path and, when the answer wraps a list, the key of that list."""

    name: str
    path: str
    list_key: str | None = None


ACCOUNT_ENDPOINTS: dict[str, AccountEndpoint] = {
    "users": AccountEndpoint(name="users", path="/account/users", list_key="users"),
    "settings": AccountEndpoint(name="settings", path="/account/settings"),
}

_BY_ENTITY = {resource.entity: resource for resource in RESOURCES.values()}


def get_resource(name: str) -> Resource:
    """Return the resource called `name` (plural `jobs` or singular entity `job`), or raise naming the known ones."""
    resource = RESOURCES.get(name) or _BY_ENTITY.get(name)
    if resource is None:
        raise UnsupportedOperationError(f"Unknown JobNimbus resource {name!r}; known: {', '.join(RESOURCES)}")
    return resource


def iter_resources() -> Iterator[Resource]:
    """Yield every resource in table order."""
    yield from RESOURCES.values()


def envelope_keys() -> frozenset[str]:
    """Return every key JobNimbus wraps a list answer in, for tolerant normalisation."""
    return frozenset(resource.envelope for resource in RESOURCES.values())
