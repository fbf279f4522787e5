"""Composed reads (`include`): a job or contact with its related records in one call, each part read through the
cache exactly as its own list tool would read it (key, tags, policy), against a fake JobNimbus and the real engine."""

from __future__ import annotations

import secrets
from typing import Any

import orjson
import pytest

from cacheops.api import CacheOutcome, ReadRequest
from mcp_tools.catalog import compose, registry, runtime
from mcp_tools.catalog.base import ToolContext, ToolResult
from mcp_tools.jobnimbus.errors import UnavailableError
from mcp_tools.shaping import MAX_RESPONSE_BYTES
from tests.fixtures.catalog import FakeJobNimbus
from tests.fixtures.redis import CacheEnv

JOB_PARTS = ["contacts", "tasks", "activities", "estimates", "invoices", "attachments"]
CONTACT_PARTS = ["jobs", "tasks", "activities", "estimates", "invoices", "attachments"]
# The list resource each part reads, and the tool a model would call for it.
RESOURCES = {"tasks": "tasks", "activities": "activities", "estimates": "estimates", "invoices": "invoices",
             "attachments": "files", "jobs": "jobs"}  # fmt: skip


def ref(jnid: str, kind: str) -> dict[str, Any]:
    return {"id": jnid, "type": kind, "name": jnid}


def seed(fake: FakeJobNimbus, tasks: int = 3, title: str = "Inspect") -> None:
    """One customer c1 with job j1 (primary c1, related c1 and c2) and records of every kind on the job."""
    on_job = [ref("j1", "job"), ref("c1", "contact")]
    fake.data = {
        "contacts": [
            {"jnid": "c1", "type": "contact", "display_name": "Ada", "related": []},
            {"jnid": "c2", "type": "contact", "display_name": "Bob", "related": []},
        ],
        "jobs": [
            {
                "jnid": "j1",
                "type": "job",
                "name": "Roof",
                "primary": ref("c1", "contact"),
                "related": [ref("c1", "contact"), ref("c2", "contact")],
            }
        ],
        "tasks": [{"jnid": f"t{i}", "type": "task", "title": f"{title} {i}", "related": on_job} for i in range(tasks)],
        "activities": [{"jnid": "a1", "type": "activity", "note": "called", "related": on_job}],
        "estimates": [{"jnid": "e1", "type": "estimate", "total": 100, "related": on_job}],
        "invoices": [{"jnid": "i1", "type": "invoice", "total": 100, "related": on_job}],
        "files": [{"jnid": "f1", "type": "attachment", "filename": "roof.jpg", "related": on_job}],
    }


def call(ctx: ToolContext, tool: str, /, **args: Any) -> ToolResult:
    result = registry.call_tool(ctx, tool, args)
    assert not result.is_error, result.text
    return result


def upstream(fake: FakeJobNimbus) -> list[tuple[str, str]]:
    """Return (op, resource) of every JobNimbus call so far."""
    return [(op, resource) for op, resource, _ in fake.calls]


def statuses(result: ToolResult) -> dict[str, str]:
    assert result.cache is not None
    return {name: meta["status"] for name, meta in result.cache["parts"].items()}


def test_the_include_enum_names_parts_whose_tools_exist() -> None:
    for tool, entity, parts in (("get_job", "job", JOB_PARTS), ("get_contact", "contact", CONTACT_PARTS)):
        spec = registry.get_tool(tool)
        include = spec.input_schema["properties"]["include"]
        assert (include["type"], include["items"]["enum"]) == ("array", parts)
        assert spec.entity == entity
        for part in compose.PARTS[entity].values():  # a renamed list tool must be followed here
            assert registry.get_tool(part.tool).read_only


def test_one_call_returns_the_job_with_every_part(fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext) -> None:
    seed(fake_jobnimbus)
    result = call(tool_ctx, "get_job", jnid="j1", include=JOB_PARTS)
    answer = result.structured
    assert (answer["jnid"], answer["name"]) == ("j1", "Roof")
    included = answer["included"]
    assert list(included) == JOB_PARTS
    assert [r["jnid"] for r in included["contacts"]["records"]] == ["c1", "c2"]  # primary first
    assert [r["jnid"] for r in included["tasks"]["records"]] == ["t0", "t1", "t2"]
    assert included["tasks"] == {**included["tasks"], "count": 3, "returned": 3, "truncated": False}
    assert "more" not in included["tasks"]
    for name in ("activities", "estimates", "invoices", "attachments"):
        assert included[name]["count"] == 1, name
    # The detail's own outcome stays where clients read it; each part's is beside it.
    assert result.cache is not None
    assert {"status", "age_s", "ttl_s"} <= set(result.cache)
    assert set(result.cache["parts"]) == set(JOB_PARTS)
    assert all({"status", "age_s", "ttl_s"} == set(m) for m in result.cache["parts"].values())


def test_a_contact_includes_its_jobs(fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext) -> None:
    seed(fake_jobnimbus)
    answer = call(tool_ctx, "get_contact", jnid="c1", include=["jobs", "tasks"]).structured
    assert [r["jnid"] for r in answer["included"]["jobs"]["records"]] == ["j1"]
    assert answer["included"]["tasks"]["count"] == 3
    assert list(answer["included"]) == ["jobs", "tasks"]


def test_each_part_is_the_list_tools_own_read(
    fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same tool, entity, op, policy, key arguments and tags as the plain call with related_to (or jnid)."""
    seed(fake_jobnimbus)
    seen: list[ReadRequest] = []

    def spy(request: ReadRequest, fetch: Any) -> CacheOutcome:
        seen.append(request)
        return CacheOutcome(value=fetch(), status="miss", ttl_s=60)

    monkeypatch.setattr(runtime, "read_through", spy)
    call(tool_ctx, "get_job", jnid="j1", include=JOB_PARTS)
    composed = list(seen)
    seen.clear()
    call(tool_ctx, "get_job", jnid="j1")
    for tool in ("get_tasks", "get_activities", "get_estimates", "get_invoices", "get_attachments"):
        call(tool_ctx, tool, related_to="j1")
    for contact in ("c1", "c2"):
        call(tool_ctx, "get_contact", jnid=contact)

    def identity(r: ReadRequest) -> tuple[Any, ...]:
        return (
            r.tool,
            r.entity,
            r.op,
            r.policy,
            orjson.dumps(dict(r.args), option=orjson.OPT_SORT_KEYS),
            tuple(r.tags),
        )

    # The composed call may read the job twice (the answer, then its links); never under another key.
    assert {identity(r) for r in composed} == {identity(r) for r in seen}


@pytest.mark.parametrize("cache_backend", ["fake", "real"], indirect=True)
def test_each_part_is_one_upstream_call_then_a_hit(
    cache_backend: CacheEnv, fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext
) -> None:
    seed(fake_jobnimbus)
    first = call(tool_ctx, "get_job", jnid="j1", include=JOB_PARTS)
    assert sorted(upstream(fake_jobnimbus)) == sorted(
        [("get", "jobs"), ("get", "contacts"), ("get", "contacts")]
        + [("list", RESOURCES[name]) for name in JOB_PARTS if name != "contacts"]
    )
    assert first.cache is not None
    assert first.cache["status"] == "miss"
    assert set(statuses(first).values()) == {"miss"}
    fake_jobnimbus.calls.clear()
    second = call(tool_ctx, "get_job", jnid="j1", include=JOB_PARTS)
    assert upstream(fake_jobnimbus) == []
    assert second.cache is not None
    assert second.cache["status"].startswith("hit")
    assert all(status.startswith("hit") for status in statuses(second).values()), statuses(second)
    assert second.structured == first.structured


@pytest.mark.parametrize("cache_backend", ["fake", "real"], indirect=True)
def test_a_plain_list_call_after_an_include_is_a_hit(
    cache_backend: CacheEnv, fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext
) -> None:
    seed(fake_jobnimbus)
    call(tool_ctx, "get_job", jnid="j1", include=["tasks", "attachments"])
    fake_jobnimbus.calls.clear()
    tasks = call(tool_ctx, "get_tasks", related_to="j1")
    files = call(tool_ctx, "get_attachments", related_to="j1")
    job = call(tool_ctx, "get_job", jnid="j1")  # the include never splits the detail's own entry
    assert upstream(fake_jobnimbus) == []
    for result in (tasks, files, job):
        assert result.cache is not None
        assert result.cache["status"].startswith("hit"), result.cache


@pytest.mark.parametrize("cache_backend", ["fake", "real"], indirect=True)
def test_a_new_task_on_the_job_invalidates_the_task_part(
    cache_backend: CacheEnv, fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext
) -> None:
    seed(fake_jobnimbus)
    call(tool_ctx, "get_job", jnid="j1", include=["tasks", "estimates"])
    call(tool_ctx, "create_task", title="Measure", date_start="2026-03-01", related_to="j1")
    fake_jobnimbus.calls.clear()
    after = call(tool_ctx, "get_job", jnid="j1", include=["tasks", "estimates"])
    tasks = after.structured["included"]["tasks"]
    assert tasks["count"] == 4
    assert "Measure" in [r.get("title") for r in tasks["records"]]  # read-your-writes
    # The rules drop what a plain get_tasks/get_estimates related_to=j1 would lose: every list under rel:j1, and
    # the job itself (rec:j1); nothing else was asked again.
    assert after.cache is not None
    assert after.cache["status"] == "miss"
    assert statuses(after) == {"tasks": "miss", "estimates": "miss"}
    assert sorted(upstream(fake_jobnimbus)) == [("get", "jobs"), ("list", "estimates"), ("list", "tasks")]


@pytest.mark.parametrize("cache_backend", ["fake", "real"], indirect=True)
def test_another_key_never_sees_an_include_it_did_not_read(
    cache_backend: CacheEnv, fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext
) -> None:
    seed(fake_jobnimbus)
    call(tool_ctx, "get_job", jnid="j1", include=JOB_PARTS)
    other = ToolContext(instance=tool_ctx.instance, api_key="z" * 16, tenant="t-" + secrets.token_hex(8))
    fake_jobnimbus.calls.clear()
    result = call(other, "get_job", jnid="j1", include=JOB_PARTS)
    assert result.cache is not None
    assert result.cache["status"] == "miss"
    assert set(statuses(result).values()) == {"miss"}
    assert len(upstream(fake_jobnimbus)) == 8  # the job, two contacts, five lists: nothing shared


def test_a_failing_part_is_a_note_not_a_failed_call(
    fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(fake_jobnimbus)
    plain_list = fake_jobnimbus.list

    def list_failing_estimates(resource: str, **kwargs: Any) -> Any:
        if resource == "estimates":
            raise UnavailableError("503", retry_after_s=2)
        return plain_list(resource, **kwargs)

    monkeypatch.setattr(fake_jobnimbus, "list", list_failing_estimates)
    result = call(tool_ctx, "get_job", jnid="j1", include=["tasks", "estimates"])
    included = result.structured["included"]
    assert list(included["estimates"]) == ["error"]
    assert included["estimates"]["error"].startswith("JobNimbus is unavailable, retry in 2 s")
    assert included["tasks"]["count"] == 3
    assert statuses(result)["estimates"] == "miss"


def test_a_missing_record_fails_the_call_before_any_part(fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext) -> None:
    seed(fake_jobnimbus)
    result = registry.call_tool(tool_ctx, "get_job", {"jnid": "nope", "include": ["tasks"]})
    assert result.is_error
    assert "Not found in JobNimbus" in result.text
    assert upstream(fake_jobnimbus) == [("get", "jobs")]


def test_unknown_parts_are_refused_and_repeats_read_once(fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext) -> None:
    for include in (["notes"], ["jobs"]):
        result = registry.call_tool(tool_ctx, "get_job", {"jnid": "j1", "include": include})
        assert result.is_error, include
    assert upstream(fake_jobnimbus) == []
    seed(fake_jobnimbus)
    answer = call(tool_ctx, "get_job", jnid="j1", include=["tasks", "contacts", "tasks"]).structured
    assert list(answer["included"]) == ["contacts", "tasks"]  # the declared order, each part once
    assert upstream(fake_jobnimbus).count(("list", "tasks")) == 1


def test_parts_show_ten_records_and_say_how_to_get_the_rest(
    fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext
) -> None:
    seed(fake_jobnimbus, tasks=35)
    tasks = call(tool_ctx, "get_job", jnid="j1", include=["tasks"]).structured["included"]["tasks"]
    assert (tasks["count"], tasks["returned"], tasks["truncated"]) == (35, compose.PER_PART, True)
    assert tasks["more"] == f"call get_tasks related_to=j1 from={compose.PER_PART}"
    rest = call(tool_ctx, "get_tasks", related_to="j1", **{"from": compose.PER_PART}).structured
    assert rest["records"][0]["jnid"] == f"t{compose.PER_PART}"


def test_the_whole_answer_stays_under_the_cap(fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext) -> None:
    seed(fake_jobnimbus, tasks=20, title="x" * 3000)
    for kind in ("activities", "estimates", "invoices", "files"):
        record = fake_jobnimbus.data[kind][0]
        fake_jobnimbus.data[kind] = [{**record, "jnid": f"{kind}{i}", "name": "y" * 2500} for i in range(12)]
    result = call(tool_ctx, "get_job", jnid="j1", include=JOB_PARTS)
    assert len(result.text.encode()) <= MAX_RESPONSE_BYTES
    included = result.structured["included"]
    tasks = included["tasks"]
    assert tasks["truncated"]
    assert tasks["returned"] < compose.PER_PART
    assert tasks["more"] == f"call get_tasks related_to=j1 from={tasks['returned']}"
    assert "under 25 KB" in tasks["notice"]
    assert included["contacts"]["records"], "small parts keep their records"


def test_the_links_are_found_whatever_fields_the_detail_shows(
    fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext
) -> None:
    seed(fake_jobnimbus)
    answer = call(tool_ctx, "get_job", jnid="j1", fields=["name"], include=["contacts"]).structured
    assert answer["name"] == "Roof"
    assert "primary" not in answer
    assert [r["jnid"] for r in answer["included"]["contacts"]["records"]] == ["c1", "c2"]


def test_linked_ids_take_the_primary_then_related_of_the_kind() -> None:
    record = {"primary": {"id": "c1"}, "related": [ref("j9", "job"), ref("c2", "contact"), ref("c1", "contact")]}
    assert compose.linked_ids(record, "contact") == ["c1", "c2"]
    assert compose.linked_ids({"primary": ref("j2", "job")}, "contact") == []
    assert compose.linked_ids(None, "contact") == []
