"""What a tool is, what it is called with, and what it returns.

The protocol layer (`mcp_tools.protocol`) knows tools only through these types and
`mcp_tools.catalog.registry`; tools know nothing of JSON-RPC or HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cacheops.api import CacheScope

# Records one write tool call: (tool, arguments, structured answer, succeeded). Managed mode's audit trail.
WriteAudit = Callable[[str, Mapping[str, Any], Mapping[str, Any], bool], None]


@dataclass(frozen=True)
class ToolContext:
    """The caller of one tool call: instance, key (never logged, hidden from repr), tenant id, request id, and
    where its writes are audited (managed tokens only)."""

    instance: str
    api_key: str = field(repr=False)
    tenant: str
    request_id: str = "-"
    audit: WriteAudit | None = field(default=None, repr=False, compare=False)
    held_key: bool = False  # managed mode: the key is the server's, mapped by staff (the caller never saw it)

    @property
    def scope(self) -> CacheScope:
        return CacheScope(instance=self.instance, tenant=self.tenant)


@dataclass
class ToolResult:
    """A tool's answer: `structured` is the JSON object (structuredContent), `text` the same for `content`."""

    structured: dict[str, Any]
    text: str
    is_error: bool = False
    cache: dict[str, Any] | None = None


Args = dict[str, Any]
# A handler is given its own declaration, so what it reads and writes (policy, entity, resource) is said once.
Handler = Callable[["ToolSpec", ToolContext, Args], ToolResult]


@dataclass(frozen=True, kw_only=True)
class ToolSpec:
    """One tool, declared once: the list, validation, docs, tests and the handler itself all read this.

    `policy` is the cache policy its read goes through (None: writes and uncached tools), `entity` the JobNimbus
    record type it reads or writes (the cache key family; what a write invalidates), `resource` the client
    resource it calls (None for account-wide reads).
    """

    name: str
    title: str
    description: str
    input_schema: Mapping[str, Any]
    output_schema: Mapping[str, Any] | None
    annotations: Mapping[str, Any]
    handler: Handler
    policy: str | None = None
    entity: str | None = None
    resource: str | None = None

    @property
    def read_only(self) -> bool:
        return bool(self.annotations.get("readOnlyHint", False))

    def run(self, ctx: ToolContext, args: Args) -> ToolResult:
        """Run the handler with this declaration and validated arguments."""
        return self.handler(self, ctx, args)


class UnknownToolError(LookupError):
    """No tool of that name is registered."""
