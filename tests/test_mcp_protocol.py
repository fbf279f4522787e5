"""The JSON-RPC face of POST /mcp: methods, eras, and every protocol negative, through Django's test client."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from django.test import Client

from tests.fixtures.servers import FakeCatalog, new_api_key

MODERN = "2026-07-28"
META_VERSION = "io.modelcontextprotocol/protocolVersion"
META_CAPS = "io.modelcontextprotocol/clientCapabilities"

pytestmark = pytest.mark.usefixtures("fake_catalog")


def rpc(method: str, params: dict[str, Any] | None = None, rpc_id: Any = 1) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": rpc_id, "method": method}
    if params is not None:
        message["params"] = params
    return message


def post(client: Client, body: Any, headers: dict[str, str] | None = None, raw: bytes | None = None) -> Any:
    data = raw if raw is not None else orjson.dumps(body)
    return client.post("/mcp", data=data, content_type="application/json", headers=headers or {})


def modern(method: str, params: dict[str, Any] | None = None, rpc_id: Any = 1) -> tuple[dict[str, Any], dict[str, str]]:
    """Return a 2026-07-28 request and its routing headers."""
    body_params = {"_meta": {META_VERSION: MODERN, META_CAPS: {}}, **(params or {})}
    headers = {"MCP-Protocol-Version": MODERN, "Mcp-Method": method}
    if method == "tools/call":
        headers["Mcp-Name"] = body_params["name"]
    return rpc(method, body_params, rpc_id), headers


def keyed(**extra: str) -> dict[str, str]:
    return {"X-JobNimbus-Api-Key": new_api_key(), **extra}


INIT = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}


# --- Handshake era ---------------------------------------------------------------------------------


def test_initialize_echoes_a_supported_version_with_server_info_and_instructions(client: Client) -> None:
    response = post(client, rpc("initialize", INIT))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "Mcp-Session-Id" not in response
    result = response.json()["result"]
    assert result["protocolVersion"] == "2025-06-18"
    assert result["capabilities"] == {"tools": {"listChanged": False}}
    assert result["serverInfo"]["name"] == "jobnimbus-mcp"
    assert result["serverInfo"]["version"]
    assert "jnid" in result["instructions"]
    assert "resultType" not in result  # a handshake-era answer carries no 2026-07-28 fields


@pytest.mark.parametrize("offered", ["2024-11-05", "1999-01-01", MODERN])
def test_initialize_answers_the_newest_handshake_version_for_others(client: Client, offered: str) -> None:
    response = post(client, rpc("initialize", {**INIT, "protocolVersion": offered}))
    assert response.json()["result"]["protocolVersion"] == "2025-11-25"


def test_initialize_without_client_info_is_bad_params(client: Client) -> None:
    response = post(client, rpc("initialize", {"protocolVersion": "2025-06-18"}))
    assert response.json()["error"]["code"] == -32602
    assert "capabilities" in response.json()["error"]["message"]


def test_id_zero_is_a_request_and_echoed(client: Client) -> None:
    response = post(client, rpc("ping", rpc_id=0))
    assert response.status_code == 200
    assert response.json() == {"jsonrpc": "2.0", "id": 0, "result": {}}


def test_string_id_is_echoed(client: Client) -> None:
    response = post(client, rpc("ping", rpc_id="abc-1"))
    assert response.json()["id"] == "abc-1"


@pytest.mark.parametrize(
    "message",
    [
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}},
        {"jsonrpc": "2.0", "id": 7, "result": {}},
    ],
    ids=["initialized", "cancelled", "client-response"],
)
def test_notifications_and_responses_get_202_empty(client: Client, message: dict[str, Any]) -> None:
    response = post(client, message, headers={"MCP-Protocol-Version": "2025-06-18"})
    assert response.status_code == 202
    assert response.content == b""


def test_tools_list_without_key_lists_declarations(client: Client) -> None:
    response = post(client, rpc("tools/list"), headers={"MCP-Protocol-Version": "2025-11-25"})
    result = response.json()["result"]
    echo = next(tool for tool in result["tools"] if tool["name"] == "echo")
    assert echo["inputSchema"]["required"] == ["text"]
    assert echo["annotations"] == {"readOnlyHint": True}
    assert echo["title"] == "Echo"
    assert "nextCursor" not in result
    assert "ttlMs" not in result


def test_tools_list_pages_with_opaque_cursors(client: Client, settings: Any, fake_catalog: FakeCatalog) -> None:
    settings.MCP = {**settings.MCP, "TOOLS_PAGE_SIZE": 3}
    names: list[str] = []
    cursor = None
    for _ in range(5):
        params: dict[str, Any] = {"cursor": cursor} if cursor else {}
        result = post(client, rpc("tools/list", params)).json()["result"]
        names += [tool["name"] for tool in result["tools"]]
        cursor = result.get("nextCursor")
        if cursor is None:
            break
        assert cursor.isascii()
        assert not cursor.isdigit()
    assert names == [spec.name for spec in fake_catalog.specs]


@pytest.mark.parametrize("cursor", ["bogus", "", 3])
def test_bad_cursor_is_bad_params(client: Client, cursor: Any) -> None:
    response = post(client, rpc("tools/list", {"cursor": cursor}))
    assert response.status_code == 200
    assert response.json()["error"]["code"] == -32602
    assert "cursor" in response.json()["error"]["message"]


def test_tools_call_returns_text_structured_and_cache_meta(client: Client, fake_catalog: FakeCatalog) -> None:
    response = post(client, rpc("tools/call", {"name": "echo", "arguments": {"text": "hi"}}), headers=keyed())
    result = response.json()["result"]
    assert result["content"] == [{"type": "text", "text": '{"echo": "hi"}'}]
    assert result["structuredContent"] == {"echo": "hi", "instance": "demo"}
    assert result["isError"] is False
    assert result["_meta"]["jobnimbus-mcp/cache"] == {"status": "hit_l2", "age_s": 3.5, "ttl_s": 60}
    ctx = fake_catalog.calls[0][0]
    assert ctx.instance == "demo"
    assert len(ctx.tenant) == 32
    assert ctx.api_key not in ctx.tenant


def test_tools_call_accepts_bearer_key(client: Client, fake_catalog: FakeCatalog) -> None:
    key = new_api_key()
    headers = {"Authorization": f"Bearer {key}"}
    post(client, rpc("tools/call", {"name": "echo", "arguments": {"text": "x"}}), headers=headers)
    assert fake_catalog.calls[0][0].api_key == key


def test_tool_argument_error_is_an_is_error_result(client: Client) -> None:
    response = post(client, rpc("tools/call", {"name": "echo", "arguments": {"text": 5}}), headers=keyed())
    result = response.json()["result"]
    assert result["isError"] is True
    assert "'text'" in result["content"][0]["text"]
    assert result["_meta"]["jobnimbus-mcp/cache"]["status"] == "bypass"


def test_unknown_tool_is_an_is_error_result(client: Client) -> None:
    response = post(client, rpc("tools/call", {"name": "nope", "arguments": {}}), headers=keyed())
    result = response.json()["result"]
    assert result["isError"] is True
    assert "nope" in result["content"][0]["text"]


def test_crashing_tool_is_generic_error_without_traceback(client: Client, caplog: Any) -> None:
    response = post(client, rpc("tools/call", {"name": "boom", "arguments": {}}), headers=keyed())
    result = response.json()["result"]
    assert result["isError"] is True
    text = result["content"][0]["text"]
    assert "secret internals" not in text
    assert "Traceback" not in text
    assert response["X-Request-ID"] in text
    assert any("boom failed unexpectedly" in r.getMessage() for r in caplog.records)


def test_unexpected_failure_outside_a_tool_is_32603_without_details(
    client: Client, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    def broken(cursor: Any) -> Any:
        raise KeyError("secret internals")

    monkeypatch.setattr("mcp_tools.protocol.tools.list_page", broken)
    response = post(client, rpc("tools/list", rpc_id="r1"))
    body = response.json()
    assert body["id"] == "r1"
    assert body["error"]["code"] == -32603
    assert response["X-Request-ID"] in body["error"]["message"]
    assert "secret" not in response.content.decode()
    assert any("tools/list failed unexpectedly" in r.getMessage() for r in caplog.records)


# --- Protocol negatives ------------------------------------------------------------------------------


def test_parse_error_has_null_id(client: Client) -> None:
    response = post(client, None, raw=b'{"jsonrpc": "2.0", "id": 1, "method": ')
    assert response.status_code == 400
    assert response.json() == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32700, "message": "Parse error: the body is not valid JSON"},
    }


def test_batch_is_refused_saying_batches_are_unsupported(client: Client) -> None:
    response = post(client, [rpc("ping"), rpc("ping", rpc_id=2)])
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32600
    assert "batch" in response.json()["error"]["message"].lower()


@pytest.mark.parametrize(
    "message",
    [
        {"id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "id": 1},
        {"jsonrpc": "2.0", "id": 1.5, "method": "ping"},
        {"jsonrpc": "2.0", "id": True, "method": "ping"},
        {"jsonrpc": "2.0", "id": 1, "method": 5},
        "just a string",
    ],
)
def test_invalid_request(client: Client, message: Any) -> None:
    response = post(client, message)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32600


def test_unknown_method_is_32601(client: Client) -> None:
    response = post(client, rpc("resources/list"))
    assert response.json()["error"]["code"] == -32601
    assert response.json()["id"] == 1


@pytest.mark.parametrize(
    "params",
    [{}, {"name": 5}, {"name": "echo", "arguments": [1, 2]}, {"name": "echo", "arguments": "text"}],
    ids=["no-name", "name-not-string", "arguments-array", "arguments-string"],
)
def test_malformed_tools_call_is_bad_params(client: Client, params: dict[str, Any]) -> None:
    response = post(client, rpc("tools/call", params), headers=keyed())
    assert response.json()["error"]["code"] == -32602


def test_params_array_is_bad_params(client: Client) -> None:
    response = post(client, {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": [1]})
    assert response.json()["error"]["code"] == -32602


@pytest.mark.parametrize("verb", ["get", "delete", "put"])
def test_other_http_methods_are_405(client: Client, verb: str) -> None:
    response = getattr(client, verb)("/mcp")
    assert response.status_code == 405
    assert response["Allow"] == "POST"


@pytest.mark.parametrize("origin", ["https://evil.example", "http://localhost.evil.example", "null"])
def test_foreign_origin_is_403(client: Client, origin: str) -> None:
    response = post(client, rpc("ping"), headers={"Origin": origin})
    assert response.status_code == 403
    assert "MCP_ALLOWED_ORIGINS" in response.json()["error"]["message"]


@pytest.mark.parametrize("origin", ["http://localhost:6274", "http://127.0.0.1", "http://[::1]:3000"])
def test_local_origins_are_allowed(client: Client, origin: str) -> None:
    assert post(client, rpc("ping"), headers={"Origin": origin}).status_code == 200


def test_configured_origin_is_allowed(client: Client, settings: Any) -> None:
    settings.MCP = {**settings.MCP, "ALLOWED_ORIGINS": ["https://app.example.com"]}
    assert post(client, rpc("ping"), headers={"Origin": "https://app.example.com"}).status_code == 200
    assert post(client, rpc("ping"), headers={"Origin": "http://localhost:1"}).status_code == 403


def test_unsupported_legacy_version_header_is_400(client: Client) -> None:
    response = post(client, rpc("ping"), headers={"MCP-Protocol-Version": "2099-01-01"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32600
    assert "2025-06-18" in response.json()["error"]["message"]


def test_oversized_body_is_413_before_parsing(client: Client, settings: Any) -> None:
    settings.MCP = {**settings.MCP, "MAX_BODY_BYTES": 2048}
    response = post(client, None, raw=b"[" * 5000)  # would be a parse error if it were parsed
    assert response.status_code == 413
    assert "2048" in response.json()["error"]["message"]


def test_body_of_1mb_is_refused_by_default(client: Client) -> None:
    padding = "x" * (1024 * 1024)
    response = post(client, rpc("tools/call", {"name": "echo", "arguments": {"text": padding}}))
    assert response.status_code == 413


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_wrong_content_type_is_415(client: Client, content_type: str) -> None:
    response = client.post("/mcp", data=orjson.dumps(rpc("ping")), content_type=content_type)
    assert response.status_code == 415
    assert "application/json" in response.json()["error"]["message"]


def test_json_with_charset_is_accepted(client: Client) -> None:
    response = client.post("/mcp", data=orjson.dumps(rpc("ping")), content_type="application/json; charset=utf-8")
    assert response.status_code == 200


# --- Tenancy ------------------------------------------------------------------------------------------


def test_tools_call_without_key_is_401_naming_the_header(client: Client) -> None:
    response = post(client, rpc("tools/call", {"name": "echo", "arguments": {"text": "x"}}, rpc_id=9))
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    body = response.json()
    assert body["id"] == 9
    assert "X-JobNimbus-Api-Key" in body["error"]["message"]


@pytest.mark.parametrize("key", ["short", "has spaces in it 123456", "x" * 257, "semi;colon;0123456789"])
def test_malformed_key_is_401_on_any_method(client: Client, key: str) -> None:
    response = post(client, rpc("ping"), headers={"X-JobNimbus-Api-Key": key})
    assert response.status_code == 401
    assert "malformed" in response.json()["error"]["message"]
    assert key not in response.content.decode()


def test_unknown_instance_is_400_naming_the_header_not_the_configured_instances(client: Client) -> None:
    response = post(client, rpc("tools/list"), headers={"X-JobNimbus-Instance": "acme"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert "X-JobNimbus-Instance" in error["message"]
    assert "demo" not in response.content.decode()


def test_instance_required_when_several_are_configured(client: Client, settings: Any) -> None:
    settings.JOBNIMBUS_INSTANCES = {"east": {"api_key": None}, "west": {"api_key": None}}
    body = rpc("tools/call", {"name": "echo", "arguments": {"text": "x"}})
    missing = post(client, body, headers=keyed())
    assert missing.status_code == 400
    assert "X-JobNimbus-Instance" in missing.json()["error"]["message"]
    assert "east" not in missing.content.decode()
    named = post(client, body, headers=keyed(**{"X-JobNimbus-Instance": "west"}))
    assert named.json()["result"]["structuredContent"]["instance"] == "west"


def test_server_held_key_is_not_lent_to_callers_without_one(client: Client, settings: Any) -> None:
    settings.JOBNIMBUS_INSTANCES = {"demo": {"api_key": "server_held_key_123456"}}
    response = post(client, rpc("tools/call", {"name": "echo", "arguments": {"text": "x"}}))
    assert response.status_code == 401


# --- 2026-07-28 era -------------------------------------------------------------------------------------


def test_discover_lists_versions_and_cache_directives(client: Client) -> None:
    body, headers = modern("server/discover")
    response = post(client, body, headers=headers)
    assert response.status_code == 200
    result = response.json()["result"]
    assert result["supportedVersions"] == ["2025-03-26", "2025-06-18", "2025-11-25", MODERN]
    assert result["resultType"] == "complete"
    assert result["capabilities"] == {"tools": {"listChanged": False}}
    assert result["cacheScope"] == "public"
    assert result["ttlMs"] > 0
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "jobnimbus-mcp"
    assert "contact" in result["instructions"]


def test_modern_tools_list_carries_result_type_and_ttl(client: Client) -> None:
    body, headers = modern("tools/list")
    result = post(client, body, headers=headers).json()["result"]
    assert result["resultType"] == "complete"
    assert result["cacheScope"] == "public"
    assert isinstance(result["ttlMs"], int)
    assert {tool["name"] for tool in result["tools"]} >= {"echo", "boom"}


def test_modern_tools_call(client: Client) -> None:
    body, headers = modern("tools/call", {"name": "echo", "arguments": {"text": "m"}})
    result = post(client, body, headers={**headers, **keyed()}).json()["result"]
    assert result["resultType"] == "complete"
    assert result["structuredContent"]["echo"] == "m"
    assert result["_meta"]["jobnimbus-mcp/cache"]["status"] == "hit_l2"
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "jobnimbus-mcp"


@pytest.mark.parametrize(
    ("header", "value"),
    [("Mcp-Method", "tools/list"), ("Mcp-Name", "boom"), ("MCP-Protocol-Version", "2025-11-25")],
)
def test_header_body_mismatch_is_400_32020(client: Client, header: str, value: str) -> None:
    body, headers = modern("tools/call", {"name": "echo", "arguments": {"text": "m"}})
    response = post(client, body, headers={**headers, **keyed(), header: value})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32020
    assert response.json()["id"] == 1


def test_missing_method_header_is_a_mismatch(client: Client) -> None:
    body, headers = modern("tools/list")
    del headers["Mcp-Method"]
    response = post(client, body, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32020


def test_legacy_request_with_wrong_method_header_is_a_mismatch(client: Client) -> None:
    response = post(client, rpc("tools/list"), headers={"Mcp-Method": "tools/call"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32020


def test_unsupported_modern_version_is_400_32022_with_supported(client: Client) -> None:
    body, headers = modern("server/discover")
    body["params"]["_meta"][META_VERSION] = "2099-01-01"
    response = post(client, body, headers={**headers, "MCP-Protocol-Version": "2099-01-01"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == -32022
    assert MODERN in error["data"]["supported"]
    assert error["data"]["requested"] == "2099-01-01"


def test_modern_unknown_method_is_404(client: Client) -> None:
    body, headers = modern("resources/list")
    response = post(client, body, headers=headers)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == -32601


@pytest.mark.parametrize("method", ["ping", "initialize"])
def test_handshake_methods_do_not_exist_in_modern_era(client: Client, method: str) -> None:
    body, headers = modern(method)
    response = post(client, body, headers=headers)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == -32601


def test_modern_request_without_meta_is_bad_params(client: Client) -> None:
    response = post(client, rpc("tools/list"), headers={"MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/list"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32602


def test_modern_notification_is_202(client: Client) -> None:
    message = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 3}}
    assert post(client, message, headers={"MCP-Protocol-Version": MODERN}).status_code == 202
