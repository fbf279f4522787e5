"""The JobNimbus resources the client knows, derived from the entity table (`mcp_tools.entities`).

Paths are relative to the API base (`settings.JOBNIMBUS_BASE_URL`, `.../api1`). `None` means JobNimbus
has no such endpoint for the resource, and the client refuses the operation without calling upstream.
Facts from what is known of the public JobNimbus API (paths, envelopes, filters).
"""

from __future__ import annotations

from dataclasses import dataclass

from mcp_tools.entities import ENTITIES, ApiRoot, EntityRow, Operation
from mcp_tools.jobnimbus.errors import UnsupportedOperationError


@dataclass(frozen=True)
class Resource:
    """One JobNimbus resource: where each operation lives and how its list answers are wrapped.

    `name` is the plural the client is called with (`jobs`), `entity` the singular the cache engine uses
    (`job`), `record_type` the `type` JobNimbus puts on its records (`attachment` for files).
    `one_path`/`update_path` contain `{jnid}`.
    """

    name: str
    entity: str
    record_type: str
    list_path: str | None
    one_path: str | None
    create_path: str | None
    update_path: str | None
    envelope: str = "results"
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
        }


def _from_row(row: EntityRow, resource: str, base: str) -> Resource:
    """Return the client's view of one entity row: each operation's path, or None where JobNimbus has none."""

    def at(operation: Operation, path: str) -> str | None:
        return path if operation in row.operations else None

    return Resource(
        name=resource,
        entity=row.name,
        record_type=row.record_type or row.name,
        list_path=at("list", base),
        one_path=at("get", f"{base}/{{jnid}}"),
        create_path=at("create", row.create_path or base),
        update_path=at("update", f"{base}/{{jnid}}"),
        envelope=row.envelope,
        create_root=row.create_root,
    )


RESOURCES: dict[str, Resource] = {
    row.resource: _from_row(row, row.resource, row.path)
    for row in ENTITIES
    if row.resource is not None and row.path is not None
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


def envelope_keys() -> frozenset[str]:
    """Return every key JobNimbus wraps a list answer in, for tolerant normalisation."""
    return frozenset(resource.envelope for resource in RESOURCES.values())
