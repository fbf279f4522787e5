"""Build JobNimbus list filters: the body of an Elasticsearch bool query without the `bool` wrapper.

Only the clauses JobNimbus is known to accept are offered (`must` of `term`, `terms`, `range`,
`wildcard`, `match`); `should`/`must_not` are not confirmed by any source, so they are not built here.

    must(term("related.id", job_jnid), range_("date_updated", gte="now-7d"))
    → {"must": [{"term": {"related.id": "..."}}, {"range": {"date_updated": {"gte": "now-7d"}}}]}
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

Scalar = str | int | float | bool
Bound = int | float | str  # unix seconds, or date math such as "now-7d"
Clause = dict[str, Any]
Filter = dict[str, list[Clause]]


def must(*clauses: Clause) -> Filter:
    """Return a filter that every one of `clauses` must match."""
    if not clauses:
        raise ValueError("must() needs at least one clause")
    return {"must": list(clauses)}


def term(field: str, value: Scalar) -> Clause:
    """Return a clause matching records whose `field` equals `value` exactly."""
    if not isinstance(value, Scalar):
        raise ValueError(f"term({field!r}) needs a string, number or boolean, got {type(value).__name__}")
    return {"term": {_field(field): value}}


def terms(field: str, values: Iterable[Scalar]) -> Clause:
    """Return a clause matching records whose `field` equals any of `values`."""
    if isinstance(values, str | bytes):
        raise ValueError(f"terms({field!r}) needs a list of values, not one string; use term() for one")
    listed = list(values)
    if not listed:
        raise ValueError(f"terms({field!r}) needs at least one value")
    return {"terms": {_field(field): listed}}


def range_(field: str, gte: Bound | None = None, lte: Bound | None = None) -> Clause:
    """Return a clause matching `gte <= field <= lte`; either bound may be left open, not both."""
    bounds = {name: bound for name, bound in (("gte", gte), ("lte", lte)) if bound is not None}
    if not bounds:
        raise ValueError(f"range_({field!r}) needs gte, lte or both")
    return {"range": {_field(field): bounds}}


def wildcard(field: str, text: str) -> Clause:
    """Return a clause matching records whose `field` contains `text`.

    `text` without `*`/`?` is wrapped as `*text*` (what JobNimbus users do for "contains"); text that already
    has a wildcard is sent as the pattern it is.
    """
    if not text:
        raise ValueError(f"wildcard({field!r}) needs non-empty text")
    pattern = text if ("*" in text or "?" in text) else f"*{text}*"
    return {"wildcard": {_field(field): pattern}}


def match(field: str, text: str) -> Clause:
    """Return a full-text clause matching records whose `field` matches `text`."""
    if not text:
        raise ValueError(f"match({field!r}) needs non-empty text")
    return {"match": {_field(field): text}}


def to_query_param(filter_: Mapping[str, Any]) -> str:
    """Return the filter as the compact JSON the `filter` query parameter carries."""
    return json.dumps(filter_, separators=(",", ":"), sort_keys=True)


def _field(name: str) -> str:
    if not name or not isinstance(name, str):
        raise ValueError("a filter clause needs a field name")
    return name
