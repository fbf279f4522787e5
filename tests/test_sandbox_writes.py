"""Creates and updates: required fields, workflow names, partial PUT, delete, date_updated and parent counters."""

from __future__ import annotations

import time

import pytest
import requests

from tests.fixtures.sandbox import api

CONTACT = {"record_type_name": "Customer", "status_name": "Lead", "first_name": "Ada", "last_name": "Lovelace"}


def a_job(handle):
    """Return the newest active job."""
    return api(handle, "GET", "/jobs", params={"size": 1}).json()["results"][0]


def valid_bodies(job_id):
    """Return a minimal valid create body per writable path."""
    related = [{"id": job_id}]
    return {
        "/contacts": dict(CONTACT),
        "/jobs": {"name": "Roof", "record_type_name": "Retail", "status_name": "Lead"},
        "/tasks": {
            "title": "Inspect",
            "date_start": 1_700_000_000,
            "record_type_name": "Inspection",
            "related": related,
        },
        "/activities": {"note": "Called the homeowner", "related": related},
        "/files": {"filename": "a.txt", "data": "aGVsbG8=", "related": related},
        "/v2/estimates": {"related": related, "items": [{"name": "Shingles", "quantity": 2, "price": 10.0}]},
        "/v2/invoices": {"related": related},
        "/v2/workorders": {"record_type_name": "Work Order", "status_name": "Open", "related": related},
        "/v2/materialorders": {"related": related},
    }


@pytest.mark.parametrize(
    "path", ["/contacts", "/jobs", "/tasks", "/activities", "/files", "/v2/estimates", "/v2/invoices",
             "/v2/workorders", "/v2/materialorders"],
)  # fmt: skip
def test_create_each_writable_resource(clean_sandbox, path):
    job = a_job(clean_sandbox)
    response = api(clean_sandbox, "POST", path, json=valid_bodies(job["jnid"])[path])
    assert response.status_code == 200, response.text
    record = response.json()
    assert len(record["jnid"]) == 24
    assert record["date_updated"] >= record["date_created"]
    envelope = {"/activities": "activity", "/files": "files"}.get(path, "results")
    listed = api(clean_sandbox, "GET", path, params={"size": 1}).json()[envelope][0]
    assert listed["jnid"] == record["jnid"]


@pytest.mark.parametrize(
    ("path", "missing"),
    [("/contacts", "record_type_name"), ("/contacts", "status_name"), ("/jobs", "name"), ("/jobs", "status_name"),
     ("/tasks", "title"), ("/tasks", "date_start"), ("/tasks", "record_type_name"), ("/activities", "note"),
     ("/files", "data"), ("/v2/estimates", "related"), ("/v2/workorders", "status_name")],
)  # fmt: skip
def test_create_without_a_required_field_is_400_naming_it(clean_sandbox, path, missing):
    body = valid_bodies(a_job(clean_sandbox)["jnid"])[path]
    body.pop(missing)
    response = api(clean_sandbox, "POST", path, json=body)
    assert response.status_code == 400
    assert missing in response.json()["message"]


def test_contact_needs_some_name(clean_sandbox):
    body = {"record_type_name": "Customer", "status_name": "Lead"}
    response = api(clean_sandbox, "POST", "/contacts", json=body)
    assert response.status_code == 400
    assert "first_name" in response.json()["message"]


@pytest.mark.parametrize(
    ("change", "says"),
    [({"record_type_name": "Nope"}, "record_type_name 'Nope'"), ({"status_name": "Nope"}, "status_name 'Nope'")],
)
def test_unknown_workflow_or_status_is_400(clean_sandbox, change, says):
    response = api(clean_sandbox, "POST", "/contacts", json={**CONTACT, **change})
    assert response.status_code == 400
    assert says in response.json()["message"]


def test_unknown_related_id_is_400(clean_sandbox):
    body = {"note": "x", "related": [{"id": "nosuchrecord000000000000"}]}
    response = api(clean_sandbox, "POST", "/activities", json=body)
    assert response.status_code == 400
    assert "nosuchrecord000000000000" in response.json()["message"]


def test_bad_json_body_is_400(clean_sandbox):
    response = api(clean_sandbox, "POST", "/contacts", data="{nope", headers={"Content-Type": "application/json"})
    assert response.status_code == 400


def test_read_only_resources_refuse_writes(clean_sandbox):
    assert api(clean_sandbox, "POST", "/v2/products", json={"name": "x"}).status_code == 405
    assert api(clean_sandbox, "POST", "/payments", json={"amount": 1}).status_code == 405


def test_put_is_a_partial_update_and_moves_date_updated(clean_sandbox):
    job = api(clean_sandbox, "GET", "/jobs", params={"size": 1, "sort_direction": "asc"}).json()["results"][0]
    before = int(time.time())
    updated = api(clean_sandbox, "PUT", f"/jobs/{job['jnid']}", json={"description": "new decking"}).json()
    assert updated["description"] == "new decking"
    assert updated["date_updated"] >= max(before, job["date_updated"])
    unchanged = {k: v for k, v in updated.items() if k not in ("description", "date_updated")}
    assert unchanged == {k: v for k, v in job.items() if k not in ("description", "date_updated")}
    assert api(clean_sandbox, "GET", f"/jobs/{job['jnid']}").json() == updated


def test_put_status_resolves_its_id_and_stamps_the_change(clean_sandbox):
    job = a_job(clean_sandbox)
    target = "Lost" if job["status_name"] != "Lost" else "Lead"
    updated = api(clean_sandbox, "PUT", f"/jobs/{job['jnid']}", json={"status_name": target}).json()
    assert updated["status_name"] == target
    assert updated["status"] != job["status"]
    assert updated["date_status_change"] == updated["date_updated"]
    bad = api(clean_sandbox, "PUT", f"/jobs/{job['jnid']}", json={"status_name": "Nope"})
    assert bad.status_code == 400


def test_put_cannot_change_read_only_fields(clean_sandbox):
    job = a_job(clean_sandbox)
    same = api(clean_sandbox, "PUT", f"/jobs/{job['jnid']}", json={"jnid": job["jnid"], "name": "ok"})
    assert same.status_code == 200
    other = api(clean_sandbox, "PUT", f"/jobs/{job['jnid']}", json={"jnid": "x" * 24})
    assert other.status_code == 400
    assert "jnid" in other.json()["message"]


def test_put_unknown_record_is_404(clean_sandbox):
    assert api(clean_sandbox, "PUT", "/jobs/nosuchjob000000000000000", json={"name": "x"}).status_code == 404


def test_is_active_false_deletes_but_get_by_id_still_answers(clean_sandbox):
    contact = api(clean_sandbox, "GET", "/contacts", params={"size": 1}).json()["results"][0]
    response = api(clean_sandbox, "PUT", f"/contacts/{contact['jnid']}", json={"is_active": False})
    assert response.json()["is_active"] is False
    assert api(clean_sandbox, "GET", f"/contacts/{contact['jnid']}").json()["is_active"] is False
    ids = {r["jnid"] for r in api(clean_sandbox, "GET", "/contacts", params={"size": 10_000}).json()["results"]}
    assert contact["jnid"] not in ids


def test_creating_and_deleting_a_child_moves_the_parent(clean_sandbox):
    job = api(clean_sandbox, "GET", "/jobs", params={"size": 1, "sort_direction": "asc"}).json()["results"][0]
    before = int(time.time())
    body = {
        "title": "Inspect",
        "date_start": before,
        "record_type_name": "Inspection",
        "related": [{"id": job["jnid"]}],
    }
    task = api(clean_sandbox, "POST", "/tasks", json=body).json()
    parent = api(clean_sandbox, "GET", f"/jobs/{job['jnid']}").json()
    assert parent["task_count"] == job["task_count"] + 1
    assert parent["date_updated"] >= before > job["date_updated"]
    assert task["primary"]["id"] == job["jnid"]
    assert task["related"][0] == {"id": job["jnid"], "name": job["name"], "number": job["number"], "type": "job"}
    api(clean_sandbox, "PUT", f"/tasks/{task['jnid']}", json={"is_active": False})
    assert api(clean_sandbox, "GET", f"/jobs/{job['jnid']}").json()["task_count"] == job["task_count"]


def test_file_upload_counts_bytes_and_bumps_attachment_count(clean_sandbox):
    job = a_job(clean_sandbox)
    body = {"filename": "hello.txt", "data": "aGVsbG8=", "related": [{"id": job["jnid"]}]}
    created = api(clean_sandbox, "POST", "/files", json=body).json()
    assert created["size"] == 5
    assert "data" not in created
    assert api(clean_sandbox, "GET", f"/jobs/{job['jnid']}").json()["attachment_count"] == job["attachment_count"] + 1
    bad = api(clean_sandbox, "POST", "/files", json={**body, "data": "not base64!"})
    assert bad.status_code == 400


def test_estimate_totals_follow_items(clean_sandbox):
    body = valid_bodies(a_job(clean_sandbox)["jnid"])["/v2/estimates"]
    estimate = api(clean_sandbox, "POST", "/v2/estimates", json=body).json()
    assert estimate["subtotal"] == 20.0
    assert estimate["status_name"] == "Draft"
    assert estimate["status"] == 1


def test_reset_with_data_restores_the_seed(clean_sandbox):
    job = a_job(clean_sandbox)
    api(clean_sandbox, "PUT", f"/jobs/{job['jnid']}", json={"name": "changed"})
    api(clean_sandbox, "POST", "/contacts", json=CONTACT)
    requests.post(clean_sandbox.url + "/__sandbox/reset", json={"data": True}, timeout=5).raise_for_status()
    assert api(clean_sandbox, "GET", f"/jobs/{job['jnid']}").json() == job
