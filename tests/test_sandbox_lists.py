"""The sandbox's list and read endpoints against the documented JobNimbus shapes."""

from __future__ import annotations

import json

import pytest
import requests

from tests.fixtures.sandbox import api

ENVELOPES = [
    ("/contacts", "results"),
    ("/jobs", "results"),
    ("/activities", "activity"),
    ("/tasks", "results"),
    ("/files", "files"),
    ("/v2/estimates", "results"),
    ("/estimates", "results"),
    ("/v2/invoices", "results"),
    ("/v2/workorders", "results"),
    ("/v2/materialorders", "results"),
    ("/v2/products", "results"),
    ("/payments", "results"),
    ("/budgets", "results"),
]


@pytest.mark.parametrize(("path", "envelope"), ENVELOPES)
def test_list_envelope_has_count_of_all_matches_and_a_page(sandbox, path, envelope):
    body = api(sandbox, "GET", path, params={"size": 3}).json()
    assert set(body) == {"count", envelope}
    assert len(body[envelope]) == min(3, body["count"])
    assert body["count"] > 3 or path == "/budgets"


def test_default_size_is_1000(sandbox):
    body = api(sandbox, "GET", "/activities").json()
    assert body["count"] > 1000
    assert len(body["activity"]) == 1000


def test_from_pages_without_overlap_and_count_stays_total(sandbox):
    first = api(sandbox, "GET", "/jobs", params={"size": 50, "from": 0}).json()
    second = api(sandbox, "GET", "/jobs", params={"size": 50, "from": 50}).json()
    assert first["count"] == second["count"]
    ids = [r["jnid"] for r in first["results"] + second["results"]]
    assert len(set(ids)) == 100
    everything = api(sandbox, "GET", "/jobs", params={"size": 10_000}).json()
    assert [r["jnid"] for r in everything["results"][:100]] == ids
    assert len(everything["results"]) == everything["count"]


def test_default_sort_is_date_created_desc(sandbox):
    rows = api(sandbox, "GET", "/contacts", params={"size": 200}).json()["results"]
    created = [r["date_created"] for r in rows]
    assert created == sorted(created, reverse=True)


@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_sort_field_and_direction(sandbox, direction):
    params = {"size": 300, "sort_field": "display_name", "sort_direction": direction}
    names = [r["display_name"].lower() for r in api(sandbox, "GET", "/contacts", params=params).json()["results"]]
    assert names == sorted(names, reverse=direction == "desc")


def test_bad_sort_direction_and_size_are_400(sandbox):
    bad_dir = api(sandbox, "GET", "/jobs", params={"sort_direction": "sideways"})
    assert bad_dir.status_code == 400
    assert "sort_direction" in bad_dir.json()["message"]
    bad_size = api(sandbox, "GET", "/jobs", params={"size": "ten"})
    assert bad_size.status_code == 400
    assert "size" in bad_size.json()["message"]


def test_fields_projects_and_keeps_jnid(sandbox):
    rows = api(sandbox, "GET", "/jobs", params={"size": 5, "fields": "name,status_name"}).json()["results"]
    assert rows
    assert all(set(r) == {"jnid", "name", "status_name"} for r in rows)


def test_single_get_returns_the_bare_record(sandbox):
    job = api(sandbox, "GET", "/jobs", params={"size": 1}).json()["results"][0]
    one = api(sandbox, "GET", f"/jobs/{job['jnid']}")
    assert one.status_code == 200
    assert one.json() == job
    estimate = api(sandbox, "GET", "/v2/estimates", params={"size": 1}).json()["results"][0]
    assert api(sandbox, "GET", f"/v2/estimates/{estimate['jnid']}").json()["jnid"] == estimate["jnid"]


def test_missing_record_is_404(sandbox):
    assert api(sandbox, "GET", "/jobs/doesnotexist0000000000000").status_code == 404


def test_file_get_redirects_to_a_signed_download(sandbox):
    attachment = api(sandbox, "GET", "/files", params={"size": 1}).json()["files"][0]
    response = api(sandbox, "GET", f"/files/{attachment['jnid']}")
    assert response.status_code == 302
    location = response.headers["Location"]
    assert "Signature=" in location
    assert "Expires=" in location
    download = requests.get(location, timeout=5)
    assert download.status_code == 200
    assert attachment["filename"].encode() in download.content
    tampered = requests.get(location.replace("Signature=", "Signature=0"), timeout=5)
    assert tampered.status_code == 403


@pytest.mark.parametrize("path", ["/notes", "/documents", "/orders", "/credit_memos", "/refunds", "/v2/nothing"])
def test_unknown_paths_are_plain_404(sandbox, path):
    response = api(sandbox, "GET", path)
    assert response.status_code == 404
    assert response.text == "Not Found"


def test_payments_and_budgets_have_no_single_get(sandbox):
    payment = api(sandbox, "GET", "/payments", params={"size": 1}).json()["results"][0]
    assert api(sandbox, "GET", f"/payments/{payment['jnid']}").status_code == 404


def test_account_users_envelope(sandbox):
    body = api(sandbox, "GET", "/account/users").json()
    assert set(body) == {"users", "date_updated"}
    user = body["users"][0]
    assert {"id", "first_name", "last_name", "email", "is_active", "calendar_color", "image_url"} <= set(user)


def test_account_settings_workflows(sandbox):
    body = api(sandbox, "GET", "/account/settings").json()
    assert set(body) == {"workflows", "fileTypes", "taskTypes", "activityTypes", "sources"}
    assert {w["object_type"] for w in body["workflows"]} == {"contact", "job", "workorder"}
    status = body["workflows"][0]["status"][0]
    assert set(status) == {"id", "name", "is_lead", "is_closed", "is_active", "order"}


def test_children_link_to_their_job_through_related(sandbox):
    job = api(sandbox, "GET", "/jobs", params={"size": 1, "sort_field": "task_count"}).json()["results"][0]
    assert job["task_count"] > 0
    flt = json.dumps({"must": [{"term": {"related.id": job["jnid"]}}]})
    tasks = api(sandbox, "GET", "/tasks", params={"filter": flt}).json()
    assert tasks["count"] >= job["task_count"]
    assert all(any(r["id"] == job["jnid"] for r in t["related"]) for t in tasks["results"])


def test_records_carry_jobnimbus_ids_and_timestamps(sandbox):
    rows = api(sandbox, "GET", "/contacts", params={"size": 50}).json()["results"]
    for row in rows:
        assert len(row["jnid"]) == 24
        assert row["jnid"].isalnum()
        assert row["jnid"] == row["jnid"].lower()
        assert isinstance(row["recid"], int)
        assert row["date_updated"] >= row["date_created"]
        assert row["type"] == "contact"


def test_stats_template_ids(clean_sandbox):
    job = api(clean_sandbox, "GET", "/jobs", params={"size": 1}).json()["results"][0]
    api(clean_sandbox, "GET", f"/jobs/{job['jnid']}")
    api(clean_sandbox, "GET", "/notes")
    stats = requests.get(clean_sandbox.url + "/__sandbox/stats", timeout=5).json()
    assert stats == {
        "total": 3,
        "requests": {"GET /api1/jobs": 1, "GET /api1/jobs/{jnid}": 1, "GET /api1/notes": 1},
    }
