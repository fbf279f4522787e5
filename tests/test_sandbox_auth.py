"""API keys: none, bad, the restricted sales profile, and keys added through the control API."""

from __future__ import annotations

import json

import pytest
import requests

from tests.fixtures.sandbox import SANDBOX_ADMIN_KEY, SANDBOX_SALES_KEY, api


@pytest.mark.parametrize("key", [None, "wrongkeywrongkey0001", ""])
def test_missing_or_bad_key_is_401(sandbox, key):
    response = api(sandbox, "GET", "/jobs", key=key)
    assert response.status_code == 401
    assert "Unauthorized" in response.json()["message"]


def test_scheme_must_be_bearer(sandbox):
    response = requests.get(sandbox.base_url + "/jobs", headers={"Authorization": SANDBOX_ADMIN_KEY}, timeout=5)
    assert response.status_code == 401


def test_control_api_needs_no_key(sandbox):
    assert requests.get(sandbox.url + "/__sandbox/health", timeout=5).json() == {"status": "ok"}


def test_sales_key_sees_only_its_reps_contacts_and_jobs(sandbox):
    everyone = api(sandbox, "GET", "/jobs", params={"size": 10_000}).json()
    mine = api(sandbox, "GET", "/jobs", key=SANDBOX_SALES_KEY, params={"size": 10_000}).json()
    assert 0 < mine["count"] < everyone["count"]
    assert {r["sales_rep"] for r in mine["results"]} == {sandbox.sales_rep_id}
    expected = sum(r["sales_rep"] == sandbox.sales_rep_id for r in everyone["results"])
    assert mine["count"] == expected


def test_sales_key_sees_children_of_its_jobs_only(sandbox):
    mine = {
        r["jnid"]
        for r in api(sandbox, "GET", "/jobs", key=SANDBOX_SALES_KEY, params={"size": 10_000}).json()["results"]
    }
    contacts = api(sandbox, "GET", "/contacts", key=SANDBOX_SALES_KEY, params={"size": 10_000}).json()["results"]
    mine |= {r["jnid"] for r in contacts}
    tasks = api(sandbox, "GET", "/tasks", key=SANDBOX_SALES_KEY, params={"size": 10_000}).json()
    all_tasks = api(sandbox, "GET", "/tasks", params={"size": 10_000}).json()
    assert 0 < tasks["count"] < all_tasks["count"]
    assert all(any(r["id"] in mine for r in t["related"]) for t in tasks["results"])


def test_sales_key_gets_404_for_records_outside_its_profile(sandbox):
    flt = json.dumps({"must_not": [{"term": {"sales_rep": sandbox.sales_rep_id}}]})
    other = api(sandbox, "GET", "/jobs", params={"size": 1, "filter": flt}).json()["results"][0]
    assert api(sandbox, "GET", f"/jobs/{other['jnid']}", key=SANDBOX_SALES_KEY).status_code == 404
    assert api(sandbox, "PUT", f"/jobs/{other['jnid']}", key=SANDBOX_SALES_KEY, json={"name": "x"}).status_code == 404
    assert api(sandbox, "GET", f"/jobs/{other['jnid']}").status_code == 200


def test_account_wide_records_are_visible_to_every_profile(sandbox):
    products = api(sandbox, "GET", "/v2/products", key=SANDBOX_SALES_KEY, params={"size": 0}).json()
    assert products["count"] == api(sandbox, "GET", "/v2/products", params={"size": 0}).json()["count"]
    assert api(sandbox, "GET", "/account/users", key=SANDBOX_SALES_KEY).status_code == 200


def test_keys_added_at_run_time(sandbox):
    user = api(sandbox, "GET", "/account/users").json()["users"][1]
    added = requests.post(
        sandbox.url + "/__sandbox/keys",
        json={"key": "teammate-key-000001", "profile": f"sales_rep:{user['id']}"},
        timeout=5,
    )
    assert added.status_code == 200
    jobs = api(sandbox, "GET", "/jobs", key="teammate-key-000001", params={"size": 10_000}).json()["results"]
    assert jobs
    assert {j["sales_rep"] for j in jobs} == {user["id"]}
    listing = requests.get(sandbox.url + "/__sandbox/keys", timeout=5).json()["keys"]
    assert {"key": "teammate-key-000001", "profile": f"sales_rep:{user['id']}"} in listing


@pytest.mark.parametrize(
    ("body", "says"),
    [({"key": "short"}, "16-256"), ({"key": "x" * 20, "profile": "boss"}, "'profile'"),
     ({"key": "x" * 20, "profile": "sales_rep:nobody"}, "names no user")],
)  # fmt: skip
def test_bad_key_requests_are_400(sandbox, body, says):
    response = requests.post(sandbox.url + "/__sandbox/keys", json=body, timeout=5)
    assert response.status_code == 400
    assert says in response.json()["message"]


def test_sales_key_creates_in_its_own_book(clean_sandbox):
    body = {"record_type_name": "Customer", "status_name": "Lead", "first_name": "Own"}
    created = api(clean_sandbox, "POST", "/contacts", key=SANDBOX_SALES_KEY, json=body).json()
    assert created["sales_rep"] == clean_sandbox.sales_rep_id
    assert api(clean_sandbox, "GET", f"/contacts/{created['jnid']}", key=SANDBOX_SALES_KEY).status_code == 200
