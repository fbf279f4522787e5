"""The arguments every list tool shares, declared by one function, and their translation to JobNimbus.

`list_schema()` builds the JSON Schema (so every list tool validates `from`, `size`, ... the same way) and
`list_query()` turns validated arguments into the keyword arguments of `JobNimbusClient.list`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mcp_tools.catalog.notes import note
from mcp_tools.jobnimbus.filters import Clause, must, range_, term
from mcp_tools.timezones import current_locale, read_moment

DEFAULT_SIZE = 20
MAX_SIZE = 100
DEFAULT_SORT_FIELD, DEFAULT_SORT_DIRECTION = "date_created", "desc"  # what JobNimbus sorts by when not told
VERBOSITIES = ("summary", "compact", "detailed", "raw")
# JobNimbus ids (jnid) are short opaque strings; bound them so a pasted blob is refused early.
# One pattern holds the length too: the shortest spelling every provider reads.
JNID_SCHEMA: dict[str, Any] = {"type": "string", "pattern": r"^[A-Za-z0-9_-]{1,64}$"}
# Quantities and amounts of money: finite (validation refuses inf and nan for every number) and at most a billion, so
# the totals of an estimate's 200 items (quantity x price) stay finite and sendable (below 2e20).
AMOUNT_MAX = 1_000_000_000
# Arguments that only shape the answer: they never reach JobNimbus nor split cache entries.
SHAPING_ARGS = ("verbosity", "fields")


class ArgumentError(ValueError):
    """An argument passed the schema but its value cannot be used; the message names the argument."""


def jnid_schema(description: str | None = None) -> dict[str, Any]:
    """Return the schema of an argument holding a JobNimbus record id (described only when the name says too little)."""
    return {**JNID_SCHEMA, "description": description} if description else dict(JNID_SCHEMA)


def amount_schema(description: str | None = None) -> dict[str, Any]:
    """Return the schema of a quantity or an amount of money: a finite number from 0 to AMOUNT_MAX."""
    schema: dict[str, Any] = {"type": "number", "minimum": 0, "maximum": AMOUNT_MAX}
    return {**schema, "description": description} if description else schema


def date_schema(description: str | None = None) -> dict[str, Any]:
    """Return the schema of a date argument: an ISO date or datetime, or unix seconds written as digits.

    One type (a string), so every client and model provider reads it alike; `to_epoch` reads all three forms.
    """
    schema: dict[str, Any] = {"type": "string", "maxLength": 40}
    return {**schema, "description": description} if description else schema


# What the shared list arguments mean is said once, in the server's instructions (LIST_ARGS_DOC) and each list
# tool's description (which date field date_from/date_to filter); the schemas carry types, bounds and defaults only.
LIST_ARGS_DOC = (
    "They page with from/size (pass next_from as from to continue) and sort with sort_field/sort_direction "
    "(default: date_created, desc). date_from/date_to filter date_created unless the tool names another field; they "
    "take an ISO date or datetime (a bare date_to covers its whole day) or unix seconds as digits. status is an exact "
    "status name (get_account_settings lists them); related_to a contact's or job's jnid. verbosity: summary (ids, "
    "names, numbers, status), compact (the default: plus the useful fields), detailed (every non-empty field), raw "
    "(as JobNimbus sent it); fields returns only those fields (jnid always kept) and overrides verbosity."
)
SHAPING_SCHEMAS: dict[str, Any] = {
    "verbosity": {"type": "string", "enum": list(VERBOSITIES), "default": "compact"},
    "fields": {"type": "array", "items": {"type": "string", "maxLength": 64}, "maxItems": 50},
}


def list_schema(
    *,
    date_field: str = "date_created",
    extra: Mapping[str, Any] | None = None,
    required: Sequence[str] = (),
    related: bool = True,
) -> dict[str, Any]:
    """Return the input schema of a list tool: the shared list arguments plus `extra` ones.

    `date_field` is the field date_from/date_to filter; the tool's description names it (see LIST_ARGS_DOC).
    """
    props: dict[str, Any] = {
        "from": {"type": "integer", "minimum": 0, "default": 0},
        "size": {"type": "integer", "minimum": 1, "maximum": MAX_SIZE, "default": DEFAULT_SIZE},
        # JobNimbus's own sort defaults, declared so an explicit default and an omitted one share a cache entry.
        "sort_field": {"type": "string", "minLength": 1, "maxLength": 64, "default": DEFAULT_SORT_FIELD},
        "sort_direction": {"type": "string", "enum": ["asc", "desc"], "default": DEFAULT_SORT_DIRECTION},
        "date_from": date_schema(),
        "date_to": date_schema(),
        "status": {"type": "string", "minLength": 1, "maxLength": 100},
        **SHAPING_SCHEMAS,
    }
    if related:
        props["related_to"] = jnid_schema()
    props.update(extra or {})
    schema: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    return {**schema, "required": list(required)} if required else schema


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


def to_epoch(args: Mapping[str, Any], name: str, *, end_of_day: bool = False) -> int | None:
    """Return argument `name` (ISO date, ISO datetime or unix seconds) as unix seconds, None when absent.

    An offset (or Z) is honoured; a datetime without one is the account's wall-clock time, and a bare date the
    whole day there (its start for a lower bound, its last second for an upper bound): the answer's `notes` say
    which zone and offset were used (`mcp_tools.timezones.read_moment`).
    """
    value = args.get(name)
    if value is None:
        return None
    try:
        moment = read_moment(name, value, current_locale(), end_of_day=end_of_day)
    except ValueError:
        raise ArgumentError(
            f"Argument '{name}' must be an ISO date (2025-01-31), ISO datetime or unix seconds, got {value!r}"
        ) from None
    note(moment.note)
    return moment.epoch


def upstream_args(args: Mapping[str, Any]) -> dict[str, Any]:
    """Return the arguments that change what JobNimbus is asked (the cache key's part), without shaping ones."""
    return {k: v for k, v in args.items() if k not in SHAPING_ARGS}
