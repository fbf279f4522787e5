"""The plain-JSON compatibility endpoints: POST /mcp/tools/list and POST /mcp/tools/call."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from django.test import Client

from tests.fixtures.servers import FakeCatalog, new_api_key

pytestmark = pytest.mark.usefixtures("fake_catalog")


def call(client: Client, body: Any, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
    sent = {"X-JobNimbus-Api-Key": new_api_key()} if headers is None else headers
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    options = {"content_type": "application/json", **kwargs}
    return client.post("/mcp/tools/call", data=data, headers=sent, **options)


def test_tools_list_without_body_or_key(client: Client, fake_catalog: FakeCatalog) -> None:
    response = client.generic("POST", "/mcp/tools/list")  # like curl -X POST, no body
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert [tool["name"] for tool in body["data"]["tools"]] == [spec.name for spec in fake_catalog.specs]
    assert body["data"]["tools"][0]["inputSchema"]["type"] == "object"


def test_tools_list_refuses_get(client: Client) -> None:
    response = client.get("/mcp/tools/list")
    assert response.status_code == 405
    assert response.json()["success"] is False


def test_tools_call_success_with_x_cache(client: Client) -> None:
    response = call(client, {"name": "echo", "arguments": {"text": "hi"}})
    assert response.status_code == 200
    assert response.json() == {"success": True, "data": {"echo": "hi", "instance": "demo"}}
    assert response["X-Cache"] == "HIT-L2"
    assert response["Age"] == "3"


def test_tools_call_tool_error_is_success_false(client: Client) -> None:
    response = call(client, {"name": "echo", "arguments": {"text": 1}})
    assert response.status_code == 200
    assert response.json() == {"success": False, "error": "Argument 'text' must be a string"}
    assert response["X-Cache"] == "BYPASS"


def test_tools_call_crash_is_generic(client: Client) -> None:
    body = call(client, {"name": "boom"}).json()
    assert body["success"] is False
    assert "secret" not in body["error"]


def test_unknown_tool_is_404(client: Client) -> None:
    response = call(client, {"name": "nope", "arguments": {}})
    assert response.status_code == 404
    assert "nope" in response.json()["error"]


@pytest.mark.parametrize(
    "body",
    [b"{not json", [1], {"arguments": {}}, {"name": "echo", "arguments": []}],
    ids=["not-json", "array", "no-name", "arguments-array"],
)
def test_malformed_call_is_400(client: Client, body: Any) -> None:
    response = call(client, body)
    assert response.status_code == 400
    assert response.json()["success"] is False
    assert response.json()["error"]


def test_missing_key_is_401(client: Client) -> None:
    response = call(client, {"name": "echo", "arguments": {"text": "x"}}, headers={})
    assert response.status_code == 401
    assert "X-JobNimbus-Api-Key" in response.json()["error"]
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_oversized_is_413(client: Client, settings: Any) -> None:
    settings.MCP = {**settings.MCP, "MAX_BODY_BYTES": 1024}
    response = call(client, {"name": "echo", "arguments": {"text": "x" * 2000}})
    assert response.status_code == 413


def test_wrong_content_type_is_415(client: Client) -> None:
    response = call(client, b"name=echo", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert "application/json" in response.json()["error"]


def test_foreign_origin_is_403(client: Client) -> None:
    response = call(client, {"name": "echo", "arguments": {"text": "x"}}, headers={"Origin": "https://evil.example"})
    assert response.status_code == 403


def test_unexpected_failure_is_json_500_without_details(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> Any:
        raise KeyError("secret internals")

    monkeypatch.setattr("mcp_tools.protocol.tools.all_tools_json", broken)
    response = client.generic("POST", "/mcp/tools/list")
    assert response.status_code == 500
    assert response.json()["success"] is False
    assert response["X-Request-ID"] in response.json()["error"]
    assert "secret" not in response.content.decode()
