"""The sandbox's `filter` parameter: each clause, date math, the is_active default, and malformed filters."""

from __future__ import annotations

import json
import time

import pytest

from sandbox.query import QueryError, compile_filter, parse_date_math
from tests.fixtures.sandbox import api

NOW = 1_700_000_000


def listing(handle, path, flt, **params):
    """Return the JSON of a filtered list."""
    response = api(handle, "GET", path, params={"filter": json.dumps(flt), "size": 10_000, **params})
    assert response.status_code == 200, response.text
    return response.json()


def test_term_on_status_name(sandbox):
    body = listing(sandbox, "/jobs", {"must": [{"term": {"status_name": "Lost"}}]})
    assert body["count"] > 0
    assert {r["status_name"] for r in body["results"]} == {"Lost"}


def test_term_on_dotted_related_id(sandbox):
    job = api(sandbox, "GET", "/jobs", params={"size": 1, "sort_field": "attachment_count"}).json()["results"][0]
    body = listing(sandbox, "/files", {"must": [{"term": {"related.id": job["jnid"]}}]})
    assert body["count"] == job["attachment_count"] > 0
    assert set(body) == {"count", "files"}


def test_terms_on_jnid(sandbox):
    ids = [r["jnid"] for r in api(sandbox, "GET", "/contacts", params={"size": 3}).json()["results"]]
    body = listing(sandbox, "/contacts", {"must": [{"terms": {"jnid": ids}}]})
    assert sorted(r["jnid"] for r in body["results"]) == sorted(ids)


def test_range_with_numbers(sandbox):
    all_jobs = api(sandbox, "GET", "/jobs", params={"size": 10_000}).json()["results"]
    stamps = sorted(r["date_created"] for r in all_jobs)
    low, high = stamps[100], stamps[200]
    body = listing(sandbox, "/jobs", {"must": [{"range": {"date_created": {"gte": low, "lte": high}}}]})
    assert body["count"] == sum(low <= s <= high for s in stamps)
    strict = listing(sandbox, "/jobs", {"must": [{"range": {"date_created": {"gt": low, "lt": high}}}]})
    assert strict["count"] == sum(low < s < high for s in stamps)


def test_range_with_date_math(sandbox):
    week_ago = int(time.time()) - 7 * 86_400
    body = listing(sandbox, "/activities", {"must": [{"range": {"date_updated": {"gte": "now-7d"}}}]})
    assert body["count"] > 0
    # The server evaluates `now` a moment after this test did, so its window can only start later.
    assert all(r["date_updated"] >= week_ago for r in body["activity"])
    assert listing(sandbox, "/activities", {"must": [{"range": {"date_updated": {"gt": "now+1h"}}}]})["count"] == 0


@pytest.mark.parametrize(
    ("expression", "expected"),
    [("now", NOW), ("now-7d", NOW - 604_800), ("now+1h", NOW + 3600), ("now-1d-2h", NOW - 93_600), ("123", 123)],
)
def test_date_math_values(expression, expected):
    assert parse_date_math(expression, NOW) == expected


def test_date_math_rounding():
    assert parse_date_math("now/d", NOW) == NOW - NOW % 86_400


def test_wildcard_is_case_insensitive(sandbox):
    body = listing(sandbox, "/contacts", {"must": [{"wildcard": {"display_name": "*SMITH*"}}]})
    assert body["count"] > 0
    assert all("smith" in r["display_name"].lower() for r in body["results"])


def test_match_finds_any_word(sandbox):
    body = listing(sandbox, "/jobs", {"must": [{"match": {"name": "gutter"}}]})
    assert body["count"] > 0
    assert all("gutter" in r["name"].lower() for r in body["results"])


def test_must_not_and_should():
    records = [{"jnid": "a", "n": 1}, {"jnid": "b", "n": 2}, {"jnid": "c", "n": 3}]
    keep = compile_filter({"must_not": [{"term": {"n": 2}}]}, NOW)
    assert [r["jnid"] for r in records if keep(r)] == ["a", "c"]
    either = compile_filter({"should": [{"term": {"n": 1}}, {"term": {"n": 3}}]}, NOW)
    assert [r["jnid"] for r in records if either(r)] == ["a", "c"]


def test_lists_hide_deleted_records_unless_the_filter_asks(clean_sandbox):
    job = api(clean_sandbox, "GET", "/jobs", params={"size": 1}).json()["results"][0]
    active_before = api(clean_sandbox, "GET", "/jobs", params={"size": 0}).json()["count"]
    assert api(clean_sandbox, "PUT", f"/jobs/{job['jnid']}", json={"is_active": False}).status_code == 200
    assert api(clean_sandbox, "GET", "/jobs", params={"size": 0}).json()["count"] == active_before - 1
    deleted = listing(clean_sandbox, "/jobs", {"must": [{"term": {"is_active": False}}]})
    assert job["jnid"] in {r["jnid"] for r in deleted["results"]}
    assert all(r["is_active"] is False for r in deleted["results"])


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("{not json", "not valid JSON"),
        ('["must"]', "JSON object"),
        ('{"must": [{"fuzzy": {"name": "x"}}]}', "unknown clause 'fuzzy'"),
        ('{"mustnt": []}', "unknown filter key"),
        ('{"must": [{"term": {"a": 1, "b": 2}}]}', "exactly one field"),
        ('{"must": [{"terms": {"jnid": "abc"}}]}', "list of values"),
        ('{"must": [{"range": {"date_created": {"after": 5}}}]}', "unknown operator"),
        ('{"must": [{"range": {"date_created": {"gte": "yesterday"}}}]}', "date math"),
        ('{"must": [{"term": {"status_name": ["a"]}}]}', "string, number or boolean"),
    ],
)
def test_malformed_filter_is_400_saying_what_is_wrong(sandbox, raw, says):
    response = api(sandbox, "GET", "/jobs", params={"filter": raw})
    assert response.status_code == 400
    assert says in response.json()["message"]


def test_compile_filter_rejects_non_object():
    with pytest.raises(QueryError, match="JSON object"):
        compile_filter([], NOW)
