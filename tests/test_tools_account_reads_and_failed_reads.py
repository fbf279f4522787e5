"""Account reads and failed reads: strict integers, get_webhooks checks the key, get_users cached once, and the cache
status a failed read reports."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from cacheops.api import CacheOutcome, ReadRequest
from mcp_tools.catalog import account, registry, runtime
from mcp_tools.catalog.base import ToolContext
from mcp_tools.jobnimbus.errors import AuthError
from tests.fixtures.catalog import FakeJobNimbus


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[ReadRequest]:
    """Record every cached read the tools make, and run the fetch (a miss each time)."""
    seen: list[ReadRequest] = []

    def spy(request: ReadRequest, fetch: Any) -> CacheOutcome:
        seen.append(request)
        return CacheOutcome(value=fetch(), status="miss", ttl_s=60)

    monkeypatch.setattr(runtime, "read_through", spy)
    return seen


@pytest.mark.parametrize(
    ("tool", "args", "says"),
    [
        ("get_users", {"from": 1.0}, "Argument 'from' must be an integer >= 0, got 1.0"),
        ("get_jobs", {"size": 5.0}, "Argument 'size' must be an integer between 1 and 100, got 5.0"),
    ],
)
def test_a_whole_number_float_is_not_an_integer(
    fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext, tool: str, args: dict[str, Any], says: str
) -> None:
    result = registry.call_tool(tool_ctx, tool, args)
    assert result.is_error
    assert result.text == says
    assert fake_jobnimbus.calls == []  # refused before JobNimbus is asked


def test_get_users_keeps_one_cached_copy_whatever_the_page(
    fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext, reads: list[ReadRequest]
) -> None:
    fake_jobnimbus.users_list = [{"id": f"u{i}"} for i in range(5)]
    first = registry.call_tool(tool_ctx, "get_users", {"size": 2})
    second = registry.call_tool(tool_ctx, "get_users", {"from": 2, "size": 2})
    assert [r["id"] for r in second.structured["records"]] == ["u2", "u3"]
    assert not first.is_error
    assert [dict(r.args) for r in reads] == [{}, {}]  # the same cache key for every page


def test_get_webhooks_refuses_a_key_jobnimbus_refuses(
    fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext, monkeypatch: pytest.MonkeyPatch, reads: list[ReadRequest]
) -> None:
    asked: list[str] = []

    def deliveries(instance: str, limit: int) -> list[dict[str, Any]]:
        asked.append(instance)
        return []

    monkeypatch.setattr(account, "recent_webhook_deliveries", deliveries)
    fake_jobnimbus.fail = AuthError("invalid API key")
    result = registry.call_tool(tool_ctx, "get_webhooks", {})
    assert result.is_error
    assert "JobNimbus refused the API key" in result.text
    assert asked == []  # nothing of the deliveries reached the caller
    assert [(r.entity, r.scope.tenant) for r in reads] == [("webhook", tool_ctx.tenant)]  # checked per tenant


def test_get_webhooks_shows_the_latest_deliveries_every_time(
    fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext, monkeypatch: pytest.MonkeyPatch, reads: list[ReadRequest]
) -> None:
    stored: list[dict[str, Any]] = []
    monkeypatch.setattr(account, "recent_webhook_deliveries", lambda instance, limit: list(stored[:limit]))
    assert registry.call_tool(tool_ctx, "get_webhooks", {}).structured["recent_deliveries"] == []
    stored.append({"event_id": 1})
    assert registry.call_tool(tool_ctx, "get_webhooks", {}).structured["recent_deliveries"] == [{"event_id": 1}]
    # Only the key check is cached, under get_webhooks' own policy; the deliveries themselves never are.
    assert [(r.entity, r.policy) for r in reads] == [("webhook", "webhooks")] * 2


def test_a_cached_read_jobnimbus_fails_reports_a_miss(fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext) -> None:
    result = registry.call_tool(tool_ctx, "get_contact", {"jnid": "nope"})
    assert result.is_error
    assert result.cache == {"status": "miss", "age_s": None, "ttl_s": None}


def test_with_the_cache_off_a_failed_read_is_a_bypass(
    fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext, settings: Any
) -> None:
    settings.CACHEOPS_ENGINE = {**settings.CACHEOPS_ENGINE, "ENABLED": False}
    result = registry.call_tool(tool_ctx, "get_contact", {"jnid": "nope"})
    assert result.is_error
    assert result.cache is None


def test_without_a_database_a_refused_invalidation_is_only_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from cacheops import api, invalidation
    from cacheops.errors import CacheBackendError

    def down(instance: str, tags: object) -> int:
        raise CacheBackendError("redis is down")

    monkeypatch.setattr(invalidation, "invalidate_tags", down)
    with pytest.raises(CacheBackendError):  # the caller still learns Redis refused, not a database error
        api.apply_change("acme", "task", "updated", "T7", ["J7"])
    assert "could not store the task updated T7 invalidation" in caplog.text


def test_the_suggested_webhook_body_asks_for_the_parent_ids(
    fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cacheops.webhooks import parse_delivery

    monkeypatch.setattr(account, "recent_webhook_deliveries", lambda instance, limit: [])
    body = registry.call_tool(tool_ctx, "get_webhooks", {}).structured["body"]
    assert {"primary", "related"} <= set(body)
    # Unfilled merge tokens name no record; filled ones are the parents.
    unfilled = parse_delivery("acme", orjson.dumps({**body, "event": "created", "type": "Task", "jnid": "T1"}), None)
    assert list(unfilled.related) == []
    filled = {
        **body,
        "event": "created",
        "type": "Task",
        "jnid": "T1",
        "primary": {"id": "C1"},
        "related": [{"id": "J1"}],
    }
    assert list(parse_delivery("acme", orjson.dumps(filled), None).related) == ["J1", "C1"]
