"""The seeded dataset: deterministic, linked, scaled, with sane timestamps."""

from __future__ import annotations

import orjson
import pytest

from sandbox.seed import generate

ANCHOR = 1_764_000_000


@pytest.fixture(scope="module")
def data():
    return generate(1, 1.0, ANCHOR)


def test_same_seed_same_bytes(data):
    assert orjson.dumps(generate(1, 1.0, ANCHOR)) == orjson.dumps(data)
    assert orjson.dumps(generate(2, 1.0, ANCHOR)) != orjson.dumps(data)


def test_default_scale_is_a_few_thousand_records_and_scale_multiplies(data):
    total = sum(len(v) for v in data["records"].values())
    assert 2000 <= total <= 10_000
    half = generate(1, 0.5, ANCHOR)
    assert len(half["records"]["jobs"]) == len(data["records"]["jobs"]) // 2


def test_timestamps_in_the_last_two_years_and_updated_after_created(data):
    for records in data["records"].values():
        for rec in records.values():
            assert ANCHOR - 731 * 86_400 <= rec["date_created"] <= rec["date_updated"] <= ANCHOR


def test_links_point_at_existing_records(data):
    ids = {jnid for records in data["records"].values() for jnid in records}
    for records in data["records"].values():
        for rec in records.values():
            assert all(r["id"] in ids for r in rec["related"])
            assert rec["primary"] is None or rec["primary"]["id"] in ids


def test_jobs_have_a_primary_contact_and_counters_match(data):
    contacts = data["records"]["contacts"]
    tasks = list(data["records"]["tasks"].values())
    for job in data["records"]["jobs"].values():
        assert job["primary"]["id"] in contacts
        assert job["task_count"] == sum(t["primary"]["id"] == job["jnid"] for t in tasks)


def test_statuses_belong_to_their_workflow(data):
    flows = {w["name"]: {s["name"] for s in w["status"]} for w in data["settings"]["workflows"]}
    for name in ("contacts", "jobs", "workorders"):
        for rec in data["records"][name].values():
            assert rec["status_name"] in flows[rec["record_type_name"]]


def test_bad_scale_is_refused():
    with pytest.raises(ValueError, match="scale"):
        generate(1, 0, ANCHOR)
