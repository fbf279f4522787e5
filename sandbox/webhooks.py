"""Automation webhooks, like JobNimbus's "Webhook POST" action on create/modify/delete.

Each change POSTs `{"event", "type", "jnid", "related": [{"id", "type"}], "primary": {"id", ...} | null,
"record_type_name", "status_name", "date_updated"}` with the token in `X-Webhook-Token`, from one background thread
(so deliveries keep the order of the changes), only after the change is visible through the API. Each delivery gets
up to three attempts, 5 s timeout each; the last ones are kept for GET /__sandbox/webhooks.
"""

from __future__ import annotations

import queue
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from typing import Any

import orjson

from sandbox.query import Record

ATTEMPTS = 3
BACKOFF_S = (0.2, 0.5)
TIMEOUT_S = 5.0
KEEP = 200


class InvalidWebhookConfig(ValueError):
    """A webhook configuration the control API cannot accept."""


def payload(event: str, record: Record) -> Record:
    """Return the small documented body for one change."""
    return {
        "event": event,
        "type": record["type"],
        "jnid": record["jnid"],
        "related": [{"id": r["id"], "type": r.get("type")} for r in record.get("related", [])],
        "primary": record.get("primary"),
        "record_type_name": record.get("record_type_name"),
        "status_name": record.get("status_name"),
        "date_updated": record.get("date_updated"),
    }


class Webhooks:
    """The webhook target and a background sender."""

    def __init__(self, url: str | None, token: str | None) -> None:
        self.startup = {"url": url, "token": token, "enabled": bool(url)}
        self.config = dict(self.startup)
        self.lock = threading.Lock()
        self.deliveries: deque[Record] = deque(maxlen=KEEP)
        self.pending: queue.Queue[tuple[Record, Record] | None] = queue.Queue()
        self.sender = threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True)
        self.sender.start()

    def configure(self, body: Any) -> Record:
        """Change the target from a control-API body; return the new config."""
        if not isinstance(body, dict):
            raise InvalidWebhookConfig("webhook config must be a JSON object")
        url, token, enabled = body.get("url"), body.get("token"), body.get("enabled", True)
        if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
            raise InvalidWebhookConfig(f"'url' must be an http(s) URL, got {url!r}")
        if token is not None and not isinstance(token, str):
            raise InvalidWebhookConfig("'token' must be a string")
        if not isinstance(enabled, bool):
            raise InvalidWebhookConfig("'enabled' must be true or false")
        with self.lock:
            self.config = {"url": url, "token": token, "enabled": enabled and bool(url)}
            return self.public()

    def reset(self) -> None:
        """Go back to the start-up target and forget past deliveries."""
        with self.lock:
            self.config = dict(self.startup)
            self.deliveries.clear()

    def public(self) -> Record:
        """Return the config (token masked) and the recent deliveries."""
        config = {**self.config, "token": "***" if self.config["token"] else None}
        return {"config": config, "deliveries": list(self.deliveries)}

    def show(self) -> Record:
        """Return the public view under the lock."""
        with self.lock:
            return self.public()

    def notify(self, event: str, record: Record) -> None:
        """Queue a change for delivery when a target is configured (call after the change is visible)."""
        with self.lock:
            config = dict(self.config)
        if config["enabled"]:
            self.pending.put((config, payload(event, record)))

    def stop(self) -> None:
        """Stop the sender after what is queued."""
        self.pending.put(None)

    def _run(self) -> None:
        while (item := self.pending.get()) is not None:
            self._deliver(*item)

    def _deliver(self, config: Record, body: Record) -> None:
        """POST one body, retrying, and record the outcome."""
        status, error, attempt = None, None, 0
        for attempt in range(1, ATTEMPTS + 1):
            status, error = post(config["url"], config["token"], body)
            if status is not None and 200 <= status < 300:
                break
            if attempt < ATTEMPTS:
                time.sleep(BACKOFF_S[attempt - 1])
        entry = {
            "event": body["event"],
            "type": body["type"],
            "jnid": body["jnid"],
            "url": config["url"],
            "status": status,
            "error": error,
            "attempts": attempt,
            "at": time.time(),
        }
        with self.lock:
            self.deliveries.append(entry)


def post(url: str, token: str | None, body: Record) -> tuple[int | None, str | None]:
    """POST JSON once; return (status, error message)."""
    headers = {"Content-Type": "application/json", "User-Agent": "JobNimbus-Sandbox-Automation/1"}
    if token:
        headers["X-Webhook-Token"] = token
    request = urllib.request.Request(url, data=orjson.dumps(body), headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310 - URL set by the operator
            return response.status, None
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return None, str(getattr(exc, "reason", exc))
