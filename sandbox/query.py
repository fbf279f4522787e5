"""Filter, sort, page and project records the way JobNimbus list endpoints do.

`filter` is the body of an Elasticsearch bool query without the `bool` wrapper. Supported:
- top-level keys `must`, `filter` (both: every clause matches), `must_not` (no clause matches) and `should`
  (at least one matches when there is no `must`/`filter`; otherwise ignored, as ES only scores it);
  each takes a clause or a list of clauses;
- clauses `term`, `terms`, `range` (gte/lte/gt/lt with numbers or date math `now`, `now-7d`, `now+1h`, `now/d`),
  `wildcard` (`*`/`?`, case-insensitive), `match` (any word of the query among the field's words, case-insensitive,
  ES's default OR operator), `exists`, and a nested `bool`.
Fields may be dotted (`related.id`, `primary.id`, `geo.lat`); a list along the path matches if any element does.
Anything else is a `QueryError` whose message says what is wrong.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from typing import Any

Record = dict[str, Any]
Predicate = Callable[[Record], bool]

BOOL_KEYS = ("must", "filter", "should", "must_not")
RANGE_OPS: dict[str, Callable[[float, float], bool]] = {
    "gte": lambda a, b: a >= b,
    "lte": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "lt": lambda a, b: a < b,
}
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800, "M": 2_592_000, "y": 31_536_000}
DATE_MATH = re.compile(r"^now((?:[+-]\d+[smhdwMy])*)(?:/([smhdwMy]))?$")
DATE_STEP = re.compile(r"([+-])(\d+)([smhdwMy])")
WORD = re.compile(r"\w+")
MAX_SIZE = 10_000


class QueryError(ValueError):
    """A list parameter or filter the sandbox cannot accept (answered with 400 and this message)."""


def field_values(record: Record, path: str) -> list[Any]:
    """Return every value at a dotted path, flattening lists met on the way."""
    values: list[Any] = [record]
    for part in path.split("."):
        found: list[Any] = []
        for value in values:
            if isinstance(value, dict) and part in value:
                found.append(value[part])
        values = [v for item in found for v in (item if isinstance(item, list) else [item])]
    return values


def _same(a: Any, b: Any) -> bool:
    """Return whether a stored value equals a term value, tolerating "12" vs 12 and "true" vs True."""
    if a == b and type(a) is type(b):
        return True
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)) or a is None or b is None:
        return False
    return str(a).lower() == str(b).lower()


def _one_field(name: str, body: Any) -> tuple[str, Any]:
    """Return the single (field, spec) pair of a clause body or raise."""
    if not isinstance(body, dict) or len(body) != 1:
        raise QueryError(f"'{name}' must be an object with exactly one field, got {body!r}")
    field, spec = next(iter(body.items()))
    if not isinstance(field, str) or not field:
        raise QueryError(f"'{name}' needs a field name")
    return field, spec


def _scalar(name: str, spec: Any, key: str) -> Any:
    """Return the value of `{"field": v}` or `{"field": {key: v}}`."""
    if isinstance(spec, dict):
        if key not in spec:
            raise QueryError(f"'{name}' needs '{key}' in {spec!r}")
        spec = spec[key]
    if isinstance(spec, (dict, list)) or spec is None:
        raise QueryError(f"'{name}' value must be a string, number or boolean, got {spec!r}")
    return spec


def _term(body: Any, _now: int) -> Predicate:
    field, spec = _one_field("term", body)
    value = _scalar("term", spec, "value")
    return lambda r: any(_same(v, value) for v in field_values(r, field))


def _terms(body: Any, _now: int) -> Predicate:
    field, spec = _one_field("terms", body)
    if not isinstance(spec, list) or not all(not isinstance(v, (dict, list)) for v in spec):
        raise QueryError(f"'terms' on '{field}' needs a list of values, got {spec!r}")
    return lambda r: any(_same(v, want) for v in field_values(r, field) for want in spec)


def parse_date_math(value: str, now: int) -> float:
    """Return unix seconds for `now`, `now-7d`, `now+1h/d`, or a numeric string."""
    try:
        return float(value)
    except ValueError:
        pass
    found = DATE_MATH.match(value.strip())
    if not found:
        raise QueryError(f"range value {value!r} is neither a number nor date math like 'now-7d'")
    result = now
    for sign, amount, unit in DATE_STEP.findall(found.group(1)):
        result += (1 if sign == "+" else -1) * int(amount) * UNITS[unit]
    if found.group(2):
        result -= result % UNITS[found.group(2)]
    return float(result)


def _bound(field: str, op: str, value: Any, now: int) -> float:
    """Return a range bound as a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise QueryError(f"range '{op}' on '{field}' must be a number or date math, got {value!r}")
    return parse_date_math(value, now) if isinstance(value, str) else float(value)


def _range(body: Any, now: int) -> Predicate:
    field, spec = _one_field("range", body)
    if not isinstance(spec, dict) or not spec:
        raise QueryError(f"'range' on '{field}' needs an object of gte/lte/gt/lt, got {spec!r}")
    ignored = {"format", "time_zone"}
    unknown = set(spec) - set(RANGE_OPS) - ignored
    if unknown:
        raise QueryError(f"'range' on '{field}' has unknown operator(s) {sorted(unknown)}; use gte, lte, gt, lt")
    bounds = [(RANGE_OPS[op], _bound(field, op, v, now)) for op, v in spec.items() if op not in ignored]

    def matches(record: Record) -> bool:
        numbers = [v for v in field_values(record, field) if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return any(all(test(v, b) for test, b in bounds) for v in numbers)

    return matches


def _wildcard(body: Any, _now: int) -> Predicate:
    field, spec = _one_field("wildcard", body)
    pattern = _scalar("wildcard", spec, "value")
    regex = re.compile(
        "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in str(pattern)),
        re.IGNORECASE | re.DOTALL,
    )
    return lambda r: any(isinstance(v, str) and regex.fullmatch(v) for v in field_values(r, field))


def _match(body: Any, _now: int) -> Predicate:
    field, spec = _one_field("match", body)
    words = set(WORD.findall(str(_scalar("match", spec, "query")).lower()))
    if not words:
        raise QueryError(f"'match' on '{field}' needs at least one word")
    return lambda r: any(words & set(WORD.findall(str(v).lower())) for v in field_values(r, field) if v is not None)


def _exists(body: Any, _now: int) -> Predicate:
    if not isinstance(body, dict) or not isinstance(body.get("field"), str):
        raise QueryError(f"'exists' needs {{\"field\": name}}, got {body!r}")
    field = body["field"]
    return lambda r: any(v not in (None, "") for v in field_values(r, field))


def _bool(body: Any, now: int) -> Predicate:
    return compile_filter(body, now)


CLAUSES: dict[str, Callable[[Any, int], Predicate]] = {
    "term": _term,
    "terms": _terms,
    "range": _range,
    "wildcard": _wildcard,
    "match": _match,
    "exists": _exists,
    "bool": _bool,
}


def _clause(clause: Any, now: int) -> Predicate:
    """Compile one `{"<kind>": {...}}` clause."""
    if not isinstance(clause, dict) or len(clause) != 1:
        raise QueryError(f"each clause must be an object with one key such as 'term' or 'range', got {clause!r}")
    kind, body = next(iter(clause.items()))
    if kind not in CLAUSES:
        raise QueryError(f"unknown clause '{kind}'; supported: {', '.join(CLAUSES)}")
    return CLAUSES[kind](body, now)


def _clauses(value: Any, now: int) -> list[Predicate]:
    """Compile a clause or a list of clauses."""
    items = value if isinstance(value, list) else [value]
    return [_clause(item, now) for item in items]


def compile_filter(spec: Any, now: int | None = None) -> Predicate:
    """Return a predicate for a bool-query body; raise QueryError on anything malformed."""
    if not isinstance(spec, dict):
        raise QueryError(f'filter must be a JSON object like {{"must": [...]}}, got {type(spec).__name__}')
    unknown = set(spec) - set(BOOL_KEYS) - {"minimum_should_match"}
    if unknown:
        raise QueryError(f"unknown filter key(s) {sorted(unknown)}; use must, filter, should, must_not")
    stamp = int(time.time()) if now is None else now
    required = _clauses(spec.get("must", []), stamp) + _clauses(spec.get("filter", []), stamp)
    excluded = _clauses(spec.get("must_not", []), stamp)
    optional = _clauses(spec.get("should", []), stamp)
    need_should = bool(optional) and not required

    def matches(record: Record) -> bool:
        if not all(p(record) for p in required) or any(p(record) for p in excluded):
            return False
        return not need_should or any(p(record) for p in optional)

    return matches


def mentions_field(spec: Any, field: str) -> bool:
    """Return whether a filter has any clause on `field` (used for the is_active default)."""
    if isinstance(spec, dict):
        return field in spec or any(mentions_field(v, field) for v in spec.values()) or spec.get("field") == field
    if isinstance(spec, list):
        return any(mentions_field(v, field) for v in spec)
    return False


def _sort_key(field: str) -> Callable[[Record], tuple[int, Any]]:
    """Return a key ordering numbers, then strings, then the rest; missing values sort as the lowest."""

    def key(record: Record) -> tuple[int, Any]:
        values = field_values(record, field)
        value = values[0] if values else None
        if isinstance(value, bool) or value is None:
            return (0, int(bool(value)))
        if isinstance(value, (int, float)):
            return (1, value)
        return (2, str(value).lower())

    return key


def sort_records(records: list[Record], field: str, direction: str) -> list[Record]:
    """Return records sorted by a field, ties broken by recid so pages are stable."""
    if direction not in ("asc", "desc"):
        raise QueryError(f"sort_direction must be 'asc' or 'desc', got {direction!r}")
    by_field = _sort_key(field)
    return sorted(records, key=lambda r: (by_field(r), r.get("recid", 0)), reverse=direction == "desc")


def parse_int(name: str, raw: str | None, default: int, maximum: int | None = None) -> int:
    """Return a non-negative integer query parameter."""
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise QueryError(f"'{name}' must be a non-negative integer, got {raw!r}") from None
    if value < 0 or (maximum is not None and value > maximum):
        limit = f" at most {maximum}" if maximum is not None else ""
        raise QueryError(f"'{name}' must be a non-negative integer{limit}, got {value}")
    return value


def project(record: Record, fields: list[str] | None) -> Record:
    """Return a shallow copy with only the named top-level fields, always keeping jnid."""
    if not fields:
        return dict(record)
    return {k: record[k] for k in ("jnid", *fields) if k in record}


def parse_fields(raw: str | None) -> list[str] | None:
    """Return the field names of a comma-separated `fields` parameter."""
    if not raw:
        return None
    return [f.strip() for f in raw.split(",") if f.strip()]


def select(records: Iterable[Record], predicate: Predicate) -> list[Record]:
    """Return the records matching a predicate."""
    return [r for r in records if predicate(r)]
