"""What moving the MCP endpoints and the webhook receiver onto DRF must not change, and the site's error handler.

DRF's defaults would answer differently: `Allow` on every answer, OPTIONS as metadata, 406 for an `Accept` the
renderer does not serve, `{"detail": ...}` for every failure. These pin the answers the endpoints always gave.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest
from django.test import Client

from cacheops import views_engine
from cacheops.errors import CacheBackendError
from cacheops.rest import CacheUnavailable
from dashboard import api as dashboard_api
from mcp_tools.protocol import dispatch, tools
from tests.fixtures.servers import new_api_key

PING = orjson.dumps({"jsonrpc": "2.0", "id": 7, "method": "ping"})
LIST = orjson.dumps({"jsonrpc": "2.0", "id": 8, "method": "tools/list"})


def _post(client: Client, path: str, raw: bytes, **headers: str) -> Any:
    return client.post(path, data=raw, content_type="application/json", headers=headers)


@pytest.mark.usefixtures("fake_catalog")
class TestMcpAnswers:
    def test_an_answer_carries_no_allow_header_and_plain_json_type(self, client: Client) -> None:
        for path, raw in (("/mcp", PING), ("/mcp/tools/list", b"")):
            response = _post(client, path, raw)
            assert response.status_code == 200
            assert response["Content-Type"] == "application/json"
            assert "Allow" not in response
            assert "Vary" not in response

    def test_any_accept_is_answered_json(self, client: Client) -> None:
        response = _post(client, "/mcp", PING, Accept="text/html")
        assert response.status_code == 200
        assert response.json() == {"jsonrpc": "2.0", "id": 7, "result": {}}

    def test_options_is_405_like_every_method_but_post(self, client: Client) -> None:
        response = client.options("/mcp")
        assert response.status_code == 405
        assert response["Allow"] == "POST"
        assert response.json()["error"]["data"]["status"] == 405
        compat = client.options("/mcp/tools/list")
        assert compat.status_code == 405
        assert compat.json()["success"] is False

    def test_a_notification_is_acknowledged_without_looking_at_the_key(self, client: Client) -> None:
        note = orjson.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"})
        response = _post(client, "/mcp", note, **{"X-JobNimbus-Api-Key": "short"})
        assert response.status_code == 202
        assert response.content == b""

    def test_a_malformed_key_on_a_request_is_401_in_json_rpc(self, client: Client) -> None:
        response = _post(client, "/mcp", PING, **{"X-JobNimbus-Api-Key": "short"})
        assert response.status_code == 401
        assert response.json()["id"] == 7
        assert response["WWW-Authenticate"].startswith("Bearer")

    def test_an_unexpected_failure_is_a_json_rpc_internal_error(
        self, client: Client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        monkeypatch.setattr(dispatch, "handle", _boom)
        with caplog.at_level(logging.ERROR, logger="mcp_tools.views"):
            response = _post(client, "/mcp", LIST, **{"X-JobNimbus-Api-Key": new_api_key()})
        assert response.status_code == 200  # a handshake-era error travels in a 200
        error = response.json()["error"]
        assert response.json()["id"] == 8
        assert error["code"] == -32603
        assert "request id" in error["message"]
        assert "MCP tools/list failed unexpectedly" in caplog.text

    def test_an_unexpected_compat_failure_is_500_in_the_compat_shape(
        self, client: Client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        monkeypatch.setattr(tools, "all_tools_json", _boom)
        with caplog.at_level(logging.ERROR, logger="mcp_tools.views"):
            response = _post(client, "/mcp/tools/list", b"")
        assert response.status_code == 500
        assert response.json()["success"] is False
        assert response.json()["error"].startswith("Internal error (request id")
        assert "/mcp/tools/list failed unexpectedly" in caplog.text

    def test_a_compat_body_that_is_not_json_is_400_before_the_key_is_looked_at(self, client: Client) -> None:
        response = _post(client, "/mcp/tools/call", b"{", **{"X-JobNimbus-Api-Key": "short"})
        assert response.status_code == 400
        assert response.json() == {"success": False, "error": "The body is not valid JSON"}


def _boom(*args: Any) -> Any:
    raise RuntimeError("boom")


@pytest.mark.django_db
@pytest.mark.usefixtures("webhook_instances")
@pytest.mark.parametrize("verb", ["get", "options", "put"])
def test_the_webhook_receiver_answers_other_methods_as_require_post_did(client: Client, verb: str) -> None:
    response = getattr(client, verb)("/webhooks/jobnimbus/acme")
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert response.content == b""


def test_one_cache_unavailable_with_each_endpoints_words() -> None:
    assert dashboard_api.CacheUnavailable is views_engine.CacheUnavailable is CacheUnavailable
    with pytest.raises(CacheUnavailable) as raised:
        views_engine._on_redis(_redis_down)
    assert raised.value.status_code == 503
    assert str(raised.value.detail) == "Redis is unavailable; retry shortly."


def _redis_down() -> Any:
    raise CacheBackendError("Redis is unreachable")


@pytest.mark.django_db
def test_other_drf_views_keep_the_detail_shape(client: Client) -> None:
    response = client.get("/cache/alerts")
    assert response.status_code == 403
    assert set(response.json()) == {"detail"}
