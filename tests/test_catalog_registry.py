"""The registry: every tool's declaration, argument validation naming the argument, defaults, error mapping."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from mcp_tools.catalog import registry
from mcp_tools.catalog.base import ToolContext, UnknownToolError
from mcp_tools.catalog.declare import hint
from mcp_tools.jobnimbus.errors import AuthError, NotFoundError, RateLimitedError, UnavailableError, ValidationError
from tests.fixtures.catalog import FakeJobNimbus

READS = [
    "get_jobs",
    "search_jobs",
    "get_job",
    "get_contacts",
    "search_contacts",
    "get_contact",
    "get_estimates",
    "get_invoices",
    "get_activities",
    "get_calendar_activities",
    "get_tasks",
    "get_attachments",
    "get_users",
    "get_account_settings",
    "get_products",
    "get_work_orders",
    "get_material_orders",
    "get_payments",
    "get_webhooks",
]
WRITES = [
    "create_contact",
    "update_contact",
    "delete_contact",
    "create_job",
    "update_job",
    "delete_job",
    "create_activity",
    "create_task",
    "update_task",
    "delete_task",
    "create_estimate",
    "update_estimate",
    "delete_estimate",
    "bulk_import_contacts",
]
HINTS = ("readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint")
TOOLS = registry.all_tools()


def test_the_catalog_is_exactly_the_specified_tools() -> None:
    assert sorted(t.name for t in TOOLS) == sorted(READS + WRITES)


@pytest.mark.parametrize("spec", TOOLS, ids=lambda s: s.name)
def test_every_declaration_is_complete(spec: Any) -> None:
    Draft202012Validator.check_schema(spec.input_schema)
    if spec.output_schema is not None:  # declared only where it helps (bulk_import_contacts)
        Draft202012Validator.check_schema(spec.output_schema)
    assert spec.input_schema["additionalProperties"] is False
    assert spec.title
    assert len(spec.description) > 40
    assert all(isinstance(value, bool) for value in spec.annotations.values())
    assert set(spec.annotations) <= set(HINTS)  # the rest are the MCP defaults (declare.HINT_DEFAULTS)
    assert hint(spec.annotations, "openWorldHint") is True
    assert hint(spec.annotations, "destructiveHint") is (spec.name.startswith(("update_", "delete_")))
    assert spec.read_only is (spec.name in READS)
    assert (spec.policy is not None) is (spec.name in READS)


def valid_value(schema: dict[str, Any]) -> Any:
    """Return a value `schema` accepts (for the required arguments around the one under test)."""
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) else kind
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "array":
        return [valid_value(schema.get("items", {"type": "object"}))]
    if kind == "object":
        props = schema.get("properties", {})
        return {name: valid_value(props[name]) for name in schema.get("required", [])}
    return {"integer": 1, "number": 1, "boolean": True}.get(
        str(kind), "2025-01-02" if "date" in str(schema) else "abc123"
    )


def wrong_value(schema: dict[str, Any]) -> Any:
    """Return a value of a JSON type `schema` does not allow."""
    allowed = schema.get("type")
    allowed = {allowed} if isinstance(allowed, str) else set(allowed or [])
    candidates = [("object", {"x": 1}), ("array", ["x"]), ("boolean", True), ("string", "ten")]
    return next(value for kind, value in candidates if kind not in allowed)


CASES = [(spec, name) for spec in TOOLS for name in spec.input_schema["properties"]]


@pytest.mark.parametrize(("spec", "argument"), CASES, ids=[f"{s.name}.{a}" for s, a in CASES])
def test_a_wrong_typed_argument_is_refused_naming_it(
    spec: Any, argument: str, fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext
) -> None:
    schema = spec.input_schema
    args = {name: valid_value(schema["properties"][name]) for name in schema.get("required", [])}
    args[argument] = wrong_value(schema["properties"][argument])
    result = registry.call_tool(tool_ctx, spec.name, args)
    assert result.is_error
    assert result.text.startswith(f"Argument '{argument}' must be "), result.text
    assert fake_jobnimbus.calls == []


@pytest.mark.parametrize("spec", TOOLS, ids=lambda s: s.name)
def test_an_unknown_argument_is_refused_naming_it(
    spec: Any, fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext
) -> None:
    schema = spec.input_schema
    args = {name: valid_value(schema["properties"][name]) for name in schema.get("required", [])}
    result = registry.call_tool(tool_ctx, spec.name, {**args, "bogus": 1})
    assert result.is_error
    assert "Unknown argument 'bogus'" in result.text
    assert fake_jobnimbus.calls == []


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("get_jobs", {"size": "ten"}, "Argument 'size' must be an integer between 1 and 100, got 'ten'"),
        ("get_jobs", {"size": 101}, "Argument 'size' must be an integer between 1 and 100, got 101"),
        ("get_jobs", {"from": -1}, "Argument 'from' must be an integer >= 0, got -1"),
        ("get_jobs", {"sort_direction": "up"}, "Argument 'sort_direction' must be one of 'asc', 'desc', got 'up'"),
        (
            "get_jobs",
            {"verbosity": "full"},
            "Argument 'verbosity' must be one of 'summary', 'compact', 'detailed', 'raw'",
        ),
        ("get_jobs", {"fields": ["name", 3]}, "Argument 'fields[1]' must be a string"),
        ("get_jobs", {"date_from": "last tuesday"}, "Argument 'date_from' must be an ISO date"),
        ("get_jobs", {"date_from": "2025-02-01", "date_to": "2025-01-01"}, "Argument 'date_from' must not be after"),
        ("search_jobs", {}, "Argument 'query' is required"),
        ("search_contacts", {"query": " * "}, "Argument 'query' must contain text to search for, got ' * '"),
        ("get_job", {"jnid": "a b"}, "Argument 'jnid' must be a string"),
        ("create_contact", {"email": "a@b.co"}, "One of 'first_name', 'last_name', 'display_name' or 'company'"),
        ("update_job", {"jnid": "j1"}, "Pass at least one field to change"),
        ("bulk_import_contacts", {"rows": []}, "Argument 'rows' must be a list of at least 1 items"),
    ],
)
def test_bad_values_get_a_precise_message(
    name: str, args: dict[str, Any], message: str, fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext
) -> None:
    result = registry.call_tool(tool_ctx, name, args)
    assert result.is_error
    assert message in result.text, result.text
    assert result.structured == {"error": result.text}


def test_arguments_that_are_not_an_object_are_refused(fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext) -> None:
    result = registry.call_tool(tool_ctx, "get_jobs", ["size", 5])  # type: ignore[arg-type]
    assert result.is_error
    assert result.text == "Tool arguments must be an object, got list"


def test_defaults_are_applied(fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext) -> None:
    result = registry.call_tool(tool_ctx, "get_jobs", {})
    assert not result.is_error
    # JobNimbus's own sort defaults are declared and sent, so an explicit default shares the omitted one's entry.
    assert fake_jobnimbus.lists("jobs") == [
        {"size": 20, "from_": 0, "sort_field": "date_created", "sort_direction": "desc"}
    ]
    assert result.structured["from"] == 0
    assert result.structured["size"] == 20


def test_an_unknown_tool_raises_for_the_protocol_layer() -> None:
    with pytest.raises(UnknownToolError):
        registry.get_tool("get_everything")


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (AuthError("401 from JobNimbus"), "JobNimbus refused the API key"),
        (NotFoundError("jobs j9 not found", resource="jobs", jnid="j9"), "Not found in JobNimbus: jobs j9 not found"),
        (
            ValidationError("rejected", upstream_message="name is required"),
            "JobNimbus rejected the request: name is required",
        ),
        # A 429 is about the caller's key, not JobNimbus's health: the message says so and names the wait.
        (RateLimitedError("429", retry_after_s=7), "JobNimbus is rate limiting this API key, retry in 7 s"),
        (UnavailableError("503", retry_after_s=2.2), "JobNimbus is unavailable, retry in 3 s"),
        (UnavailableError("timeout"), "JobNimbus is unavailable, retry in 30 s"),
    ],
)
def test_jobnimbus_errors_become_error_results(
    error: Exception, message: str, fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext
) -> None:
    fake_jobnimbus.fail = error
    result = registry.call_tool(tool_ctx, "get_job", {"jnid": "j9"})
    assert result.is_error
    assert message in result.text


def test_a_crash_is_logged_and_answered_generically(
    fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext, caplog: pytest.LogCaptureFixture
) -> None:
    fake_jobnimbus.fail = KeyError("secret internals")
    with caplog.at_level(logging.ERROR, logger="mcp_tools.catalog.registry"):
        result = registry.call_tool(tool_ctx, "get_contacts", {})
    assert result.is_error
    assert "failed unexpectedly (request id test)" in result.text
    assert "secret internals" not in result.text
    assert any(r.exc_info for r in caplog.records)
