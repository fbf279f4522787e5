"""Automation webhooks: delivered to a local receiver, with the token, after the change is visible."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tests.fixtures.sandbox import api


class Receiver:
    """A local HTTP endpoint that records each POST and what the sandbox showed for its record at that moment."""

    def __init__(self, handle, status=200):
        self.received: list[dict] = []
        self.seen = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                path = {"job": "/jobs", "contact": "/contacts", "task": "/tasks"}.get(body["type"])
                visible = api(handle, "GET", f"{path}/{body['jnid']}").json() if path else None
                self.send_response(status)
                self.end_headers()
                with receiver.seen:
                    receiver.received.append({"body": body, "headers": dict(self.headers), "visible": visible})
                    receiver.seen.notify_all()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def wait_for(self, n, timeout=10):
        with self.seen:
            assert self.seen.wait_for(lambda: len(self.received) >= n, timeout=timeout), self.received
        return self.received

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(clean_sandbox):
    target = Receiver(clean_sandbox)
    configure = {"url": target.url, "token": "hook-secret", "enabled": True}
    requests.post(clean_sandbox.url + "/__sandbox/webhooks", json=configure, timeout=5).raise_for_status()
    yield target
    target.close()


def test_create_update_delete_are_posted_in_order_with_the_token(clean_sandbox, receiver):
    job = api(clean_sandbox, "GET", "/jobs", params={"size": 1}).json()["results"][0]
    body = {
        "title": "Inspect",
        "date_start": 1_700_000_000,
        "record_type_name": "Inspection",
        "related": [{"id": job["jnid"]}],
    }
    task = api(clean_sandbox, "POST", "/tasks", json=body).json()
    api(clean_sandbox, "PUT", f"/tasks/{task['jnid']}", json={"title": "Inspect roof"})
    api(clean_sandbox, "PUT", f"/tasks/{task['jnid']}", json={"is_active": False})
    got = receiver.wait_for(3)
    assert [g["body"]["event"] for g in got] == ["created", "updated", "deleted"]
    first = got[0]
    assert first["headers"]["X-Webhook-Token"] == "hook-secret"
    assert first["headers"]["Content-Type"] == "application/json"
    assert first["body"]["type"] == "task"
    assert first["body"]["jnid"] == task["jnid"]
    assert {"id": job["jnid"], "type": "job"} in first["body"]["related"]
    assert first["body"]["primary"]["id"] == job["jnid"]


def test_delivery_happens_after_the_change_is_visible(clean_sandbox, receiver):
    job = api(clean_sandbox, "GET", "/jobs", params={"size": 1}).json()["results"][0]
    api(clean_sandbox, "PUT", f"/jobs/{job['jnid']}", json={"name": "Visible before the hook"})
    (got,) = receiver.wait_for(1)
    assert got["body"] == {**got["body"], "event": "updated", "type": "job", "jnid": job["jnid"]}
    assert got["visible"]["name"] == "Visible before the hook"


def test_deliveries_are_recorded(clean_sandbox, receiver):
    contact = {"record_type_name": "Customer", "status_name": "Lead", "first_name": "Webb"}
    created = api(clean_sandbox, "POST", "/contacts", json=contact).json()
    receiver.wait_for(1)
    shown = requests.get(clean_sandbox.url + "/__sandbox/webhooks", timeout=5).json()
    for _ in range(50):  # the sender records the outcome just after the receiver answers
        if shown["deliveries"]:
            break
        time.sleep(0.02)
        shown = requests.get(clean_sandbox.url + "/__sandbox/webhooks", timeout=5).json()
    assert shown["config"] == {"url": receiver.url, "token": "***", "enabled": True}
    (delivery,) = shown["deliveries"]
    assert delivery["jnid"] == created["jnid"]
    assert delivery["status"] == 200
    assert delivery["error"] is None
    assert delivery["attempts"] == 1


def test_failing_receiver_is_retried_and_recorded(clean_sandbox, monkeypatch):
    monkeypatch.setattr("sandbox.webhooks.BACKOFF_S", (0.01, 0.01))
    failing = Receiver(clean_sandbox, status=500)
    try:
        requests.post(
            clean_sandbox.url + "/__sandbox/webhooks", json={"url": failing.url}, timeout=5
        ).raise_for_status()
        job = api(clean_sandbox, "GET", "/jobs", params={"size": 1}).json()["results"][0]
        api(clean_sandbox, "PUT", f"/jobs/{job['jnid']}", json={"name": "retry me"})
        failing.wait_for(3)
        for _ in range(100):
            deliveries = requests.get(clean_sandbox.url + "/__sandbox/webhooks", timeout=5).json()["deliveries"]
            if deliveries:
                break
            time.sleep(0.02)
        assert deliveries[0]["status"] == 500
        assert deliveries[0]["attempts"] == 3
        assert deliveries[0]["error"] == "HTTP 500"
    finally:
        failing.close()


def test_no_target_means_no_delivery(clean_sandbox):
    job = api(clean_sandbox, "GET", "/jobs", params={"size": 1}).json()["results"][0]
    api(clean_sandbox, "PUT", f"/jobs/{job['jnid']}", json={"name": "quiet"})
    shown = requests.get(clean_sandbox.url + "/__sandbox/webhooks", timeout=5).json()
    assert shown == {"config": {"url": None, "token": None, "enabled": False}, "deliveries": []}


def test_bad_webhook_config_is_400(clean_sandbox):
    response = requests.post(clean_sandbox.url + "/__sandbox/webhooks", json={"url": "ftp://x"}, timeout=5)
    assert response.status_code == 400
    assert "'url'" in response.json()["message"]
