"""A sandbox fault scoped to one API key (`api_key`): only that key's requests are hit."""

from __future__ import annotations

import pytest
import requests

from tests.fixtures.sandbox import SANDBOX_ADMIN_KEY, SANDBOX_SALES_KEY, api, control

HOSTILE_KEY = "hostilebenchkey0001"


def set_fault(handle, **fault):
    response = requests.post(handle.url + "/__sandbox/faults", json=fault, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()["fault"]


def test_a_key_scoped_429_hits_that_key_only(clean_sandbox):
    control(clean_sandbox, "POST", "keys", {"key": HOSTILE_KEY, "profile": "all"})
    shown = set_fault(clean_sandbox, status=429, retry_after=120, api_key=HOSTILE_KEY)
    assert shown["api_key"] == HOSTILE_KEY

    refused = api(clean_sandbox, "GET", "/jobs", key=HOSTILE_KEY, params={"size": 1})
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "120"
    assert api(clean_sandbox, "GET", "/jobs", key=SANDBOX_ADMIN_KEY, params={"size": 1}).status_code == 200
    assert api(clean_sandbox, "GET", "/jobs", key=SANDBOX_SALES_KEY, params={"size": 1}).status_code == 200
    assert api(clean_sandbox, "GET", "/jobs", key=None).status_code == 401  # no key: not the scoped one
    fault = requests.get(clean_sandbox.url + "/__sandbox/faults", timeout=5).json()["fault"]
    assert fault["used"] == 1  # only the scoped key's request consumed the fault


def test_a_key_scoped_fault_still_honours_path_and_count(clean_sandbox):
    control(clean_sandbox, "POST", "keys", {"key": HOSTILE_KEY, "profile": "all"})
    set_fault(clean_sandbox, status=503, api_key=HOSTILE_KEY, path_prefix="/api1/jobs", count=1)
    assert api(clean_sandbox, "GET", "/contacts", key=HOSTILE_KEY, params={"size": 1}).status_code == 200
    assert api(clean_sandbox, "GET", "/jobs", key=HOSTILE_KEY, params={"size": 1}).status_code == 503
    assert api(clean_sandbox, "GET", "/jobs", key=HOSTILE_KEY, params={"size": 1}).status_code == 200


def test_an_unscoped_fault_still_hits_every_key(clean_sandbox):
    set_fault(clean_sandbox, status=503)
    assert api(clean_sandbox, "GET", "/jobs", key=SANDBOX_ADMIN_KEY).status_code == 503
    assert api(clean_sandbox, "GET", "/jobs", key=SANDBOX_SALES_KEY).status_code == 503


@pytest.mark.parametrize("bad", ["", "   ", 42, ["k"]])
def test_a_malformed_key_scope_is_refused(clean_sandbox, bad):
    response = requests.post(clean_sandbox.url + "/__sandbox/faults", json={"status": 429, "api_key": bad}, timeout=5)
    assert response.status_code == 400
    assert "api_key" in response.json()["message"]
