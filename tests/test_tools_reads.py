"""Read tools against a fake JobNimbus: the filters they build, what they return, the cache request they make."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from cacheops.api import CacheOutcome, ReadRequest
from mcp_tools.catalog import registry, runtime
from mcp_tools.catalog.base import ToolContext
from tests.fixtures.catalog import FakeJobNimbus

DAY = 86_400
JAN_1 = 1_735_689_600  # 2025-01-01T00:00:00Z


def contact(jnid: str, **fields: Any) -> dict[str, Any]:
    return {"jnid": jnid, "type": "contact", "display_name": jnid.title(), "recid": 1, "geo": {"lat": 1}, **fields}


def job(jnid: str, parent: str, **fields: Any) -> dict[str, Any]:
    link = {"id": parent, "type": "contact"}
    return {"jnid": jnid, "type": "job", "name": f"Job {jnid}", "primary": link, "related": [link], **fields}


def call(ctx: ToolContext, tool: str, /, **args: Any) -> Any:
    result = registry.call_tool(ctx, tool, args)
    assert not result.is_error, result.text
    schema = registry.get_tool(tool).output_schema
    if schema is not None:  # what the official client checks, where a tool declares one
        Draft202012Validator(schema).validate(result.structured)
    return result


def test_shared_list_arguments_become_one_filter(fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext) -> None:
    call(tool_ctx, "get_jobs", size=5, **{"from": 10}, sort_field="date_updated", sort_direction="asc",
         date_from="2025-01-01", date_to=str(JAN_1 + DAY), status="Lead", related_to="c1")  # fmt: skip
    (sent,) = fake_jobnimbus.lists("jobs")
    assert sent == {
        "size": 5,
        "from_": 10,
        "sort_field": "date_updated",
        "sort_direction": "asc",
        "filter": {
            "must": [
                {"range": {"date_created": {"gte": JAN_1, "lte": JAN_1 + DAY}}},
                {"term": {"status_name": "Lead"}},
                {"term": {"related.id": "c1"}},
            ]
        },
    }


def test_an_iso_end_date_covers_the_whole_day(fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext) -> None:
    call(tool_ctx, "get_tasks", date_to="2025-01-01")
    (sent,) = fake_jobnimbus.lists("tasks")
    assert sent["filter"] == {"must": [{"range": {"date_start": {"lte": JAN_1 + DAY - 1}}}]}


def test_a_list_page_says_where_the_next_one_starts(fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext) -> None:
    fake_jobnimbus.data["contacts"] = [contact(f"c{i}") for i in range(5)]
    first = call(tool_ctx, "get_contacts", size=2).structured
    last = call(tool_ctx, "get_contacts", size=2, **{"from": 4}).structured
    assert (first["count"], first["from"], first["size"], first["next_from"]) == (5, 0, 2, 2)
    assert [r["jnid"] for r in first["records"]] == ["c0", "c1"]
    assert last["next_from"] is None
    assert [r["jnid"] for r in last["records"]] == ["c4"]


def test_verbosity_and_fields_shape_records(fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext) -> None:
    fake_jobnimbus.data["contacts"] = [contact("c1", email="a@b.co", status_name="Lead", description="")]
    summary = call(tool_ctx, "get_contacts", verbosity="summary").structured["records"][0]
    compact = call(tool_ctx, "get_contacts").structured["records"][0]
    detailed = call(tool_ctx, "get_contacts", verbosity="detailed").structured["records"][0]
    raw = call(tool_ctx, "get_contacts", verbosity="raw").structured["records"][0]
    fields = call(tool_ctx, "get_contacts", fields=["email"]).structured["records"][0]
    assert summary == {"jnid": "c1", "type": "contact", "display_name": "C1", "status_name": "Lead"}
    assert compact == {**summary, "email": "a@b.co"}
    assert "recid" not in detailed
    assert "description" not in detailed
    assert detailed["email"] == "a@b.co"
    assert raw == fake_jobnimbus.data["contacts"][0]
    assert fields == {"jnid": "c1", "email": "a@b.co"}


def test_the_text_content_is_the_structured_content(fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext) -> None:
    import json

    fake_jobnimbus.data["jobs"] = [job("j1", "c1")]
    result = call(tool_ctx, "get_jobs")
    assert json.loads(result.text) == result.structured


@pytest.mark.parametrize(
    ("query", "clause"),
    [
        ("Ada@Example.com", {"term": {"email": "ada@example.com"}}),
        ("(404) 555-0142", {"wildcard": {"mobile_phone": "*404*555*0142*"}}),
        ("1042", {"term": {"number": "1042"}}),
        ("12 Oak Street", {"wildcard": {"address_line1": "*12 Oak Street*"}}),
        ("lovelace", {"wildcard": {"display_name": "*lovelace*"}}),
    ],
)
def test_search_contacts_picks_one_clause_by_query_shape(
    query: str, clause: dict[str, Any], fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext
) -> None:
    call(tool_ctx, "search_contacts", query=query)
    assert fake_jobnimbus.lists("contacts")[0]["filter"] == {"must": [clause]}


def test_search_finds_a_phone_whatever_its_formatting(fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext) -> None:
    fake_jobnimbus.data["contacts"] = [contact("c1", mobile_phone="(404) 555-0142"), contact("c2", mobile_phone="")]
    found = call(tool_ctx, "search_contacts", query="404.555.0142").structured
    assert [r["jnid"] for r in found["records"]] == ["c1"]


def test_search_jobs_uses_job_fields(fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext) -> None:
    fake_jobnimbus.data["jobs"] = [job("j1", "c1", name="Smith - Roof"), job("j2", "c2", name="Jones - Gutters")]
    found = call(tool_ctx, "search_jobs", query="smith", status="Lead").structured
    sent = fake_jobnimbus.lists("jobs")[0]["filter"]["must"]
    assert sent == [{"term": {"status_name": "Lead"}}, {"wildcard": {"name": "*smith*"}}]
    assert found["count"] == 0  # no job is in status Lead: both clauses must match


def test_attachments_filter_by_parent_and_file_type(fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext) -> None:
    fake_jobnimbus.data["files"] = [
        {"jnid": "f1", "related": [{"id": "j1"}], "record_type_name": "Photo", "filename": "a.jpg"},
        {"jnid": "f2", "related": [{"id": "j1"}], "record_type_name": "Contract", "filename": "b.pdf"},
        {"jnid": "f3", "related": [{"id": "j2"}], "record_type_name": "Photo", "filename": "c.jpg"},
    ]
    found = call(tool_ctx, "get_attachments", job_id="j1", file_type="Photo").structured
    assert [r["jnid"] for r in found["records"]] == ["f1"]


def test_calendar_merges_tasks_and_activities_in_the_window(
    fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext
) -> None:
    fake_jobnimbus.data["tasks"] = [
        {"jnid": "t1", "type": "task", "date_start": JAN_1 + 3 * 3600},
        {"jnid": "t2", "type": "task", "date_start": JAN_1 + 9 * DAY},
    ]
    fake_jobnimbus.data["activities"] = [{"jnid": "a1", "type": "activity", "date_start": JAN_1 + 3600}]
    found = call(tool_ctx, "get_calendar_activities", date_from="2025-01-01", date_to="2025-01-02").structured
    assert [r["jnid"] for r in found["records"]] == ["a1", "t1"]
    assert found["count"] == 2
    for sent in fake_jobnimbus.lists("tasks") + fake_jobnimbus.lists("activities"):
        assert sent["filter"]["must"][0] == {"range": {"date_start": {"gte": JAN_1, "lte": JAN_1 + 2 * DAY - 1}}}


def test_detail_tools_return_the_record(fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext) -> None:
    fake_jobnimbus.data["invoices"] = [{"jnid": "i1", "type": "invoice", "total": 10.5, "items": [{"name": "x"}]}]
    expected = {"jnid": "i1", "type": "invoice", "total": 10.5, "currency": "USD"}  # money says its currency
    assert call(tool_ctx, "get_invoices", jnid="i1").structured == expected  # a list tool given a jnid
    assert call(tool_ctx, "get_invoices", jnid="i1", verbosity="raw").structured["items"] == [{"name": "x"}]
    assert fake_jobnimbus.lists("invoices") == []


def test_a_list_tool_reads_one_record_keyed_by_its_id_alone(
    fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_jobnimbus.data["tasks"] = [{"jnid": "t1", "type": "task", "title": "Inspect"}]
    seen: list[ReadRequest] = []

    def spy(request: ReadRequest, fetch: Any) -> CacheOutcome:
        seen.append(request)
        return CacheOutcome(value=fetch(), status="miss", ttl_s=60)

    monkeypatch.setattr(runtime, "read_through", spy)
    call(tool_ctx, "get_tasks", jnid="t1", size=5, status="Open", fields=["title"])
    # The page and filter arguments never key a record's entry; the policy is the one the tool declares.
    reads = [(r.op, r.args, r.policy) for r in seen if r.entity == "task"]
    assert reads == [("get", {"jnid": "t1"}, registry.get_tool("get_tasks").policy)]


def test_filters_given_beside_a_jnid_are_named_as_unused(fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext) -> None:
    fake_jobnimbus.data["estimates"] = [{"jnid": "e1", "type": "estimate", "status_name": "Draft"}]
    answer = call(tool_ctx, "get_estimates", jnid="e1", status="Sent", size=5).structured
    assert answer["jnid"] == "e1"  # the record, whatever the filters say
    (said,) = answer["notes"]
    assert "size, status did not filter anything" in said
    assert "notes" not in call(tool_ctx, "get_estimates", jnid="e1", verbosity="summary").structured


def test_a_missing_record_is_an_error_result(fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext) -> None:
    result = registry.call_tool(tool_ctx, "get_contact", {"jnid": "nope"})
    assert result.is_error
    assert "Not found in JobNimbus" in result.text


def test_users_settings_and_webhooks(
    fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mcp_tools.catalog import account

    fake_jobnimbus.users_list = [
        {"id": f"u{i}", "first_name": "U", "email": "u@x.co", "image_url": "x"} for i in range(3)
    ]
    users = call(tool_ctx, "get_users", size=2).structured
    assert (users["count"], users["next_from"], users["records"][0]) == (
        3,
        2,
        {"id": "u0", "first_name": "U", "email": "u@x.co"},
    )
    assert call(tool_ctx, "get_account_settings").structured["taskTypes"][0]["name"] == "Appointment"
    settings.MCP = {**settings.MCP, "PUBLIC_BASE_URL": "https://mcp.example.com"}
    monkeypatch.setattr(
        account, "recent_webhook_deliveries", lambda instance, limit: [{"event_id": limit, "i": instance}]
    )
    hooks = call(tool_ctx, "get_webhooks", limit=3).structured
    assert hooks["url"] == "https://mcp.example.com/webhooks/jobnimbus/acme"
    assert "X-Webhook-Token" in hooks["headers"]
    assert hooks["recent_deliveries"] == [{"event_id": 3, "i": "acme"}]


def test_reads_go_through_the_cache_with_tags_and_report_its_outcome(
    fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[ReadRequest] = []

    def fake_read_through(request: ReadRequest, fetch: Any) -> CacheOutcome:
        seen.append(request)
        return CacheOutcome(value=fetch(), status="hit_l2", age_s=4.0, ttl_s=300)

    monkeypatch.setattr(runtime, "read_through", fake_read_through)
    result = registry.call_tool(tool_ctx, "get_jobs", {"related_to": "c1", "verbosity": "summary"})
    detail = registry.call_tool(tool_ctx, "get_job", {"jnid": "j1"})
    assert result.cache == {"status": "hit_l2", "age_s": 4.0, "ttl_s": 300}
    listed, got = seen[0], seen[1]
    assert (listed.entity, listed.op, listed.policy, listed.tool) == ("job", "list", "jobs", "get_jobs")
    assert set(listed.tags) == {"list:job", "rel:c1"}
    assert listed.scope == tool_ctx.scope
    assert "verbosity" not in listed.args  # shaping does not split cache entries
    assert (got.entity, got.policy, list(got.tags)) == ("job", "job_detail", ["rec:j1"])
    assert detail.is_error  # the fake has no j1; the error passes through the cache untouched
