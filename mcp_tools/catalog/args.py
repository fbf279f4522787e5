"""The arguments every list tool shares, declared by one function, and their translation to JobNimbus.

`list_schema()` builds the JSON Schema (so every list tool validates `from`, `size`, ... the same way) and
`list_query()` turns validated arguments into the keyword arguments of `JobNimbusClient.list`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time
from typing import Any

from mcp_tools.jobnimbus.filters import Clause, must, range_, term

DEFAULT_SIZE = 20
MAX_SIZE = 100
VERBOSITIES = ("summary", "compact", "detailed", "raw")
# JobNimbus ids (jnid) are short opaque strings; bound them so a pasted blob is refused early.
JNID_SCHEMA: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": r"^[A-Za-z0-9_\-]+$"}
# Quantities and amounts of money: finite (validation refuses inf and nan for every number) and at most a billion, so
# the totals of an estimate's 200 items (quantity x price) stay finite and sendable (below 2e20).
AMOUNT_MAX = 1_000_000_000
# Arguments that only shape the answer: they never reach JobNimbus nor split cache entries.
SHAPING_ARGS = ("verbosity", "fields")


class ArgumentError(ValueError):
    """An argument passed the schema but its value cannot be used; the message names the argument."""


def jnid_schema(description: str) -> dict[str, Any]:
    """Return the schema of an argument holding a JobNimbus record id."""
    return {**JNID_SCHEMA, "description": description}


def amount_schema(description: str) -> dict[str, Any]:
    """Return the schema of a quantity or an amount of money: a finite number from 0 to AMOUNT_MAX."""
    return {"type": "number", "minimum": 0, "maximum": AMOUNT_MAX, "description": description}


def list_schema(
    *,
    date_field: str = "date_created",
    extra: Mapping[str, Any] | None = None,
    required: Sequence[str] = (),
    related: bool = True,
) -> dict[str, Any]:
    """Return the input schema of a list tool: the shared list arguments plus `extra` ones."""
    props: dict[str, Any] = {
        "from": {"type": "integer", "minimum": 0, "default": 0, "description": "Offset of the first record (0-based)."},
        "size": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_SIZE,
            "default": DEFAULT_SIZE,
            "description": f"Records per page, 1-{MAX_SIZE}.",
        },
        "sort_field": {
            "type": "string",
            "minLength": 1,
            "maxLength": 64,
            "description": "Field to sort by (JobNimbus default: date_created).",
        },
        "sort_direction": {"type": "string", "enum": ["asc", "desc"], "description": "Sort order (default desc)."},
        "date_from": _date_schema(
            f"Only records with {date_field} on or after this (ISO date/datetime or unix seconds)."
        ),
        "date_to": _date_schema(
            f"Only records with {date_field} on or before this (ISO date/datetime or unix seconds)."
        ),
        "status": {
            "type": "string",
            "minLength": 1,
            "maxLength": 100,
            "description": "Exact status name, e.g. 'Lead'.",
        },
        "verbosity": {
            "type": "string",
            "enum": list(VERBOSITIES),
            "default": "compact",
            "description": "summary: ids, names, numbers, status; compact: plus the useful fields; "
            "detailed: every non-empty field; raw: the records exactly as JobNimbus sent them.",
        },
        "fields": {
            "type": "array",
            "items": {"type": "string", "minLength": 1, "maxLength": 64},
            "maxItems": 50,
            "uniqueItems": True,
            "description": "Return only these fields of each record (jnid is always kept); overrides verbosity.",
        },
    }
    if related:
        props["related_to"] = jnid_schema("Only records linked to this parent record (a contact or job jnid).")
    props.update(extra or {})
    return {"type": "object", "properties": props, "required": list(required), "additionalProperties": False}


def _date_schema(description: str) -> dict[str, Any]:
    return {"type": ["string", "integer"], "minimum": 0, "maxLength": 40, "description": description}


def list_query(
    args: Mapping[str, Any], *, date_field: str = "date_created", clauses: Sequence[Clause] = ()
) -> dict[str, Any]:
    """Return the `JobNimbusClient.list` keyword arguments for validated list `args` plus extra filter `clauses`."""
    query: dict[str, Any] = {"size": args["size"], "from_": args["from"]}
    for name in ("sort_field", "sort_direction"):
        if args.get(name) is not None:
            query[name] = args[name]
    found = [*shared_clauses(args, date_field), *clauses]
    if found:
        query["filter"] = must(*found)
    return query


def shared_clauses(args: Mapping[str, Any], date_field: str) -> list[Clause]:
    """Return the filter clauses the shared arguments (`date_from`, `date_to`, `status`, `related_to`) ask for."""
    clauses: list[Clause] = []
    low, high = to_epoch(args, "date_from"), to_epoch(args, "date_to", end_of_day=True)
    if low is not None and high is not None and low > high:
        raise ArgumentError(
            f"Argument 'date_from' must not be after 'date_to' ({args['date_from']} > {args['date_to']})"
        )
    if low is not None or high is not None:
        clauses.append(range_(date_field, gte=low, lte=high))
    if args.get("status"):
        clauses.append(term("status_name", args["status"]))
    if args.get("related_to"):
        clauses.append(term("related.id", args["related_to"]))
    return clauses


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def to_epoch(args: Mapping[str, Any], name: str, *, end_of_day: bool = False) -> int | None:
    """Return argument `name` (ISO date, ISO datetime or unix seconds) as unix seconds, None when absent.

    A bare date means the whole day: its start for a lower bound, its last second for an upper bound.
    """
    value = args.get(name)
    if value is None:
        return None
    if isinstance(value, int):
        return value
    text = value.strip()
    if text.isdigit():
        return int(text)
    try:
        if _ISO_DATE.match(text):
            day = date.fromisoformat(text)
            moment = datetime.combine(day, time.max if end_of_day else time.min, tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    except ValueError:
        raise ArgumentError(
            f"Argument '{name}' must be an ISO date (2025-01-31), ISO datetime or unix seconds, got {value!r}"
        ) from None
    return int(moment.timestamp())


def upstream_args(args: Mapping[str, Any]) -> dict[str, Any]:
    """Return the arguments that change what JobNimbus is asked (the cache key's part), without shaping ones."""
    return {k: v for k, v in args.items() if k not in SHAPING_ARGS}
