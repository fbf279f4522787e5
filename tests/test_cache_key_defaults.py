"""Normalised cache keys: for every read tool, each default its inputSchema declares, given explicitly (one at a
time, all at once, in any argument order), keys the same entry as leaving it out, and costs no second JobNimbus
call. The defaults are read from the schemas, so a default added later is covered without touching this file."""

from __future__ import annotations

from typing import Any

import pytest

from cacheops import keys
from cacheops.api import CacheOutcome, ReadRequest
from mcp_tools.catalog import registry, runtime
from mcp_tools.catalog.base import ToolContext, ToolSpec
from tests.fixtures.catalog import FakeJobNimbus
from tests.fixtures.redis import CacheEnv

READ_TOOLS = [spec for spec in registry.all_tools() if spec.read_only and spec.policy is not None]
# The least each read tool needs to run: values for the required arguments its schema names.
REQUIRED = {"jnid": "r1", "query": "Smith", "date_from": "2025-01-01", "date_to": "2025-12-31"}


def declared_defaults(spec: ToolSpec) -> dict[str, Any]:
    return {name: prop["default"] for name, prop in spec.input_schema["properties"].items() if "default" in prop}


def variants(spec: ToolSpec) -> list[dict[str, Any]]:
    """Return equivalent argument sets: none of the defaults, each alone, all, and all in reverse order."""
    base = {name: REQUIRED[name] for name in spec.input_schema.get("required", [])}
    defaults = declared_defaults(spec)
    each = [{**base, name: value} for name, value in defaults.items()]
    every = {**base, **defaults}
    return [base, *each, every, dict(reversed(list(every.items())))]


def seeded(fake: FakeJobNimbus) -> None:
    """Record r1 in every resource, so each detail tool finds one."""
    kinds = ("contacts", "jobs", "activities", "tasks", "estimates", "invoices", "workorders", "materialorders")
    fake.data = {kind: [{"jnid": "r1", "type": kind[:-1], "name": "Smith"}] for kind in kinds}


def entry_key(request: ReadRequest) -> str:
    scope = request.scope
    return keys.entry_key(scope.instance, scope.tenant, request.entity, request.op, keys.normalise_args(request.args))


def test_the_documented_sort_defaults_are_declared() -> None:
    """JobNimbus's own defaults (date_created, desc) are schema defaults of every list tool that sorts."""
    for spec in READ_TOOLS:
        props = spec.input_schema["properties"]
        for name, value in (("sort_field", "date_created"), ("sort_direction", "desc")):
            if name in props:
                assert props[name].get("default") == value, (spec.name, name)


@pytest.mark.django_db
@pytest.mark.parametrize("spec", READ_TOOLS, ids=lambda s: s.name)
def test_explicit_defaults_and_argument_order_key_the_same_entry(
    spec: ToolSpec, fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded(fake_jobnimbus)
    seen: list[ReadRequest] = []

    def spy(request: ReadRequest, fetch: Any) -> CacheOutcome:
        seen.append(request)
        return CacheOutcome(value=fetch(), status="miss", ttl_s=60)

    monkeypatch.setattr(runtime, "read_through", spy)
    found: dict[str, list[dict[str, Any]]] = {}
    for args in variants(spec):
        seen.clear()
        result = registry.call_tool(tool_ctx, spec.name, args)
        assert not result.is_error, (args, result.text)
        for request in seen:
            found.setdefault(entry_key(request), []).append(args)
    assert len(found) == 1, f"{spec.name}: equivalent calls keyed {len(found)} entries: {list(found.values())}"


@pytest.mark.django_db
@pytest.mark.parametrize("cache_backend", ["fake"], indirect=True)
@pytest.mark.parametrize("spec", READ_TOOLS, ids=lambda s: s.name)
def test_explicit_defaults_cost_exactly_one_upstream_call(
    spec: ToolSpec, cache_backend: CacheEnv, fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext
) -> None:
    seeded(fake_jobnimbus)
    outcomes, upstream = [], []
    for args in variants(spec):
        result = registry.call_tool(tool_ctx, spec.name, args)
        assert not result.is_error, (args, result.text)
        outcomes.append(result.cache["status"] if result.cache else None)
        upstream.append(len(fake_jobnimbus.calls))
    # One fetch (the calendar's reads two resources in it), then nothing more: every variant is a hit.
    assert upstream[0] == (2 if spec.name == "get_calendar_activities" else 1), fake_jobnimbus.calls
    assert set(upstream) == {upstream[0]}, (spec.name, fake_jobnimbus.calls)
    assert outcomes[0] == "miss"
    assert all(str(s).startswith("hit") for s in outcomes[1:]), outcomes


@pytest.mark.parametrize("cache_backend", ["fake"], indirect=True)
def test_sort_direction_desc_given_or_not_is_one_entry(
    cache_backend: CacheEnv, fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext
) -> None:
    """The issue's example, by name, so it holds even if the schemas stopped declaring the sort defaults."""
    for args in ({"status": "Lead"}, {"sort_direction": "desc", "status": "Lead"},
                 {"status": "Lead", "sort_field": "date_created", "sort_direction": "desc", "size": 20}):  # fmt: skip
        assert not registry.call_tool(tool_ctx, "get_jobs", args).is_error
    assert len(fake_jobnimbus.lists("jobs")) == 1
    registry.call_tool(tool_ctx, "get_jobs", {"status": "Lead", "sort_direction": "asc"})
    assert len(fake_jobnimbus.lists("jobs")) == 2  # a different order is a different read
