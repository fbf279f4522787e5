"""End to end with the real catalog: official client (both eras) -> live server -> sandbox JobNimbus.

The catalog engineer's tests/test_mcp_tools_e2e.py calls every tool; this file proves the protocol face carries
the real registry: the list, one read whose records match the sandbox's, and a refused key.
"""

from __future__ import annotations

from typing import Any

import pytest
from mcp_types import TextContent

from sandbox.server import SandboxHandle
from tests.fixtures.sandbox import api
from tests.fixtures.servers import McpServer, mcp_call, mcp_list_tools, new_api_key

pytestmark = pytest.mark.e2e

ERAS = ["legacy", "auto"]


@pytest.mark.parametrize("era", ERAS)
def test_real_catalog_is_listed_with_schemas(mcp_server: McpServer, era: Any) -> None:
    tools = {tool.name: tool for tool in mcp_list_tools(mcp_server, era=era)}
    assert {"get_contacts", "get_jobs", "get_job", "create_contact"} <= set(tools)
    assert tools["get_contacts"].input_schema["type"] == "object"
    assert tools["get_contacts"].annotations is not None
    assert tools["get_contacts"].annotations.read_only_hint is True


@pytest.mark.parametrize("era", ERAS)
def test_get_contacts_returns_the_sandbox_records(mcp_server: McpServer, sandbox: SandboxHandle, era: Any) -> None:
    result = mcp_call(mcp_server, "get_contacts", {"size": 5}, era=era)
    assert result.is_error is False, result.content
    structured = result.structured_content
    assert isinstance(structured, dict)
    expected = api(sandbox, "GET", "/contacts", params={"size": 5}).json()["results"]
    assert [record["jnid"] for record in structured["records"]] == [record["jnid"] for record in expected]
    assert result.meta is not None
    assert result.meta["jobnimbus-mcp/cache"]["status"] in {"miss", "hit_l1", "hit_l2", "coalesced", "bypass"}


def test_a_key_jobnimbus_refuses_is_an_is_error_result(mcp_server: McpServer) -> None:
    result = mcp_call(mcp_server.with_key(new_api_key()), "get_contacts", {"size": 1})
    assert result.is_error is True
    block = result.content[0]
    assert isinstance(block, TextContent)
    assert "refused the API key" in block.text
