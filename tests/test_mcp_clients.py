"""End to end: the official `mcp` client (both eras) over real HTTP against a live server."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import TextContent

from tests.fixtures.servers import FakeCatalog, McpServer, mcp_call, mcp_list_tools, run_mcp

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("fake_catalog")]


async def _identity(session: Any) -> dict[str, Any]:
    if hasattr(session, "initialize_result"):  # ClientSession (legacy)
        init = session.initialize_result
        return {"version": init.protocol_version, "server": init.server_info.name, "instructions": init.instructions}
    return {
        "version": session.protocol_version,
        "server": session.server_info.name if session.server_info else None,
        "instructions": session.instructions,
    }


def test_legacy_handshake_negotiates_the_clients_version(mcp_server: McpServer) -> None:
    identity = run_mcp(mcp_server, _identity, era="legacy")
    assert identity["version"] == "2025-11-25"
    assert identity["server"] == "jobnimbus-mcp"
    assert "jnid" in identity["instructions"]


def test_auto_client_discovers_and_speaks_2026(mcp_server: McpServer) -> None:
    identity = run_mcp(mcp_server, _identity, era="auto")
    assert identity["version"] == "2026-07-28"
    assert "contact" in identity["instructions"]


@pytest.mark.parametrize("era", ["legacy", "auto"])
def test_tools_list_follows_cursors(mcp_server: McpServer, settings: Any, fake_catalog: FakeCatalog, era: Any) -> None:
    settings.MCP = {**settings.MCP, "TOOLS_PAGE_SIZE": 2}
    names = [tool.name for tool in mcp_list_tools(mcp_server, era=era)]
    assert names == [spec.name for spec in fake_catalog.specs]


@pytest.mark.parametrize("era", ["legacy", "auto"])
def test_tools_call_round_trip(mcp_server: McpServer, fake_catalog: FakeCatalog, era: Any) -> None:
    result = mcp_call(mcp_server, "echo", {"text": "über"}, era=era)
    assert result.is_error is False
    assert result.structured_content == {"echo": "über", "instance": mcp_server.instance}
    assert result.meta is not None
    assert result.meta["jobnimbus-mcp/cache"]["status"] == "hit_l2"
    assert fake_catalog.calls[-1][0].api_key == mcp_server.api_key


@pytest.mark.parametrize("era", ["legacy", "auto"])
def test_tool_failure_reaches_the_client_as_is_error(mcp_server: McpServer, era: Any) -> None:
    result = mcp_call(mcp_server, "nope", {}, era=era)
    assert result.is_error is True
    block = result.content[0]
    assert isinstance(block, TextContent)
    assert "nope" in block.text


@pytest.mark.parametrize("era", ["legacy", "auto"])
def test_call_without_key_fails_with_the_header_to_send(mcp_server: McpServer, era: Any) -> None:
    headers = {"X-JobNimbus-Instance": mcp_server.instance}
    with pytest.raises(MCPError, match="X-JobNimbus-Api-Key"):
        mcp_call(mcp_server, "echo", {"text": "x"}, era=era, headers=headers)


def test_get_and_delete_are_405_over_http(mcp_server: McpServer) -> None:
    with httpx2.Client() as http:
        assert http.get(mcp_server.mcp_url).status_code == 405
        assert http.delete(mcp_server.mcp_url).status_code == 405
