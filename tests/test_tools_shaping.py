"""Result shaping: the 25 KB cap cuts trailing records (or a detail's largest fields) and always says so."""

from __future__ import annotations

import json
from typing import Any

from mcp_tools import shaping
from mcp_tools.catalog import registry
from mcp_tools.catalog.base import ToolContext
from tests.fixtures.catalog import FakeJobNimbus


def note(i: int, size: int = 2000) -> dict[str, Any]:
    return {"jnid": f"a{i}", "type": "activity", "note": "x" * size, "date_created": i}


def test_a_small_page_is_untouched() -> None:
    body = shaping.list_result(3, [note(0), note(1)], {"from": 0, "size": 2}, "activity")
    assert "truncated" not in body
    assert (body["count"], body["next_from"], len(body["records"])) == (3, 2, 2)


def test_a_large_page_drops_trailing_records_and_says_where_to_continue() -> None:
    records = [note(i) for i in range(40)]
    body = shaping.list_result(500, records, {"from": 100, "size": 40}, "activity")
    kept = len(body["records"])
    assert 0 < kept < 40
    assert [r["jnid"] for r in body["records"]] == [f"a{i}" for i in range(kept)]
    assert body["next_from"] == 100 + kept
    assert body["truncated"]["returned"] == kept
    assert body["truncated"]["next_from"] == 100 + kept
    assert f"from={100 + kept}" in body["truncated"]["notice"]
    assert len(shaping.to_text(body).encode()) <= shaping.MAX_RESPONSE_BYTES
    # The largest fit: one more record would not have fitted.
    bigger = {**body, "records": records[: kept + 1]}
    assert len(shaping.to_text(bigger).encode()) > shaping.MAX_RESPONSE_BYTES - 400
    assert set(body) == {"count", "from", "size", "next_from", "records", "truncated"}  # the envelope, as documented


def test_one_record_larger_than_the_cap_is_reported_not_hidden() -> None:
    body = shaping.list_result(1, [note(0, 40_000)], {"from": 0, "size": 1}, "activity")
    assert body["records"] == []
    assert body["truncated"]["returned"] == 0
    assert body["next_from"] == 0


def test_a_large_detail_drops_its_largest_fields_and_names_them() -> None:
    record = {"jnid": "j1", "name": "Roof", "description": "d" * 30_000, "items": ["i" * 10] * 10}
    body = shaping.detail_result(record, "job", {"verbosity": "raw"})
    assert body["jnid"] == "j1"
    assert body["name"] == "Roof"
    assert "description" not in body
    assert body["truncated"]["omitted_fields"] == ["description"]
    assert len(shaping.to_text(body).encode()) <= shaping.MAX_RESPONSE_BYTES


def test_a_tool_answer_is_cut_to_the_cap(fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext) -> None:
    fake_jobnimbus.data["activities"] = [note(i, 3000) for i in range(100)]
    result = registry.call_tool(tool_ctx, "get_activities", {"size": 100})
    assert not result.is_error
    assert len(result.text.encode()) <= shaping.MAX_RESPONSE_BYTES
    assert json.loads(result.text)["truncated"]["returned"] == len(result.structured["records"])


def test_summary_keeps_only_identity_fields() -> None:
    record = {"jnid": "e1", "number": "1001", "status_name": "Sent", "total": 5.0, "type": "estimate", "owners": []}
    assert shaping.project(record, "estimate", "summary") == {
        "jnid": "e1",
        "number": "1001",
        "status_name": "Sent",
        "type": "estimate",
    }
    assert shaping.project(record, "estimate", "compact")["total"] == 5.0
    assert "owners" not in shaping.project(record, "estimate", "detailed")
