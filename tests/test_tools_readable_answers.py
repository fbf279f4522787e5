"""Answers a model reads right: timestamps in ISO 8601 in the account's time zone, naive datetimes read there (and
said so), money with its currency, statuses by name, and loud answers to names the account does not have."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from cacheops.api import tenant_id
from mcp_tools.catalog import registry
from mcp_tools.catalog.base import ToolContext, ToolResult, ToolSpec
from mcp_tools.jobnimbus.client import JobNimbusClient
from mcp_tools.jobnimbus.errors import AuthError, UnavailableError
from mcp_tools.jobnimbus.failures import Call, failure_for_response
from mcp_tools.shaping import is_timestamp_name
from mcp_tools.timezones import AccountLocale, Moment, read_moment
from sandbox.access import ADMIN_KEY
from sandbox.server import SandboxHandle
from tests.fixtures.catalog import FakeJobNimbus
from tests.fixtures.clock import Clock
from tests.fixtures.redis import CacheEnv

CHICAGO = "America/Chicago"
ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?[+-]\d{2}:\d{2}$")


def unix(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


@pytest.fixture
def chicago(settings: Any, tool_ctx: ToolContext) -> ToolContext:
    """Configure the test's instance in America/Chicago, money in CAD (what JOBNIMBUS_TIME_ZONE_/CURRENCY_ set)."""
    settings.JOBNIMBUS_INSTANCES = {
        **settings.JOBNIMBUS_INSTANCES,
        tool_ctx.instance: {"api_key": None, "webhook_secret": None, "time_zone": CHICAGO, "currency": "CAD"},
    }
    return tool_ctx


def ok(ctx: ToolContext, tool: str, /, **args: Any) -> ToolResult:
    result = registry.call_tool(ctx, tool, args)
    assert not result.is_error, result.text
    assert json.loads(result.text) == result.structured  # what the text content says is what the structure says
    return result


def refused(ctx: ToolContext, tool: str, /, **args: Any) -> str:
    result = registry.call_tool(ctx, tool, args)
    assert result.is_error, result.text
    return result.text


# --- Timestamps out: ISO 8601 with the offset in force in the account's zone, on both sides of a DST change --------


@pytest.mark.parametrize(
    ("utc", "local"),
    [
        # 2026-03-08: Chicago springs forward at 02:00 CST (-06:00) to 03:00 CDT (-05:00).
        ("2026-03-08T07:59:59+00:00", "2026-03-08T01:59:59-06:00"),
        ("2026-03-08T08:00:00+00:00", "2026-03-08T03:00:00-05:00"),
        # 2026-11-01: back at 02:00 CDT to 01:00 CST, so 01:30 happens twice, an hour apart.
        ("2026-11-01T06:30:00+00:00", "2026-11-01T01:30:00-05:00"),
        ("2026-11-01T07:30:00+00:00", "2026-11-01T01:30:00-06:00"),
    ],
)
def test_timestamps_are_iso_in_the_account_zone_across_dst(
    utc: str, local: str, fake_jobnimbus: FakeJobNimbus, chicago: ToolContext, frozen_clock: Clock
) -> None:
    fake_jobnimbus.data["jobs"] = [{"jnid": "j1", "type": "job", "date_created": unix(utc), "date_end": 0}]
    compact = ok(chicago, "get_jobs").structured["records"][0]
    assert compact["date_created"] == local
    assert "date_created_unix" not in compact  # compact and summary: ISO only
    assert datetime.fromisoformat(compact["date_created"]) == datetime.fromisoformat(utc)  # the same instant
    detailed = ok(chicago, "get_job", jnid="j1", verbosity="detailed").structured
    assert (detailed["date_created"], detailed["date_created_unix"]) == (local, unix(utc))  # full: unix beside it


def test_an_unset_date_is_null_and_a_unix_value_can_be_asked_for(
    fake_jobnimbus: FakeJobNimbus, chicago: ToolContext
) -> None:
    created = unix("2026-11-28T10:00:00+00:00")
    fake_jobnimbus.data["jobs"] = [{"jnid": "j1", "type": "job", "date_created": created, "date_end": 0}]
    record = ok(chicago, "get_job", jnid="j1", fields=["date_end", "date_created", "date_created_unix"]).structured
    assert record == {
        "jnid": "j1",
        "date_end": None,
        "date_created": "2026-11-28T04:00:00-06:00",
        "date_created_unix": created,
    }


def test_nested_timestamps_and_write_answers_are_iso_too(fake_jobnimbus: FakeJobNimbus, chicago: ToolContext) -> None:
    when = unix("2026-06-01T12:00:00+00:00")
    fake_jobnimbus.data["estimates"] = [
        {"jnid": "e1", "type": "estimate", "date_estimate": when, "items": [{"name": "Shingles", "date_added": when}]}
    ]
    items = ok(chicago, "get_estimates", verbosity="raw").structured["records"][0]["items"]
    assert items[0]["date_added"] == "2026-06-01T07:00:00-05:00"
    fake_jobnimbus.data["tasks"] = [{"jnid": "t1", "type": "task", "title": "Inspect", "date_start": when}]
    record = ok(chicago, "update_task", jnid="t1", title="Inspect roof").structured["record"]
    assert (record["date_start"], record["date_start_unix"]) == ("2026-06-01T07:00:00-05:00", when)


# --- Timestamps in: a naive datetime is the account's wall-clock time, and the answer says so -----------------------


def test_a_naive_datetime_is_read_in_the_account_zone_and_noted(
    fake_jobnimbus: FakeJobNimbus, chicago: ToolContext, frozen_clock: Clock
) -> None:
    result = ok(chicago, "get_tasks", date_from="2026-03-03T15:00:00", date_to="2026-07-04")
    (sent,) = fake_jobnimbus.lists("tasks")
    window = sent["filter"]["must"][0]["range"]["date_start"]
    assert window == {"gte": unix("2026-03-03T21:00:00+00:00"), "lte": unix("2026-07-05T04:59:59+00:00")}
    notes = result.structured["notes"]
    assert any(CHICAGO in n and "UTC-06:00" in n and "2026-03-03T15:00:00-06:00" in n for n in notes), notes
    assert any("2026-07-04T23:59:59-05:00" in n for n in notes), notes  # a bare date: the whole day, in summer time
    assert CHICAGO in result.text  # the text content says it too


def test_an_aware_datetime_is_honoured_without_a_note(fake_jobnimbus: FakeJobNimbus, chicago: ToolContext) -> None:
    result = ok(chicago, "get_tasks", date_from="2026-12-03T15:00:00+02:00", date_to="2026-12-04T00:00:00Z")
    (sent,) = fake_jobnimbus.lists("tasks")
    window = sent["filter"]["must"][0]["range"]["date_start"]
    assert window == {"gte": unix("2026-12-03T13:00:00+00:00"), "lte": unix("2026-12-04T00:00:00+00:00")}
    assert "notes" not in result.structured


def test_a_wall_clock_time_skipped_by_dst_is_moved_past_the_gap(
    fake_jobnimbus: FakeJobNimbus, chicago: ToolContext
) -> None:
    result = ok(chicago, "create_task", title="Inspect", date_start="2026-03-08T02:30:00")
    (body,) = [details["body"] for op, _res, details in fake_jobnimbus.calls if op == "create"]
    assert body["date_start"] == unix("2026-03-08T08:30:00+00:00")
    assert any("2026-03-08T03:30:00-05:00" in n for n in result.structured["notes"])


def test_without_a_configured_zone_utc_is_used_and_said(fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext) -> None:
    result = ok(tool_ctx, "get_tasks", date_from="2025-01-01T09:00:00")
    assert fake_jobnimbus.lists("tasks")[0]["filter"]["must"][0]["range"]["date_start"] == {
        "gte": unix("2025-01-01T09:00:00+00:00")
    }
    assert any("UTC" in n for n in result.structured["notes"])


# --- Money with its currency, statuses by name ----------------------------------------------------------------------


def test_money_answers_state_their_currency_once(fake_jobnimbus: FakeJobNimbus, chicago: ToolContext) -> None:
    fake_jobnimbus.data["invoices"] = [
        {"jnid": "i1", "type": "invoice", "status": 2, "status_name": "Sent", "total": 1200.5, "due": 1200.5}
    ]
    fake_jobnimbus.data["contacts"] = [{"jnid": "c1", "type": "contact", "display_name": "Ada"}]
    invoices = ok(chicago, "get_invoices").structured
    assert invoices["currency"] == "CAD"
    assert "currency" not in invoices["records"][0]
    assert invoices["records"][0]["status_name"] == "Sent"
    assert "status" not in invoices["records"][0]  # the name, not the numeric id beside it
    assert ok(chicago, "get_invoices", verbosity="raw").structured["records"][0]["status"] == 2  # raw keeps it
    assert "currency" not in ok(chicago, "get_contacts").structured  # no money, no currency
    fake_jobnimbus.data["jobs"] = [{"jnid": "j1", "type": "job", "approved_estimate_total": 9000}]
    assert ok(chicago, "get_job", jnid="j1").structured["currency"] == "CAD"


# --- Names the account does not have: errors and warnings naming the near matches ---------------------------------


def test_an_unknown_status_is_an_error_naming_near_matches(
    fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext
) -> None:
    text = refused(tool_ctx, "get_jobs", status="lead ")
    assert "Unknown status 'lead '" in text
    assert "Did you mean 'Lead'?" in text
    text = refused(tool_ctx, "get_contacts", status="Nonexistent Status")
    assert "Unknown status 'Nonexistent Status'" in text
    assert "'Prospect', 'Lead'" in text  # the contact statuses it could have been
    assert fake_jobnimbus.lists("jobs") == fake_jobnimbus.lists("contacts") == []  # nothing was asked for nothing
    ok(tool_ctx, "get_jobs", status="Lead")  # a real one passes


def test_statuses_the_settings_do_not_list_are_not_refused(
    fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext
) -> None:
    ok(tool_ctx, "get_estimates", status="Sent")  # estimate statuses are not in the account settings


def test_an_unknown_record_type_is_an_error_naming_near_matches(
    fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext
) -> None:
    assert "Did you mean 'Photo'?" in refused(tool_ctx, "get_attachments", file_type="Photos")
    text = refused(tool_ctx, "create_task", title="x", date_start="2026-01-01", record_type_name="Inspektion")
    assert "Unknown record_type_name 'Inspektion'" in text
    assert "Did you mean 'Inspection'?" in text
    text = refused(tool_ctx, "update_job", jnid="j1", status_name="Leed")
    assert "Did you mean 'Lead'?" in text
    assert [op for op, _res, _details in fake_jobnimbus.calls if op in {"create", "update"}] == []


def test_unknown_fields_are_warned_about_with_near_matches(
    fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext
) -> None:
    fake_jobnimbus.data["contacts"] = [{"jnid": "c1", "type": "contact", "email": "a@b.co", "Roof Color": "Red"}]
    result = ok(tool_ctx, "get_contacts", fields=["emial", "nonexistent_field", "Roof Color"])
    warnings = result.structured["warnings"]
    assert len(warnings) == 2
    assert "'emial'" in warnings[0]
    assert "Did you mean 'email'?" in warnings[0]
    assert "'nonexistent_field'" in warnings[1]
    assert result.structured["records"] == [{"jnid": "c1", "Roof Color": "Red"}]  # a custom field is a field
    assert "Did you mean 'email'?" in result.text
    detail = ok(tool_ctx, "get_contact", jnid="c1", fields=["emial"]).structured
    assert "Did you mean 'email'?" in detail["warnings"][0]
    assert "warnings" not in ok(tool_ctx, "get_contacts", fields=["email"]).structured


def test_an_unknown_argument_leads_the_message_with_its_near_match(
    fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext
) -> None:
    text = refused(tool_ctx, "get_job", id="j1")
    assert text.startswith("Unknown argument 'id' (did you mean 'jnid'?)"), text
    assert "'jnid' required" in text
    assert refused(tool_ctx, "get_jobs", limit=5).startswith("Unknown argument 'limit' (did you mean 'size'?)")
    assert "Did you mean 'detailed'?" in refused(tool_ctx, "get_jobs", verbosity="detaild")


def test_a_refused_key_is_said_once(fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext) -> None:
    class Refused:
        status_code, text = 401, ""
        headers: dict[str, str] = {}

    failure = failure_for_response(Call("GET", "jobs", "u", "/jobs", jnid="j1"), Refused(), now=0.0)  # type: ignore[arg-type]
    assert isinstance(failure.error, AuthError)
    fake_jobnimbus.fail = failure.error
    text = refused(tool_ctx, "get_job", jnid="j1")
    assert text.count("refused the API key") == 1, text
    assert "HTTP 401" in text


# --- Every read tool, against the sandbox: no unix number left in a date field --------------------------------------


def _unix_dates(value: Any, path: str = "") -> Iterator[str]:
    """Yield the paths of numbers in timestamp fields (other than `<field>_unix`), and of ISO text without offset."""
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}"
            if isinstance(key, str) and (key.startswith("date_") or is_timestamp_name(key)):
                if key.endswith("_unix"):
                    continue
                if isinstance(item, int | float) and not isinstance(item, bool):
                    yield f"{where}={item!r}"
                elif isinstance(item, str) and not ISO_WITH_OFFSET.match(item):
                    yield f"{where}={item!r} (not ISO 8601 with an offset)"
            yield from _unix_dates(item, where)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _unix_dates(item, f"{path}[{i}]")


def _arguments(spec: ToolSpec, client: JobNimbusClient) -> dict[str, Any] | None:
    """Return arguments that make `spec` answer with records, or None when its required ones are not known here."""
    schema = spec.input_schema
    args: dict[str, Any] = {}
    for name in schema.get("required", []):
        if name == "jnid" and spec.resource:
            args["jnid"] = client.list(spec.resource, size=1).records[0]["jnid"]
        elif name == "query":
            args["query"] = "a"
        elif name in ("date_from", "date_to"):
            args[name] = "2000-01-01" if name == "date_from" else "2100-01-01"
        else:
            return None
    if "size" in schema.get("properties", {}):
        args["size"] = 5
    return args


@pytest.mark.django_db
@pytest.mark.parametrize("cache_backend", ["fake"], indirect=True)
@pytest.mark.parametrize("verbosity", ["compact", "detailed", "raw"])
def test_no_read_tool_answers_a_unix_date(
    verbosity: str, cache_backend: CacheEnv, sandbox: SandboxHandle, settings: Any
) -> None:
    settings.JOBNIMBUS_BASE_URL = sandbox.base_url
    settings.JOBNIMBUS_INSTANCES = {
        "demo": {"api_key": ADMIN_KEY, "webhook_secret": None, "time_zone": CHICAGO, "currency": "USD"}
    }
    ctx = ToolContext(instance="demo", api_key=ADMIN_KEY, tenant=tenant_id(ADMIN_KEY + secrets.token_hex(4)))
    client = JobNimbusClient(ADMIN_KEY)
    walked, dated = [], 0
    for spec in registry.all_tools():
        if not spec.read_only:
            continue
        args = _arguments(spec, client)
        if args is None:
            continue
        if "verbosity" in spec.input_schema.get("properties", {}):
            args["verbosity"] = verbosity
        result = registry.call_tool(ctx, spec.name, args)
        assert not result.is_error, f"{spec.name}: {result.text}"
        assert list(_unix_dates(result.structured)) == [], spec.name
        assert list(_unix_dates(json.loads(result.text))) == [], spec.name
        walked.append(spec.name)
        dated += result.text.count("-06:00") + result.text.count("-05:00")
    assert len(walked) >= 15, walked  # the read tools, whatever their names
    assert dated > 0  # and the sandbox's dates were there, in Chicago time


def test_statuses_go_unchecked_when_the_settings_cannot_be_read(
    fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down() -> dict[str, Any]:
        raise UnavailableError("JobNimbus is unavailable (HTTP 503)")

    monkeypatch.setattr(fake_jobnimbus, "account_settings", down)
    ok(tool_ctx, "get_jobs", status="Leed")  # asked as given: the list read decides, as before the check existed
    assert fake_jobnimbus.lists("jobs")[0]["filter"] == {"must": [{"term": {"status_name": "Leed"}}]}


def test_an_ambiguous_wall_clock_time_is_its_first_occurrence() -> None:
    chicago = AccountLocale(time_zone=CHICAGO)
    moment = read_moment("date_from", "2026-11-01T01:30:00", chicago)
    assert moment.epoch == unix("2026-11-01T01:30:00-05:00")  # summer time, the first of the two 01:30s
    assert moment.note is not None
    assert "UTC-05:00" in moment.note
    assert read_moment("date_from", "1767225600", chicago) == Moment(1_767_225_600)  # unix seconds: no note
