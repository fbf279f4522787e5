"""Shape JobNimbus records for a language model: verbosity projections, list envelopes, the 25 KB cap.

Lists become `{count, from, size, next_from, records}`; a detail is the record itself. Whatever is cut to
fit the cap is announced in a `truncated` field, never dropped silently.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from mcp_tools.entities import COMMON_FIELDS, ENTITIES

Record = dict[str, Any]

MAX_RESPONSE_BYTES = 25 * 1024
SUMMARY_FIELDS = ("jnid", "type", "number", "name", "display_name", "title", "status_name", "record_type_name")
# What a model usually needs of each entity, on top of SUMMARY_FIELDS (an entity without a row's fields: the common).
COMPACT_FIELDS: dict[str, tuple[str, ...]] = {row.name: row.compact_fields for row in ENTITIES if row.compact_fields}
# Internal bookkeeping JobNimbus sends with every record; `detailed` leaves it out, `raw` keeps it.
_NOISE = frozenset({"recid", "customer", "created_by", "owners", "location", "geo", "is_archived", "image_url"})

RECORD_SCHEMA: dict[str, Any] = {"type": "object", "additionalProperties": True}
TRUNCATED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "notice": {"type": "string"},
        "returned": {"type": "integer"},
        "next_from": {"type": ["integer", "null"]},
        "omitted_fields": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["notice"],
}
LIST_OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "count": {"type": "integer", "description": "Total number of matching records."},
        "from": {"type": "integer"},
        "size": {"type": "integer"},
        "next_from": {"type": ["integer", "null"], "description": "Pass as `from` for the next page; null at the end."},
        "records": {"type": "array", "items": RECORD_SCHEMA},
        "truncated": TRUNCATED_SCHEMA,
    },
    "required": ["count", "from", "size", "next_from", "records"],
}
DETAIL_OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"jnid": {"type": "string"}, "truncated": TRUNCATED_SCHEMA},
    "additionalProperties": True,
}


def project(
    record: Mapping[str, Any], entity: str, verbosity: str = "compact", fields: Sequence[str] | None = None
) -> Record:
    """Return `record` cut to `fields` when given, else to the `verbosity` level for `entity`."""
    if fields or verbosity in {"summary", "compact"}:
        return {name: record[name] for name in _kept_fields(entity, verbosity, tuple(fields or ())) if name in record}
    if verbosity == "raw":
        return dict(record)
    return {k: v for k, v in record.items() if k not in _NOISE and v not in (None, "", [], {})}


@functools.lru_cache(maxsize=1024)
def _kept_fields(entity: str, verbosity: str, fields: tuple[str, ...]) -> tuple[str, ...]:
    """Return the fields a projection keeps, in order, without repeats (worked out once, not per record)."""
    if fields:
        names: Sequence[str] = ("jnid", *fields)
    elif verbosity == "summary":
        names = SUMMARY_FIELDS
    else:
        names = (*SUMMARY_FIELDS, *COMPACT_FIELDS.get(entity, COMMON_FIELDS))
    return tuple(dict.fromkeys(names))


def list_result(count: int, records: Sequence[Mapping[str, Any]], args: Mapping[str, Any], entity: str) -> Record:
    """Return the list envelope for one page of `records`, shaped and cut to the response cap."""
    start, size = args.get("from", 0), args.get("size", len(records))
    shaped = [project(r, entity, args.get("verbosity", "compact"), args.get("fields")) for r in records]
    end = start + len(shaped)
    next_from = end if end < count and shaped else None
    body = {"count": count, "from": start, "size": size, "next_from": next_from, "records": shaped}
    return fit_list(body)


def fit_list(body: Record) -> Record:
    """Return `body` with trailing records dropped until its JSON fits the cap, saying so in `truncated`."""
    if _size(body) <= MAX_RESPONSE_BYTES:
        return body
    records = body["records"]
    kept = len(records)
    while kept > 0 and _size({**body, "records": records[:kept]}) > MAX_RESPONSE_BYTES - 400:
        kept = _shrink(kept, body, records)
    next_from = body["from"] + kept
    notice = (
        f"Response cut to {kept} of {len(records)} records to stay under {MAX_RESPONSE_BYTES // 1024} KB; "
        f"call again with from={next_from} (or a smaller size, verbosity='summary' or fields) for the rest."
    )
    truncated = {"notice": notice, "returned": kept, "next_from": next_from}
    return {**body, "records": records[:kept], "next_from": next_from, "truncated": truncated}


def _shrink(kept: int, body: Record, records: list[Any]) -> int:
    # Estimate from the average record size, then step down one at a time so the result is the largest fit.
    per_record = max(1, _size({**body, "records": records[:kept]}) // kept)
    excess = _size({**body, "records": records[:kept]}) - (MAX_RESPONSE_BYTES - 400)
    return max(0, kept - max(1, excess // per_record))


def detail_result(record: Mapping[str, Any], entity: str, args: Mapping[str, Any]) -> Record:
    """Return one record shaped by `verbosity`/`fields`, its largest fields dropped (and named) if over the cap."""
    shaped = project(record, entity, args.get("verbosity", "compact"), args.get("fields"))
    if _size(shaped) <= MAX_RESPONSE_BYTES:
        return shaped
    omitted: list[str] = []
    for name in sorted(shaped, key=lambda k: _size(shaped[k]), reverse=True):
        if name == "jnid" or _size(shaped) <= MAX_RESPONSE_BYTES - 400:
            continue
        omitted.append(name)
        shaped.pop(name)
    notice = (
        f"Fields {', '.join(omitted)} omitted to stay under {MAX_RESPONSE_BYTES // 1024} KB; ask for them with fields."
    )
    return {**shaped, "truncated": {"notice": notice, "omitted_fields": omitted}}


def _encode(value: Any) -> bytes:
    # orjson: compact, UTF-8 unescaped, and an order of magnitude faster than json on every cached answer.
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)


def to_text(structured: Mapping[str, Any]) -> str:
    """Return the JSON text a result carries in `content` (the same data as `structuredContent`)."""
    return _encode(structured).decode()


def _size(value: Any) -> int:
    return len(_encode(value if isinstance(value, dict) else {"v": value}))
