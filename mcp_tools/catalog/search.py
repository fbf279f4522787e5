"""Translate a free-text search query into ONE JobNimbus filter clause, chosen by the query's shape.

JobNimbus documents only `must` (every clause matches), so "name OR phone OR email" cannot be asked in one
call: the shape of the query picks the single field most likely meant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mcp_tools.catalog.args import ArgumentError
from mcp_tools.jobnimbus.filters import Clause, term, wildcard

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_PHONE = re.compile(r"^[+()\d\s.\-]+$")
_ADDRESS = re.compile(r"^\d+\s+\D")
_PHONE_MIN_DIGITS = 7


@dataclass(frozen=True)
class SearchFields:
    """Which field each query shape searches on for one entity; None means the shape falls back to `name`."""

    name: str
    number: str = "number"
    address: str = "address_line1"
    email: str | None = None
    phone: str | None = None


CONTACT_FIELDS = SearchFields(name="display_name", email="email", phone="mobile_phone")
JOB_FIELDS = SearchFields(name="name")
# JobNimbus filters cannot OR fields, so the query's shape picks one; the tools' descriptions say which, briefly.
_SHAPES = "The query's shape picks the field: "
_COMMON_SHAPES = "up to 6 digits → number; house number and words → street address; else name contains it."
SHAPES_DOC = _SHAPES + "an email → email; 7+ digits → mobile phone (any formatting); " + _COMMON_SHAPES
JOB_SHAPES_DOC = _SHAPES + _COMMON_SHAPES


def search_clause(query: str, fields: SearchFields) -> Clause:
    """Return the one clause that searches `fields` for `query`."""
    text = query.strip().strip("*?").strip()
    if not text:
        raise ArgumentError(f"Argument 'query' must contain text to search for, got {query!r}")
    digits = re.sub(r"\D", "", text)
    if fields.email and _EMAIL.match(text):
        return term(fields.email, text.lower())
    if _PHONE.match(text) and digits:
        if len(digits) >= _PHONE_MIN_DIGITS and fields.phone:
            return wildcard(fields.phone, _digits_pattern(text))
        if len(digits) < _PHONE_MIN_DIGITS and digits == text:
            return term(fields.number, text)
    if _ADDRESS.match(text):
        return wildcard(fields.address, text)
    return wildcard(fields.name, text)


def _digits_pattern(text: str) -> str:
    # "555-0142" must find "(404) 555-0142": keep the digit groups, let anything sit between them.
    groups = re.findall(r"\d+", text)
    return "*" + "*".join(groups) + "*"
