"""Composed reads: a detail tool's record with its related records in one call (`include: ["tasks", ...]`).

Each part is read by the very tool a model would otherwise call for it, through `call` (the registry's
`call_tool`): a job's tasks are `get_tasks related_to=<job jnid>`, its contacts `get_contact jnid=<id>` for the
primary and related contacts. So a part is cached under that tool's key, tags (`list:task`, `rel:<jnid>`) and
policy; a write invalidates it by the same rules as the plain call; a later plain call hits the entry the include
filled; and a part JobNimbus fails is that tool's `isError` answer, shown as the part's `error` instead of failing
the whole call.

Each part shows at most PER_PART records of the tool's first page (its default page, so the entry is the plain
call's) and says how to get the rest; the whole answer stays under shaping's cap by showing fewer.

Parts are read one after another. Every miss holds one of the process's miss slots (the engine's MissGate bounds
the request threads that block on JobNimbus, so hits always find a thread); reading six parts at once would let
one call take all the slots and have its own parts (and other callers' misses) refused as busy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cacheops.api import CacheOutcome
from mcp_tools.catalog.base import Args, ToolContext, ToolResult, ToolSpec
from mcp_tools.catalog.runtime import record_value, result
from mcp_tools.shaping import MAX_RESPONSE_BYTES, to_text

# Records shown per part (of the part tool's first page), and linked records read one by one per part.
PER_PART = 10
MAX_LINKED = 5
# Room left under the cap for the envelope's own bytes.
_BUDGET = MAX_RESPONSE_BYTES - 400

# Runs another tool as a plain call would (validated, defaults filled, failures as isError results).
Call = Callable[[str, Args], ToolResult]


@dataclass(frozen=True)
class Part:
    """One kind of related record: read with `tool(related_to=<jnid>)`, or, when `linked` names a record type,
    with `tool(jnid=<id>)` for each record of that type in the record's `primary` and `related`."""

    tool: str
    linked: str | None = None


_COMMON: dict[str, Part] = {
    "tasks": Part("get_tasks"),
    "activities": Part("get_activities"),
    "estimates": Part("get_estimates"),
    "invoices": Part("get_invoices"),
    "attachments": Part("get_attachments"),
}
# entity → include name → how it is read. The names are the list tools' (get_<name>) plural nouns.
PARTS: dict[str, dict[str, Part]] = {
    "job": {"contacts": Part("get_contact", linked="contact"), **_COMMON},
    "contact": {"jobs": Part("get_jobs"), **_COMMON},
}


def include_property(entity: str) -> dict[str, Any]:
    """Return the `include` argument of `entity`'s detail tool ({} when it has no parts)."""
    parts = PARTS.get(entity)
    if not parts:
        return {}
    return {
        "include": {
            "type": "array",
            # No uniqueItems: outside the providers' common schema subset (protocol.portability); repeats are harmless.
            "items": {"type": "string", "enum": list(parts)},
            "description": f"Related records to add under `included` (up to {PER_PART} each; says how to get more).",
        }
    }


def composed(ctx: ToolContext, spec: ToolSpec, args: Args, call: Call) -> ToolResult:
    """Return detail tool `spec`'s answer for `args` plus one section per `include`d part, with per-part `_meta`."""
    parts = PARTS.get(spec.entity or "", {})
    wanted = [name for name in parts if name in (args.get("include") or ())]  # declared order
    plain = {name: value for name, value in args.items() if name != "include"}
    detail = spec.run(ctx, plain)  # exactly the plain detail call: same key, same shaped answer
    if detail.is_error or not wanted:
        return detail
    jnid = str(args["jnid"])
    record: Any = None
    sections: dict[str, _Section] = {}
    for name in wanted:
        part = parts[name]
        if part.linked:
            if record is None:  # the raw record: its links survive any `fields`/`verbosity`; an L1 hit by now
                record, _ = record_value(ctx, spec, plain)
            sections[name] = _linked(call, part, linked_ids(record, part.linked))
        else:
            sections[name] = _listed(call, part, jnid)
    cache = {**(detail.cache or _BYPASS), "parts": {name: s.meta for name, s in sections.items()}}
    return result(_fit(detail.structured, sections), cache)


def linked_ids(record: Any, kind: str) -> list[str]:
    """Return the ids of the `kind` records `record` links to: its primary (of that type or untyped), then
    `related` entries of that type, without repeats."""
    if not isinstance(record, Mapping):
        return []
    primary = record.get("primary")
    refs: list[Any] = [primary] if isinstance(primary, Mapping) and primary.get("type", kind) == kind else []
    refs += [r for r in record.get("related") or [] if isinstance(r, Mapping) and r.get("type") == kind]
    return [str(i) for i in dict.fromkeys(r.get("id") for r in refs) if i]


_BYPASS = CacheOutcome.without_value("bypass").meta()
# From the least to the most cached, to report a part read by several calls by its least cached one.
_COLDEST = ("miss", "stale", "coalesced", "bypass", "hit_l2", "hit_l1")


@dataclass
class _Section:
    """One part of the answer while it is being fitted: what it shows, what it holds back, its cache outcome."""

    tool: str
    meta: dict[str, Any]
    count: int = 0
    records: list[Any] = field(default_factory=list)
    jnid: str | None = None  # list parts: the parent, for the "more" hint
    rest_ids: list[str] = field(default_factory=list)  # linked parts: ids not shown
    error: str | None = None
    errors: list[dict[str, str]] = field(default_factory=list)
    cut: bool = False  # records dropped to fit the size cap

    def render(self) -> dict[str, Any]:
        if self.error is not None:
            return {"error": self.error}
        shown = len(self.records)
        body: dict[str, Any] = {"count": self.count, "returned": shown, "truncated": shown < self.count}
        body["records"] = self.records
        if self.errors:
            body["errors"] = self.errors
        if self.jnid is not None and shown < self.count:
            body["more"] = f"call {self.tool} related_to={self.jnid} from={shown}"
        elif self.rest_ids:
            body["more"] = f"call {self.tool} jnid=<id> for {', '.join(self.rest_ids)}"
        if self.cut:
            body["notice"] = f"cut to {shown} records to keep the answer under {MAX_RESPONSE_BYTES // 1024} KB"
        return body

    def drop_last(self) -> None:
        record = self.records.pop()
        if self.jnid is None and isinstance(record, Mapping) and record.get("jnid"):
            self.rest_ids.insert(0, str(record["jnid"]))
        self.cut = True


def _listed(call: Call, part: Part, jnid: str) -> _Section:
    answer = call(part.tool, {"related_to": jnid})
    section = _Section(part.tool, answer.cache or _BYPASS, jnid=jnid)
    if answer.is_error:
        section.error = answer.text
        return section
    section.count = int(answer.structured.get("count") or 0)
    section.records = list(answer.structured.get("records") or [])[:PER_PART]
    return section


def _linked(call: Call, part: Part, ids: Sequence[str]) -> _Section:
    read, rest = ids[:MAX_LINKED], list(ids[MAX_LINKED:])
    answers = [(jnid, call(part.tool, {"jnid": jnid})) for jnid in read]
    metas = [a.cache or _BYPASS for _, a in answers]
    section = _Section(part.tool, _coldest(metas), count=len(ids), rest_ids=rest)
    for jnid, answer in answers:
        if answer.is_error:
            section.errors.append({"jnid": jnid, "error": answer.text})
            section.rest_ids.append(jnid)
        else:
            section.records.append(answer.structured)
    return section


def _coldest(metas: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Return one outcome for a part read by several calls: the least cached status, the oldest age, the
    shortest TTL (a part read by no call did not go through the cache: bypass)."""
    if not metas:
        return dict(_BYPASS)
    status = min((str(m.get("status")) for m in metas), key=lambda s: _COLDEST.index(s) if s in _COLDEST else 0)
    ages = [m["age_s"] for m in metas if m.get("age_s") is not None]
    ttls = [m["ttl_s"] for m in metas if m.get("ttl_s") is not None]
    return {"status": status, "age_s": max(ages) if ages else None, "ttl_s": min(ttls) if ttls else None}


def _fit(detail: Mapping[str, Any], sections: dict[str, _Section]) -> dict[str, Any]:
    """Return the detail with `included` sections, dropping the last record of the largest part until it fits."""

    def render() -> dict[str, Any]:
        return {**detail, "included": {name: s.render() for name, s in sections.items()}}

    answer = render()
    while _size(answer) > _BUDGET:
        holding = [s for s in sections.values() if s.records]
        if not holding:
            break
        max(holding, key=lambda s: _size(s.records)).drop_last()
        answer = render()
    return answer


def _size(value: Any) -> int:
    return len(to_text(value if isinstance(value, dict) else {"v": value}).encode())
