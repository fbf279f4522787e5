"""What tool handlers share: the JobNimbus client, cached reads, guarded writes, result building.

Handlers declare and call; the cache engine (`cacheops.api`) caches and the client talks to JobNimbus.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from cacheops.api import (
    ReadRequest,
    apply_change,
    decoded_size,
    guard_upstream,
    list_tag,
    read_through,
    record_tag,
    related_tag,
)
from cacheops.errors import CacheBackendError
from mcp_tools.catalog.args import list_query, upstream_args
from mcp_tools.catalog.base import Args, ToolContext, ToolResult, ToolSpec
from mcp_tools.entities import entity
from mcp_tools.jobnimbus.client import JobNimbusClient
from mcp_tools.jobnimbus.filters import Clause
from mcp_tools.memo import OwnedMemo
from mcp_tools.shaping import detail_result, list_result, to_text

logger = logging.getLogger(__name__)


def make_client(ctx: ToolContext) -> JobNimbusClient:
    """Return a JobNimbus client for the caller's key (tests replace this function with a fake)."""
    return JobNimbusClient(ctx.api_key)


def client(ctx: ToolContext) -> Any:
    """Return the client for `ctx`, through `make_client` looked up at call time so tests can swap it."""
    return make_client(ctx)


def result(structured: dict[str, Any], cache: dict[str, Any] | None = None) -> ToolResult:
    """Return a successful tool result carrying `structured` as structured content and as JSON text."""
    return ToolResult(structured=structured, text=to_text(structured), cache=cache)


def shaped_result(
    ctx: ToolContext,
    tool: str,
    value: Any,
    args: Mapping[str, Any],
    cache: dict[str, Any],
    shape: Callable[[], dict[str, Any]],
) -> ToolResult:
    """Return the result of `shape()` for a cached `value`, shaping it only once while the value stays the same.

    An L1 hit hands back the very object it holds until that entry is invalidated or expires, so the shaped answer
    is remembered against the value's identity: a new value (a refresh, an L2 read, another tenant's entry) never
    matches and is shaped afresh, so the memo can never answer with anything the cache itself would not.
    """
    try:
        memo_key = (ctx.scope, tool, orjson.dumps(args, option=orjson.OPT_SORT_KEYS))
    except TypeError:
        return result(shape(), cache)
    _, answer = _answers.lookup(memo_key, value)
    if answer is None:
        structured = shape()
        answer = (structured, to_text(structured))
        _answers.remember(memo_key, value, answer, _answer_size(value, answer[1]))
    return ToolResult(structured=answer[0], text=answer[1], cache=cache)


def _answer_size(value: Any, text: str) -> int:
    """Estimate the memory a remembered answer keeps alive: the cached value (which L1 may have dropped already),
    the shaped structure and its text; the same per-JSON-byte estimate L1 uses for its own limit."""
    try:
        value_json = len(orjson.dumps(value))
    except TypeError:
        value_json = len(text)
    return decoded_size(value_json) + decoded_size(len(text)) + len(text)


# (scope, tool, arguments) → the shaped answer (structured, text) of one cached value. Bounded in bytes as well as
# entries, so it can never hold more than a small share of what L1 is allowed (CACHE_L1_MAX_BYTES).
ANSWER_MEMO_MAX_BYTES = 8 * 1024 * 1024
_answers: OwnedMemo[tuple[dict[str, Any], str]] = OwnedMemo(max_entries=256, max_bytes=ANSWER_MEMO_MAX_BYTES)


def cached(
    ctx: ToolContext,
    tool: str,
    *,
    entity: str,
    op: str,
    policy: str,
    args: Mapping[str, Any],
    tags: Sequence[str],
    fetch: Callable[[], Any],
) -> tuple[Any, dict[str, Any]]:
    """Return (value, cache meta) for one read through the cache engine; only upstream-relevant args key it."""
    request = ReadRequest(
        scope=ctx.scope, entity=entity, op=op, policy=policy, args=upstream_args(args), tool=tool, tags=tuple(tags)
    )
    outcome = read_through(request, fetch)
    return outcome.value, outcome.meta()


def read(
    ctx: ToolContext,
    spec: ToolSpec,
    *,
    op: str,
    args: Mapping[str, Any],
    tags: Sequence[str],
    fetch: Callable[[], Any],
) -> tuple[Any, dict[str, Any]]:
    """Return (value, cache meta) of tool `spec`'s own read, keyed and timed by the policy and entity it declares."""
    if spec.policy is None:
        raise TypeError(f"tool {spec.name} declares no cache policy to read with")
    entity = declared_entity(spec)
    return cached(ctx, spec.name, entity=entity, op=op, policy=spec.policy, args=args, tags=tags, fetch=fetch)


def declared_resource(spec: ToolSpec) -> str:
    """Return the client resource tool `spec` declares (every list, detail and write tool has one)."""
    if spec.resource is None:
        raise TypeError(f"tool {spec.name} declares no resource")
    return spec.resource


def declared_entity(spec: ToolSpec) -> str:
    """Return the record type tool `spec` declares (every cached read and every write has one)."""
    if spec.entity is None:
        raise TypeError(f"tool {spec.name} declares no entity")
    return spec.entity


def parent_tags(*parents: str | None) -> list[str]:
    """Return the related tags of the given parent ids (None skipped)."""
    return [related_tag(p) for p in parents if p]


def list_records(
    ctx: ToolContext,
    spec: ToolSpec,
    args: Args,
    *,
    date_field: str = "date_created",
    clauses: Sequence[Clause] = (),
    parents: Sequence[str | None] = (),
    op: str = "list",
) -> ToolResult:
    """Run a list tool: one page of its resource filtered by the shared arguments and `clauses`, cached and shaped."""
    query = list_query(args, date_field=date_field, clauses=clauses)
    resource, entity = declared_resource(spec), declared_entity(spec)

    def fetch() -> dict[str, Any]:
        page = client(ctx).list(resource, **query)  # built only on a miss: a hit needs no client
        return {"count": page.count, "records": page.records}

    tags = [list_tag(entity), *parent_tags(args.get("related_to"), *parents)]
    value, meta = read(ctx, spec, op=op, args=args, tags=tags, fetch=fetch)

    def shape() -> dict[str, Any]:
        return list_result(value["count"], value["records"], args, entity)

    return shaped_result(ctx, spec.name, value, args, meta, shape)


def get_record(ctx: ToolContext, spec: ToolSpec, args: Args) -> ToolResult:
    """Run a detail tool: record `args["jnid"]` of its resource, cached and shaped."""
    value, meta = record_value(ctx, spec, args)
    return shaped_result(ctx, spec.name, value, args, meta, lambda: detail_result(value, declared_entity(spec), args))


def record_value(ctx: ToolContext, spec: ToolSpec, args: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Return (record `args["jnid"]` as JobNimbus sent it, cache meta): detail tool `spec`'s read, unshaped."""
    jnid, resource = args["jnid"], declared_resource(spec)
    return read(ctx, spec, op="get", args=args, tags=[record_tag(jnid)], fetch=lambda: client(ctx).get(resource, jnid))


def related_ids(record: Mapping[str, Any]) -> list[str]:
    """Return the ids of the records `record` links to (`related[].id` and `primary.id`), without repeats."""
    ids = [r.get("id") for r in record.get("related") or [] if isinstance(r, Mapping)]
    primary = record.get("primary")
    if isinstance(primary, Mapping):
        ids.append(primary.get("id"))
    return [str(i) for i in dict.fromkeys(ids) if i]


def write(
    ctx: ToolContext, entity: str, event: str, call: Callable[[], dict[str, Any]], jnid: str | None = None
) -> dict[str, Any]:
    """Run a write under the instance's breaker, then invalidate what it touched before anyone reads it back."""
    record = guard_upstream(ctx.instance, call, tenant=ctx.tenant)
    touched = jnid or str(record.get("jnid") or "") or None
    try:
        # settle: when Redis refuses the invalidation (a failover under way), the answer waits a few seconds for it
        # to be taken, so the caller's next read cannot be served what a new primary still holds.
        apply_change(ctx.instance, entity, event, touched, related_ids(record), settle=True)
    except CacheBackendError:
        # The write is done in JobNimbus: reporting failure would invite a retry that writes twice. This process
        # serves nothing from Redis until it replays the invalidation, and apply_change stored the change as an
        # event (source write) that the sweep applies for every process once Redis answers.
        logger.warning("write to %s %s applied upstream; invalidation deferred until Redis answers", entity, touched)
    return record


# The account settings are read by their own tool and, for defaults, by write tools: one entry either way.
_SETTINGS = entity("settings")


def account_settings(ctx: ToolContext, tool: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return (account settings, cache meta), read through the cache like any other read."""
    return cached(
        ctx,
        tool,
        entity=_SETTINGS.name,
        op="get",
        policy=_SETTINGS.cache_policy("get"),
        args={},
        tags=[list_tag(_SETTINGS.name)],
        fetch=lambda: client(ctx).account_settings(),
    )


def drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    """Return `values` without the keys whose value is None."""
    return {k: v for k, v in values.items() if v is not None}
