"""Structured logs carry the request id and never a key; /health reports parts without secrets."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from jobnimbus_site.logging import redact, request_id_var

KEY = "sandboxadminkey0001"


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Route a logger through the production JSON formatter and the project's filters."""
    stream = io.StringIO()
    logging_config: dict[str, Any] = settings.LOGGING
    config = dict(logging_config["formatters"]["json"])
    factory = config.pop("()")
    from django.utils.module_loading import import_string

    handler = logging.StreamHandler(stream)
    handler.setFormatter(import_string(factory)(**config))
    for name in ("request_id", "redact"):
        handler.addFilter(import_string(logging_config["filters"][name]["()"])())
    logger = logging.getLogger("tests.json_log")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield stream
    logger.removeHandler(handler)


def test_json_lines_carry_the_request_id_and_redact_keys(json_log: io.StringIO) -> None:
    token = request_id_var.set("req-123")
    try:
        logging.getLogger("tests.json_log").info("calling with Authorization: Bearer %s and api_key=%s", KEY, KEY)
    finally:
        request_id_var.reset(token)
    line = json.loads(json_log.getvalue().strip())
    assert line["request_id"] == "req-123"
    assert line["level"] == "INFO"
    assert KEY not in json_log.getvalue()
    assert "[redacted]" in line["message"]


@pytest.mark.parametrize(
    "text",
    [f"Bearer {KEY}", f"X-JobNimbus-Api-Key: {KEY}", f'{{"api_key": "{KEY}"}}', f"token={KEY}", f"secret: {KEY}"],
)
def test_redact_removes_credential_values(text: str) -> None:
    assert KEY not in redact(text)


def test_request_id_is_echoed_or_made(db: None) -> None:
    client = Client()
    assert client.get("/health", HTTP_X_REQUEST_ID="abc-1").headers["X-Request-ID"] == "abc-1"
    made = client.get("/health", HTTP_X_REQUEST_ID="bad id with spaces\n").headers["X-Request-ID"]
    assert made != "bad id with spaces\n"
    assert len(made) == 32


def test_health_reports_database_and_redis_without_secrets(db: None) -> None:
    response = Client().get("/health")
    body = response.json()
    assert set(body["checks"]) == {"database", "redis"}
    assert body["status"] in {"ok", "degraded"}
    text = response.content.decode()
    for secret in (settings.REDIS_URL, str(settings.DATABASES["default"]["NAME"]), "redis://", "postgres://"):
        assert secret not in text


def test_health_is_degraded_not_down_when_redis_is_unreachable(
    db: None, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    from dashboard import health

    def unreachable() -> None:
        raise ConnectionError("refused")

    monkeypatch.setattr(health, "_probe_redis", unreachable)
    response = Client().get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["checks"]["redis"] == {"ok": False}  # the error type is for staff and monitors
    settings.METRICS_TOKEN = "metrics-token-0123456789"
    detailed = Client().get("/health", HTTP_AUTHORIZATION="Bearer metrics-token-0123456789")
    assert detailed.json()["checks"]["redis"] == {"ok": False, "error": "ConnectionError"}
