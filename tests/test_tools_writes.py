"""Write tools against a fake JobNimbus: bodies sent, defaults filled and announced, invalidation, bulk import."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from mcp_tools.catalog import registry, runtime
from mcp_tools.catalog.base import ToolContext
from tests.fixtures.catalog import FakeJobNimbus

Change = tuple[str, str, str, str | None, list[str]]


@pytest.fixture
def changes(monkeypatch: pytest.MonkeyPatch) -> list[Change]:
    """Record every apply_change a write makes (the read-your-writes invalidation)."""
    seen: list[Change] = []

    def record(instance: str, entity: str, event: str, jnid: str | None, related: Any = (), *, settle: bool) -> int:
        assert settle, "a write waits for a refused invalidation before it answers"
        seen.append((instance, entity, event, jnid, list(related)))
        return 0

    monkeypatch.setattr(runtime, "apply_change", record)
    return seen


def call(ctx: ToolContext, tool: str, /, **args: Any) -> dict[str, Any]:
    result = registry.call_tool(ctx, tool, args)
    assert not result.is_error, result.text
    schema = registry.get_tool(tool).output_schema
    if schema is not None:  # declared only where it helps (bulk_import_contacts)
        Draft202012Validator(schema).validate(result.structured)
    assert result.cache is None  # writes are never cached
    return result.structured


def creates(fake: FakeJobNimbus, resource: str) -> list[dict[str, Any]]:
    return [d["body"] for op, res, d in fake.calls if op == "create" and res == resource]


def test_create_contact_fills_the_first_workflow_and_status_and_says_so(
    fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext, changes: list[Change]
) -> None:
    out = call(tool_ctx, "create_contact", first_name="Ada", last_name="Lovelace", email="ada@example.com")
    (body,) = creates(fake_jobnimbus, "contacts")
    assert body == {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com",
                    "display_name": "Ada Lovelace", "record_type_name": "Customer", "status_name": "Lead"}  # fmt: skip
    assert "record_type_name='Customer', status_name='Lead'" in out["notice"]
    assert out["record"]["jnid"] == "new1"
    assert changes == [("acme", "contact", "created", "new1", [])]


def test_a_given_workflow_gets_its_own_first_status(fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext) -> None:
    out = call(tool_ctx, "create_contact", company="Acme Supply", record_type_name="Vendor")
    assert creates(fake_jobnimbus, "contacts")[0]["status_name"] == "Active"
    assert "status_name='Active'" in out["notice"]
    assert "record_type_name" not in out["notice"]


def test_an_unknown_workflow_is_refused_listing_the_known_ones(
    fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext
) -> None:
    result = registry.call_tool(tool_ctx, "create_contact", {"company": "X", "record_type_name": "Nope"})
    assert result.is_error
    assert "'Customer', 'Vendor'" in result.text
    assert creates(fake_jobnimbus, "contacts") == []


def test_create_job_links_its_contact_and_invalidates_it(
    fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext, changes: list[Change]
) -> None:
    out = call(tool_ctx, "create_job", name="Smith - Roof", primary_contact_id="c1", date_start="2025-01-01")
    (body,) = creates(fake_jobnimbus, "jobs")
    assert body["primary"] == {"id": "c1"}
    assert body["related"] == [{"id": "c1"}]
    assert body["date_start"] == 1_735_689_600
    assert (body["record_type_name"], body["status_name"]) == ("Retail", "Lead")
    assert "notice" in out
    assert changes == [("acme", "job", "created", "new1", ["c1"])]


def test_with_workflow_and_status_given_nothing_is_filled_and_the_names_are_checked_once(
    fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext
) -> None:
    out = call(tool_ctx, "create_job", name="X", record_type_name="Retail", status_name="Lead")
    assert "notice" not in out
    call(tool_ctx, "create_job", name="Y", record_type_name="Retail", status_name="Lead")
    # The settings are read to check the names (an unknown one is refused with its near matches), through the
    # cache: once, whatever the number of writes.
    assert [op for op, _, _ in fake_jobnimbus.calls] == ["settings", "create", "create"]


def test_update_and_delete_send_only_what_changes(
    fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext, changes: list[Change]
) -> None:
    fake_jobnimbus.data["tasks"] = [{"jnid": "t1", "title": "Call", "related": [{"id": "j1"}], "is_active": True}]
    out = call(tool_ctx, "update_task", jnid="t1", is_completed=True)
    assert out["record"]["is_completed"] is True
    call(tool_ctx, "delete_task", jnid="t1")
    updates = [d for op, _, d in fake_jobnimbus.calls if op == "update"]
    assert updates == [{"jnid": "t1", "body": {"is_completed": True}}, {"jnid": "t1", "body": {"is_active": False}}]
    assert changes == [("acme", "task", "updated", "t1", ["j1"]), ("acme", "task", "deleted", "t1", ["j1"])]


def test_a_note_is_an_activity_on_its_record(fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext) -> None:
    out = call(tool_ctx, "create_activity", note="Customer called", related_to="j1")
    assert creates(fake_jobnimbus, "activities") == [
        {"note": "Customer called", "related": [{"id": "j1"}], "record_type_name": "Note"}
    ]
    assert "Note" in out["notice"]


def test_create_task_defaults_its_type(fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext) -> None:
    call(tool_ctx, "create_task", title="Inspect", date_start="1700000000", related_to="j1")  # unix seconds as digits
    assert creates(fake_jobnimbus, "tasks") == [
        {"title": "Inspect", "date_start": 1_700_000_000, "related": [{"id": "j1"}], "record_type_name": "Appointment"}
    ]


def test_an_estimate_gets_totals_from_its_items(fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext) -> None:
    items = [
        {"name": "Shingles", "quantity": 30, "price": 120.5, "cost": 80},
        {"name": "Labor", "quantity": 2, "price": 55},
    ]
    call(tool_ctx, "create_estimate", related_to="j1", items=items)
    (body,) = creates(fake_jobnimbus, "estimates")
    assert (body["subtotal"], body["cost"]) == (3725.0, 2400.0)
    assert "total" not in body  # tax rules are JobNimbus's
    assert body["related"] == [{"id": "j1"}]


def test_jobnimbus_rejecting_a_write_is_an_error_result_and_invalidates_nothing(
    fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext, changes: list[Change]
) -> None:
    fake_jobnimbus.fail_on = {"Bad"}
    result = registry.call_tool(tool_ctx, "create_contact", {"display_name": "Bad", "record_type_name": "Customer",
                                                              "status_name": "Lead"})  # fmt: skip
    assert result.is_error
    assert result.text == "JobNimbus rejected the request: display_name is not allowed"
    assert changes == []


def rows(*external_ids: str | None) -> list[dict[str, Any]]:
    return [{"first_name": f"P{i}", **({"external_id": e} if e else {})} for i, e in enumerate(external_ids)]


def test_bulk_import_reports_each_row_and_a_bad_row_stops_nothing(
    fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext
) -> None:
    fake_jobnimbus.fail_on = {"Bad"}
    batch = [*rows("x1"), {"email": 5}, {"display_name": "Bad"}, {"company": "NoName"}, {"phone": "1"}, *rows("x2")]
    out = call(tool_ctx, "bulk_import_contacts", rows=batch)
    statuses = [(r["row"], r["status"]) for r in out["results"]]
    assert statuses == [(0, "created"), (1, "failed"), (2, "failed"), (3, "created"), (4, "failed"), (5, "created")]
    messages = {r["row"]: r.get("message", "") for r in out["results"]}
    assert messages[1].startswith("Argument 'rows[1].email' must be a string")
    assert "display_name is not allowed" in messages[2]
    assert "Unknown argument 'rows[4].phone'" in messages[4]
    assert (out["created"], out["skipped"], out["failed"]) == (3, 0, 3)


def test_a_row_that_is_no_object_refuses_the_import_before_any_write(
    fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext
) -> None:
    # The schema says rows are objects (typed items, which every client and provider reads); a row of another type
    # is a malformed call, refused whole and named, so nothing is half imported.
    result = registry.call_tool(tool_ctx, "bulk_import_contacts", {"rows": [*rows("x1"), 7]})
    assert result.is_error
    assert result.text == "Argument 'rows[1]' must be an object, got 7"
    assert fake_jobnimbus.calls == []


def test_a_retried_bulk_import_creates_no_duplicates(fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext) -> None:
    first = call(tool_ctx, "bulk_import_contacts", rows=rows("x1", "x2"))
    again = call(tool_ctx, "bulk_import_contacts", rows=rows("x1", "x2", "x3", "x3"))
    assert first["created"] == 2
    assert [r["status"] for r in again["results"]] == ["skipped", "skipped", "created", "skipped"]
    assert len(creates(fake_jobnimbus, "contacts")) == 3
    lookup = fake_jobnimbus.lists("contacts")[-1]
    assert lookup["filter"] == {"must": [{"terms": {"external_id": ["x1", "x2", "x3"]}}]}


def test_a_write_that_landed_is_reported_done_when_redis_cannot_take_the_invalidation(
    fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cacheops.errors import CacheBackendError

    def redis_down(*_args: Any, **_kwargs: Any) -> int:
        raise CacheBackendError("Redis failed: ConnectionError")

    monkeypatch.setattr(runtime, "apply_change", redis_down)
    out = call(tool_ctx, "create_contact", first_name="Ada", last_name="Lovelace")
    assert out["record"]["jnid"] == "new1"
    assert len(creates(fake_jobnimbus, "contacts")) == 1  # sent once; the caller has no reason to retry
