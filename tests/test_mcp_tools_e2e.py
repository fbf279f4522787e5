"""Every tool of the catalog, called with the official `mcp` client over real HTTP against a live server + sandbox.

Reads are checked against what the sandbox JobNimbus itself returns for the same question; writes are checked by
reading the sandbox back directly (not through our cache), so a tool that answers without writing fails here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from mcp_types import CallToolResult, TextContent

from mcp_tools.catalog import registry
from sandbox.server import SandboxHandle
from tests.fixtures.sandbox import api
from tests.fixtures.servers import McpServer, mcp_call

pytestmark = pytest.mark.e2e

Check = Callable[[SandboxHandle, McpServer], None]
ERA = "legacy"  # which official client `tool` uses; the read tests run with both


def jn(sandbox: SandboxHandle, path: str, **params: Any) -> Any:
    """Return what the sandbox JobNimbus answers to GET `path` (the ground truth)."""
    if "filter" in params:
        params["filter"] = json.dumps(params["filter"])
    response = api(sandbox, "GET", path, params=params)
    response.raise_for_status()
    return response.json()


def results(body: dict[str, Any]) -> list[dict[str, Any]]:
    return body.get("results") or body.get("activity") or body.get("files") or []


def related(jnid: str) -> dict[str, Any]:
    return {"must": [{"term": {"related.id": jnid}}]}


def tool(server: McpServer, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Call `name` and return its structured content, after checking the result is well-formed."""
    result: CallToolResult = mcp_call(server, name, arguments, era=ERA)  # type: ignore[arg-type]
    text = result.content[0]
    assert isinstance(text, TextContent)
    assert result.is_error is False, text.text
    assert isinstance(result.structured_content, dict)
    assert json.loads(text.text) == result.structured_content
    assert result.meta is not None
    assert result.meta["jobnimbus-mcp/cache"]["status"] in {"hit_l1", "hit_l2", "miss", "stale", "coalesced", "bypass"}
    return result.structured_content


def as_sent(answer: dict[str, Any]) -> dict[str, Any]:
    """Return a raw answer's record as JobNimbus sent it, after checking each timestamp reads the same instant in
    ISO 8601 (with an offset) as the unix value kept beside it, and dropping the answer's `currency`."""
    record = {k: v for k, v in answer.items() if k != "currency" and not k.endswith("_unix")}
    for name, value in answer.items():
        if name.endswith("_unix"):
            base = name.removesuffix("_unix")
            shown = record[base]
            assert shown is None if not value else datetime.fromisoformat(shown).timestamp() == value, (name, shown)
            record[base] = value
    return record


def ids(body: dict[str, Any]) -> list[str]:
    return [r["jnid"] for r in body["records"]]


def same_list(
    server: McpServer, name: str, arguments: dict[str, Any], expected: list[dict[str, Any]]
) -> dict[str, Any]:
    got = tool(server, name, arguments)
    assert ids(got) == [r["jnid"] for r in expected]
    return got


# --- Reads: the same records the sandbox gives --------------------------------------------------------------


def a_job_with(sandbox: SandboxHandle, child_path: str) -> str:
    """Return the jnid of a job that has at least one child at `child_path`."""
    child = results(jn(sandbox, child_path, size=1))[0]
    return next(r["id"] for r in child["related"] if r.get("type") == "job")


def read_contacts(sandbox: SandboxHandle, server: McpServer) -> None:
    expected = results(jn(sandbox, "/contacts", size=5, **{"from": 5}))
    got = same_list(server, "get_contacts", {"size": 5, "from": 5}, expected)
    assert got["next_from"] == 10
    assert [r["display_name"] for r in got["records"]] == [r["display_name"] for r in expected]
    target = expected[0]
    assert tool(server, "get_contact", {"jnid": target["jnid"]})["email"] == target["email"]
    by_email = tool(server, "search_contacts", {"query": target["email"]})
    assert ids(by_email) == [target["jnid"]]
    by_name = tool(server, "search_contacts", {"query": target["last_name"], "size": 100})
    assert target["jnid"] in ids(by_name)
    assert all(target["last_name"].lower() in r["display_name"].lower() for r in by_name["records"])


def read_jobs(sandbox: SandboxHandle, server: McpServer) -> None:
    job = results(jn(sandbox, "/jobs", size=1))[0]
    contact_id = job["primary"]["id"]
    expected = results(jn(sandbox, "/jobs", size=100, filter=related(contact_id)))
    same_list(server, "get_jobs", {"related_to": contact_id, "size": 100}, expected)
    detail = tool(server, "get_job", {"jnid": job["jnid"]})
    assert (detail["name"], detail["status_name"]) == (job["name"], job["status_name"])
    found = tool(server, "search_jobs", {"query": job["name"], "size": 100})
    assert job["jnid"] in ids(found)
    status = tool(server, "get_jobs", {"status": job["status_name"], "size": 100, "verbosity": "summary"})
    assert {r["status_name"] for r in status["records"]} == {job["status_name"]}


def read_financial(sandbox: SandboxHandle, server: McpServer) -> None:
    for list_name, path in [
        ("get_estimates", "/v2/estimates"),
        ("get_invoices", "/v2/invoices"),
        ("get_work_orders", "/v2/workorders"),
    ]:
        expected = results(jn(sandbox, path, size=3))
        same_list(server, list_name, {"size": 3}, expected)
        got = tool(server, list_name, {"jnid": expected[0]["jnid"], "verbosity": "raw"})  # one record by its jnid
        assert as_sent(got) == expected[0]  # raw: the record as JobNimbus sent it, its dates readable
    for name, path in [("get_material_orders", "/v2/materialorders"), ("get_payments", "/payments"),
                       ("get_products", "/v2/products")]:  # fmt: skip
        same_list(server, name, {"size": 4}, results(jn(sandbox, path, size=4)))


def read_activities(sandbox: SandboxHandle, server: McpServer) -> None:
    job_id = a_job_with(sandbox, "/activities")
    expected = results(jn(sandbox, "/activities", size=100, filter=related(job_id)))
    same_list(server, "get_activities", {"related_to": job_id, "size": 100}, expected)
    assert tool(server, "get_activities", {"jnid": expected[0]["jnid"]})["note"] == expected[0]["note"]


def read_tasks_and_calendar(sandbox: SandboxHandle, server: McpServer) -> None:
    expected = results(jn(sandbox, "/tasks", size=5))
    same_list(server, "get_tasks", {"size": 5}, expected)
    task = expected[0]
    assert tool(server, "get_tasks", {"jnid": task["jnid"]})["title"] == task["title"]
    low, high = task["date_start"] - 3600, task["date_start"] + 3600
    window = {"date_from": str(low), "date_to": str(high), "size": 100}  # unix seconds, written as digits
    calendar = tool(server, "get_calendar_activities", window)
    assert task["jnid"] in ids(calendar)
    starts = [datetime.fromisoformat(r["date_start"]).timestamp() for r in calendar["records"]]  # ISO 8601 answers
    assert starts == sorted(starts)
    assert all(low <= s <= high for s in starts)
    in_window = {"must": [{"range": {"date_start": {"gte": low, "lte": high}}}]}
    both = [jn(sandbox, p, size=0, filter=in_window)["count"] for p in ("/tasks", "/activities")]
    assert calendar["count"] == sum(both)


def read_attachments(sandbox: SandboxHandle, server: McpServer) -> None:
    job_id = a_job_with(sandbox, "/files")
    expected = results(jn(sandbox, "/files", size=100, filter=related(job_id)))
    same_list(server, "get_attachments", {"job_id": job_id, "size": 100}, expected)
    kind = expected[0]["record_type_name"]
    photos = tool(server, "get_attachments", {"job_id": job_id, "file_type": kind, "size": 100, "verbosity": "raw"})
    assert ids(photos) == [r["jnid"] for r in expected if r["record_type_name"] == kind]


def read_account(sandbox: SandboxHandle, server: McpServer) -> None:
    users = jn(sandbox, "/account/users")["users"]
    got = tool(server, "get_users", {"size": 100})
    assert got["count"] == len(users)
    assert [r["email"] for r in got["records"]] == [u["email"] for u in users]
    settings = jn(sandbox, "/account/settings")
    assert tool(server, "get_account_settings", {})["workflows"] == settings["workflows"]
    hooks = tool(server, "get_webhooks", {"limit": 5})
    assert hooks["url"].endswith(f"/webhooks/jobnimbus/{server.instance}")
    assert "X-Webhook-Token" in hooks["headers"]
    assert isinstance(hooks["recent_deliveries"], list)


READS: dict[str, Check] = {
    "contacts": read_contacts,
    "jobs": read_jobs,
    "financial": read_financial,
    "activities": read_activities,
    "tasks": read_tasks_and_calendar,
    "attachments": read_attachments,
    "account": read_account,
}


@pytest.mark.django_db
@pytest.mark.parametrize("era", ["legacy", "auto"])
@pytest.mark.parametrize("family", list(READS))
def test_read_tools_return_the_sandbox_records(
    family: str, era: str, mcp_server: McpServer, sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ClientSession (legacy handshake) and Client in auto mode (2026-07-28 first) get the same records."""
    monkeypatch.setattr(__import__(__name__, fromlist=["ERA"]), "ERA", era)
    READS[family](sandbox, mcp_server)


# --- Writes: JobNimbus (the sandbox) holds what the tool said it wrote ----------------------------------------


def stored(sandbox: SandboxHandle, path: str, jnid: str) -> dict[str, Any]:
    response = api(sandbox, "GET", f"{path}/{jnid}")
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.django_db
def test_contact_and_job_writes_reach_jobnimbus(mcp_server: McpServer, clean_sandbox: SandboxHandle) -> None:
    made = tool(
        mcp_server, "create_contact", {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"}
    )
    contact_id = made["record"]["jnid"]
    assert "notice" in made  # the default workflow was used and said so
    record = stored(clean_sandbox, "/contacts", contact_id)
    assert (record["display_name"], record["record_type_name"], record["status_name"]) == (
        "Ada Lovelace",
        "Customer",
        "Lead",
    )
    # Read-your-writes: the list and the search see it at once, whatever the cache held.
    assert contact_id in ids(tool(mcp_server, "search_contacts", {"query": "ada@example.com"}))
    tool(mcp_server, "update_contact", {"jnid": contact_id, "mobile_phone": "(404) 555-0142"})
    assert stored(clean_sandbox, "/contacts", contact_id)["mobile_phone"] == "(404) 555-0142"
    assert tool(mcp_server, "get_contact", {"jnid": contact_id})["mobile_phone"] == "(404) 555-0142"

    job = tool(mcp_server, "create_job", {"name": "Lovelace - Roof", "primary_contact_id": contact_id})["record"]
    assert stored(clean_sandbox, "/jobs", job["jnid"])["primary"]["id"] == contact_id
    assert ids(tool(mcp_server, "get_jobs", {"related_to": contact_id})) == [job["jnid"]]
    tool(mcp_server, "update_job", {"jnid": job["jnid"], "status_name": "Production"})
    assert stored(clean_sandbox, "/jobs", job["jnid"])["status_name"] == "Production"

    tool(mcp_server, "delete_job", {"jnid": job["jnid"]})
    assert stored(clean_sandbox, "/jobs", job["jnid"])["is_active"] is False
    assert tool(mcp_server, "get_jobs", {"related_to": contact_id})["count"] == 0
    tool(mcp_server, "delete_contact", {"jnid": contact_id})
    assert stored(clean_sandbox, "/contacts", contact_id)["is_active"] is False


@pytest.mark.django_db
def test_note_task_and_estimate_writes_reach_jobnimbus(mcp_server: McpServer, clean_sandbox: SandboxHandle) -> None:
    job_id = results(jn(clean_sandbox, "/jobs", size=1))[0]["jnid"]
    note = tool(mcp_server, "create_activity", {"note": "Customer asked for a Friday start", "related_to": job_id})
    assert stored(clean_sandbox, "/activities", note["record"]["jnid"])["note"] == "Customer asked for a Friday start"
    assert note["record"]["jnid"] in ids(tool(mcp_server, "get_activities", {"related_to": job_id, "size": 100}))

    task = tool(mcp_server, "create_task", {"title": "Inspect roof", "date_start": "2026-03-02T09:00:00Z",
                                            "related_to": job_id, "priority": 2})["record"]  # fmt: skip
    assert stored(clean_sandbox, "/tasks", task["jnid"])["date_start"] == 1_772_442_000
    tool(mcp_server, "update_task", {"jnid": task["jnid"], "is_completed": True})
    assert stored(clean_sandbox, "/tasks", task["jnid"])["is_completed"] is True
    tool(mcp_server, "delete_task", {"jnid": task["jnid"]})
    assert stored(clean_sandbox, "/tasks", task["jnid"])["is_active"] is False

    items = [{"name": "Architectural Shingles", "quantity": 30, "price": 120.0, "cost": 80.0}]
    estimate = tool(mcp_server, "create_estimate", {"related_to": job_id, "items": items})["record"]
    assert stored(clean_sandbox, "/v2/estimates", estimate["jnid"])["subtotal"] == 3600.0
    tool(mcp_server, "update_estimate", {"jnid": estimate["jnid"], "items": [{**items[0], "quantity": 10}]})
    after = stored(clean_sandbox, "/v2/estimates", estimate["jnid"])
    assert after["subtotal"] == 1200.0
    assert tool(mcp_server, "get_estimates", {"jnid": estimate["jnid"]})["total"] == after["total"]
    tool(mcp_server, "delete_estimate", {"jnid": estimate["jnid"]})
    assert stored(clean_sandbox, "/v2/estimates", estimate["jnid"])["is_active"] is False


@pytest.mark.django_db
def test_a_retried_bulk_import_creates_no_duplicates(mcp_server: McpServer, clean_sandbox: SandboxHandle) -> None:
    rows = [{"first_name": f"Imported{i}", "last_name": "Row", "external_id": f"crm-{i}"} for i in range(3)]
    first = tool(mcp_server, "bulk_import_contacts", {"rows": [*rows[:2], {"email": "no-name@example.com"}]})
    assert [r["status"] for r in first["results"]] == ["created", "created", "failed"]
    again = tool(mcp_server, "bulk_import_contacts", {"rows": rows})
    assert [r["status"] for r in again["results"]] == ["skipped", "skipped", "created"]
    ours = results(jn(clean_sandbox, "/contacts", size=100, filter={"must": [{"wildcard": {"external_id": "crm-*"}}]}))
    assert sorted(r["external_id"] for r in ours) == ["crm-0", "crm-1", "crm-2"]


def test_the_e2e_tests_call_every_tool() -> None:
    """Fail when a tool is added to the catalog without an end-to-end call here."""
    with open(__file__, encoding="utf-8") as handle:
        source = handle.read()
    missing = [spec.name for spec in registry.all_tools() if f'"{spec.name}"' not in source]
    assert missing == []


@pytest.mark.parametrize("era", ["legacy", "auto"])
def test_a_wrong_argument_is_an_error_naming_it_over_the_wire(mcp_server: McpServer, era: str) -> None:
    result = mcp_call(mcp_server, "get_jobs", {"size": "ten"}, era=era)  # type: ignore[arg-type]
    assert result.is_error is True
    text = result.content[0]
    assert isinstance(text, TextContent)
    assert text.text == "Argument 'size' must be an integer between 1 and 100, got 'ten'"
