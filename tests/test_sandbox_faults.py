"""Fault injection through /__sandbox/faults, and requests served concurrently."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.fixtures.sandbox import api


def set_fault(handle, **fault):
    response = requests.post(handle.url + "/__sandbox/faults", json=fault, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()["fault"]


def test_503_with_retry_after(clean_sandbox):
    set_fault(clean_sandbox, status=503, retry_after=2)
    response = api(clean_sandbox, "GET", "/jobs")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "2"
    assert "message" in response.json()


def test_429_only_on_matching_path_and_method(clean_sandbox):
    set_fault(clean_sandbox, status=429, retry_after=1, path_prefix="/api1/jobs", methods=["GET"])
    assert api(clean_sandbox, "GET", "/jobs").status_code == 429
    assert api(clean_sandbox, "GET", "/contacts").status_code == 200
    assert api(clean_sandbox, "PUT", "/jobs/nosuchjob000000000000000", json={}).status_code == 404


def test_count_limits_the_injections(clean_sandbox):
    set_fault(clean_sandbox, status=503, count=2)
    codes = [api(clean_sandbox, "GET", "/jobs", params={"size": 1}).status_code for _ in range(4)]
    assert codes == [503, 503, 200, 200]
    assert requests.get(clean_sandbox.url + "/__sandbox/faults", timeout=5).json()["fault"]["used"] == 2


def test_rate_is_deterministic(clean_sandbox):
    def run():
        set_fault(clean_sandbox, status=500, rate=0.5)
        return [api(clean_sandbox, "GET", "/jobs", params={"size": 0}).status_code for _ in range(12)]

    first, second = run(), run()
    assert first == second
    assert 500 in first
    assert 200 in first


def test_faults_hit_even_without_a_key_and_are_counted(clean_sandbox):
    set_fault(clean_sandbox, status=502)
    assert api(clean_sandbox, "GET", "/jobs", key=None).status_code == 502
    stats = requests.get(clean_sandbox.url + "/__sandbox/stats", timeout=5).json()
    assert stats["requests"] == {"GET /api1/jobs": 1}


def test_extra_latency_delays_the_answer(clean_sandbox):
    set_fault(clean_sandbox, latency_ms=150)
    started = time.monotonic()
    assert api(clean_sandbox, "GET", "/jobs", params={"size": 0}).status_code == 200
    assert time.monotonic() - started >= 0.15  # a lower bound: sleep never returns early


def test_hang_holds_the_request_until_cleared(clean_sandbox):
    set_fault(clean_sandbox, hang=True)
    result: dict[str, requests.Response] = {}
    worker = threading.Thread(target=lambda: result.update(r=api(clean_sandbox, "GET", "/jobs", params={"size": 0})))
    worker.start()
    worker.join(timeout=0.3)
    assert worker.is_alive(), "the hung request answered before the fault was cleared"
    assert requests.delete(clean_sandbox.url + "/__sandbox/faults", timeout=5).json() == {"fault": None}
    worker.join(timeout=5)
    assert not worker.is_alive()
    assert result["r"].status_code == 200


def test_control_endpoints_are_never_faulted(clean_sandbox):
    set_fault(clean_sandbox, status=503)
    assert requests.get(clean_sandbox.url + "/__sandbox/health", timeout=5).status_code == 200


def test_reset_clears_faults_and_counts(clean_sandbox):
    set_fault(clean_sandbox, status=503)
    api(clean_sandbox, "GET", "/jobs")
    requests.post(clean_sandbox.url + "/__sandbox/reset", json={"data": False}, timeout=5).raise_for_status()
    assert requests.get(clean_sandbox.url + "/__sandbox/faults", timeout=5).json() == {"fault": None}
    assert requests.get(clean_sandbox.url + "/__sandbox/stats", timeout=5).json() == {"total": 0, "requests": {}}


@pytest.mark.parametrize(
    ("body", "says"),
    [({"status": 42}, "'status'"), ({"rate": 2}, "'rate'"), ({"bogus": 1}, "unknown fault field"),
     ({"path_prefix": "/jobs"}, "'path_prefix'"), ({"hang": "yes"}, "'hang'"), ({"methods": "GET"}, "'methods'")],
)  # fmt: skip
def test_bad_fault_is_400(clean_sandbox, body, says):
    response = requests.post(clean_sandbox.url + "/__sandbox/faults", json=body, timeout=5)
    assert response.status_code == 400
    assert says in response.json()["message"]


def test_latency_does_not_serialise_requests(clean_sandbox):
    # Ten requests each held 200 ms would take 2 s one after another; in parallel they take about 0.2 s.
    set_fault(clean_sandbox, latency_ms=200)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=10) as pool:
        codes = list(pool.map(lambda _: api(clean_sandbox, "GET", "/jobs", params={"size": 1}).status_code, range(10)))
    elapsed = time.monotonic() - started
    assert codes == [200] * 10
    assert elapsed < 1.5
