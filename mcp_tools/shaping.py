"""Shape JobNimbus records for a language model: verbosity projections, list envelopes, the 25 KB cap.

Lists become `{count, from, size, next_from, records}`; a detail is the record itself. Whatever is cut to
fit the cap is announced in a `truncated` field, never dropped silently.

What a model reads right: timestamps (JobNimbus's unix seconds) become ISO 8601 with the offset in force in the
account's time zone, the unix value kept beside them as `<field>_unix` only at the full verbosities (detailed, raw)
and when asked for by name in `fields`; an unset date (0) is null. An answer holding amounts of money says their
`currency` once, at its top. Compact and summary records name their status and workflow (`status_name`,
`record_type_name`) instead of carrying the numeric ids beside them. `fields` naming nothing the entity has
produces a `warnings` entry with the near matches.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from datetime import tzinfo
from typing import Any

import orjson

from mcp_tools.entities import COMMON_FIELDS, ENTITIES
from mcp_tools.suggest import did_you_mean, near
from mcp_tools.timezones import AccountLocale, current_locale, iso

Record = dict[str, Any]

MAX_RESPONSE_BYTES = 25 * 1024
SUMMARY_FIELDS = ("jnid", "type", "number", "name", "display_name", "title", "status_name", "record_type_name")
# What a model usually needs of each entity, on top of SUMMARY_FIELDS (an entity without a row's fields: the common).
COMPACT_FIELDS: dict[str, tuple[str, ...]] = {row.name: row.compact_fields for row in ENTITIES if row.compact_fields}
# Internal bookkeeping JobNimbus sends with every record; `detailed` leaves it out, `raw` keeps it.
_NOISE = frozenset({"recid", "customer", "created_by", "owners", "location", "geo", "is_archived", "image_url"})
# Verbosities that show records whole: their timestamps keep the unix value beside the ISO text.
_BRIEF = frozenset({"summary", "compact"})
UNIX_SUFFIX = "_unix"
# Amounts of money JobNimbus sends (plain numbers, in the account's currency): named, or named by a pattern.
MONEY_FIELDS = frozenset(
    {"total", "subtotal", "tax", "total_paid", "due", "amount", "price", "cost", "margin", "revenue", "balance"}
)
_MONEY_PATTERN = re.compile(r"^(approved_\w+_total|\w+_amount|amount_\w+)$")
# A numeric id whose name the same record carries: compact and summary records show the name alone.
_NAMED_IDS = {"status": "status_name", "record_type": "record_type_name"}


def project(
    record: Mapping[str, Any],
    entity: str,
    verbosity: str = "compact",
    fields: Sequence[str] | None = None,
    locale: AccountLocale | None = None,
) -> Record:
    """Return `record` cut to `fields` when given, else to the `verbosity` level for `entity`, made readable:
    timestamps in ISO 8601 in the account's time zone (`locale`, else the current call's)."""
    zone = (locale or current_locale()).zone
    if fields:
        return readable(_picked(record, ("jnid", *fields)), zone, full=False)
    if verbosity in _BRIEF:
        kept = _kept_fields(entity, verbosity, ())
        named = {name: record[name] for name in kept if _shown_brief(record, name)}
        return _without_primary_in_related(readable(named, zone, full=False))
    if verbosity == "raw":
        return readable(record, zone, full=True)
    return readable(
        {k: v for k, v in record.items() if k not in _NOISE and v not in (None, "", [], {})}, zone, full=True
    )


def _shown_brief(record: Mapping[str, Any], name: str) -> bool:
    """Tell whether a compact or summary record shows field `name`: not when it is empty or unset (a model reads a
    missing field as unknown just as well, for fewer bytes), nor a numeric id whose name the record carries."""
    value = record.get(name)
    if value in (None, "", [], {}) or _NAMED_IDS.get(name) in record:
        return False
    return not (value == 0 and is_timestamp(name, value))


def _without_primary_in_related(record: Record) -> Record:
    """Return `record` without the `related` entry that repeats its `primary` (compact and summary records)."""
    primary, related = record.get("primary"), record.get("related")
    if not isinstance(primary, Mapping) or not isinstance(related, list):
        return record
    others = [link for link in related if not (isinstance(link, Mapping) and link.get("id") == primary.get("id"))]
    if len(others) == len(related):
        return record
    trimmed = {**record, "related": others}
    if not others:
        del trimmed["related"]
    return trimmed


def _picked(record: Mapping[str, Any], names: Sequence[str]) -> Record:
    """Return the named fields of `record` in order; `<date>_unix` gives a timestamp's unix value."""
    picked: Record = {}
    for name in dict.fromkeys(names):
        if name in record:
            picked[name] = record[name]
        elif name.endswith(UNIX_SUFFIX) and is_timestamp(
            name[: -len(UNIX_SUFFIX)], record.get(name[: -len(UNIX_SUFFIX)])
        ):
            picked[name] = record[name[: -len(UNIX_SUFFIX)]]
    return picked


def is_timestamp_name(name: str) -> bool:
    """Tell whether a field name is one of JobNimbus's timestamps: date_created, date_status_change, due_date, ..."""
    return not name.endswith(UNIX_SUFFIX) and ("date" in name.split("_") or name.endswith("_at"))


def is_timestamp(name: Any, value: Any) -> bool:
    """Tell whether `value` of field `name` is a unix timestamp to show as ISO 8601 (a number in a date field)."""
    return (
        isinstance(name, str)
        and isinstance(value, int | float)
        and not isinstance(value, bool)
        and is_timestamp_name(name)
    )


def readable(record: Mapping[str, Any], zone: tzinfo, *, full: bool, depth: int = 0) -> Record:
    """Return `record` with every timestamp, at any depth (items, related...), as ISO 8601 in `zone`.

    An unset date (0) is null. With `full` the unix value stays beside it as `<field>_unix` (for programs).
    """
    out: Record = {}
    for key, value in record.items():
        if is_timestamp(key, value):
            out[key] = iso(value, zone)
            if full:
                out[f"{key}{UNIX_SUFFIX}"] = value
        elif depth < 4 and isinstance(value, Mapping):
            out[key] = readable(value, zone, full=full, depth=depth + 1)
        elif depth < 4 and isinstance(value, list) and any(isinstance(v, Mapping) for v in value):
            out[key] = [readable(v, zone, full=full, depth=depth + 1) if isinstance(v, Mapping) else v for v in value]
        else:
            out[key] = value
    return out


def has_money(value: Any, depth: int = 0) -> bool:
    """Tell whether `value` holds an amount of money (a number in a money field) at any depth."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(item, int | float) and not isinstance(item, bool) and is_money_name(key):
                return True
            if depth < 4 and isinstance(item, Mapping | list) and has_money(item, depth + 1):
                return True
        return False
    if isinstance(value, list):
        return any(has_money(item, depth + 1) for item in value if isinstance(item, Mapping | list))
    return False


def is_money_name(name: Any) -> bool:
    """Tell whether a field name holds an amount of money: total, subtotal, tax, due, approved_estimate_total, ..."""
    return isinstance(name, str) and (name in MONEY_FIELDS or bool(_MONEY_PATTERN.match(name)))


def field_warnings(entity: str, fields: Sequence[str] | None, records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Return a warning per requested field that neither the records nor the entity's known fields have.

    Known: the keys the records carry (and `<date>_unix` of their timestamps), the summary and compact fields of
    `entity`. With no record to compare, only a field with a near match among the known ones is reported.
    """
    if not fields:
        return []
    seen: dict[str, None] = {}
    for record in records:
        for key, value in record.items():
            seen[key] = None
            if is_timestamp(key, value):
                seen[f"{key}{UNIX_SUFFIX}"] = None
    known = {**seen, **dict.fromkeys((*SUMMARY_FIELDS, *COMPACT_FIELDS.get(entity, COMMON_FIELDS)))}
    warnings = []
    for name in fields:
        if name in known:
            continue
        matches = near(name, known)
        if not records and not matches:
            continue
        where = f"any {entity} of this answer" if records else f"the known {entity} fields"
        warnings.append(f"Unknown field {name!r}: not a field of {where}, so it was left out.{did_you_mean(matches)}")
    return warnings


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


def list_result(
    count: int,
    records: Sequence[Mapping[str, Any]],
    args: Mapping[str, Any],
    entity: str,
    locale: AccountLocale | None = None,
) -> Record:
    """Return the list envelope for one page of `records`, shaped and cut to the response cap.

    `warnings` (unknown `fields`) comes first and `currency` (when a record holds money) before the records.
    """
    locale = locale or current_locale()
    start, size = args.get("from", 0), args.get("size", len(records))
    shaped = [project(r, entity, args.get("verbosity", "compact"), args.get("fields"), locale) for r in records]
    end = start + len(shaped)
    next_from = end if end < count and shaped else None
    warnings = field_warnings(entity, args.get("fields"), records)
    body: Record = {"warnings": warnings} if warnings else {}
    body.update({"count": count, "from": start, "size": size, "next_from": next_from})
    if any(has_money(r) for r in shaped):
        body["currency"] = locale.currency
    body["records"] = shaped
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


def detail_result(
    record: Mapping[str, Any], entity: str, args: Mapping[str, Any], locale: AccountLocale | None = None
) -> Record:
    """Return one record shaped by `verbosity`/`fields`, its largest fields dropped (and named) if over the cap.

    `warnings` (unknown `fields`) comes first and `currency` (when the record holds money) last.
    """
    locale = locale or current_locale()
    shaped = project(record, entity, args.get("verbosity", "compact"), args.get("fields"), locale)
    warnings = field_warnings(entity, args.get("fields"), [record])
    extras_before: Record = {"warnings": warnings} if warnings else {}
    extras_after: Record = {"currency": locale.currency} if has_money(shaped) else {}
    if _size({**extras_before, **shaped, **extras_after}) <= MAX_RESPONSE_BYTES:
        return {**extras_before, **shaped, **extras_after}
    omitted: list[str] = []
    for name in sorted(shaped, key=lambda k: _size(shaped[k]), reverse=True):
        if name == "jnid" or _size({**extras_before, **shaped, **extras_after}) <= MAX_RESPONSE_BYTES - 400:
            continue
        omitted.append(name)
        shaped.pop(name)
    notice = (
        f"Fields {', '.join(omitted)} omitted to stay under {MAX_RESPONSE_BYTES // 1024} KB; ask for them with fields."
    )
    return {**extras_before, **shaped, **extras_after, "truncated": {"notice": notice, "omitted_fields": omitted}}


def write_result(record: Mapping[str, Any], locale: AccountLocale | None = None, **extra: Any) -> Record:
    """Return a write's answer `{record, ...extra}`: the record as JobNimbus stored it, its timestamps in ISO 8601
    with the unix value beside them (a program may act on it), and `currency` when it holds money."""
    locale = locale or current_locale()
    shown = readable(record, locale.zone, full=True)
    body: Record = {"record": shown, **{k: v for k, v in extra.items() if v is not None}}
    if has_money(shown):
        body["currency"] = locale.currency
    return body


def _encode(value: Any) -> bytes:
    # orjson: compact, UTF-8 unescaped, and an order of magnitude faster than json on every cached answer.
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)


def to_text(structured: Mapping[str, Any]) -> str:
    """Return the JSON text a result carries in `content` (the same data as `structuredContent`)."""
    return _encode(structured).decode()


def _size(value: Any) -> int:
    return len(_encode(value if isinstance(value, dict) else {"v": value}))
