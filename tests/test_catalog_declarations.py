"""Tool declarations are what the tools do: each read goes through the policy and entity its spec declares, and
the entity table (mcp_tools.entities) is the one source of the per-entity tables derived from it."""

from __future__ import annotations

from typing import Any

import pytest

from cacheops.api import CacheOutcome, ReadRequest
from cacheops.policies import DEFAULT_POLICIES
from mcp_tools import change_source, entities, shaping
from mcp_tools.catalog import registry, runtime
from mcp_tools.catalog.base import ToolContext, ToolSpec
from mcp_tools.jobnimbus.resources import RESOURCES
from tests.fixtures.catalog import FakeJobNimbus

READ_TOOLS = [spec for spec in registry.all_tools() if spec.read_only]
# The least each read tool needs to run: the required arguments its schema names.
REQUIRED = {"jnid": "j1", "query": "Smith", "date_from": "2025-01-01", "date_to": "2025-12-31"}


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[ReadRequest]:
    """Record every ReadRequest the tools hand the cache engine, and answer each from its fetch."""
    seen: list[ReadRequest] = []

    def spy(request: ReadRequest, fetch: Any) -> CacheOutcome:
        seen.append(request)
        return CacheOutcome(value=fetch(), status="miss", ttl_s=60)

    monkeypatch.setattr(runtime, "read_through", spy)
    return seen


@pytest.mark.django_db
@pytest.mark.parametrize("spec", READ_TOOLS, ids=lambda s: s.name)
def test_every_read_uses_the_policy_and_entity_its_tool_declares(
    spec: ToolSpec, fake_jobnimbus: FakeJobNimbus, tool_ctx: ToolContext, reads: list[ReadRequest]
) -> None:
    fake_jobnimbus.data = {"jobs": [{"jnid": "j1", "name": "Smith roof"}], "contacts": [], "activities": []}
    args = {name: REQUIRED[name] for name in spec.input_schema.get("required", [])}
    registry.call_tool(tool_ctx, spec.name, args)
    assert reads, f"{spec.name} never read through the cache"
    assert {(r.tool, r.policy, r.entity) for r in reads} == {(spec.name, spec.policy, spec.entity)}


def test_get_webhooks_reads_under_its_own_policy_not_the_settings_one() -> None:
    spec = registry.get_tool("get_webhooks")
    assert (spec.policy, spec.entity) == ("webhooks", "webhook")


@pytest.mark.parametrize("spec", registry.all_tools(), ids=lambda s: s.name)
def test_every_declared_policy_and_resource_exists(spec: ToolSpec) -> None:
    assert spec.policy is None or spec.policy in DEFAULT_POLICIES
    assert spec.resource is None or spec.resource in RESOURCES
    assert spec.entity is None or spec.entity in entities.BY_NAME


@pytest.mark.parametrize("row", entities.ENTITIES, ids=lambda r: r.name)
def test_each_entity_row_reaches_every_table_it_belongs_in(row: entities.EntityRow) -> None:
    if row.resource:
        assert RESOURCES[row.resource].entity == row.name
    if row.polled:  # polling lists changed records, so a polled type needs a list endpoint
        assert RESOURCES[change_source.POLLED_RESOURCES[row.name]].path("list")
    else:
        assert row.name not in change_source.POLLED_RESOURCES
    assert shaping.COMPACT_FIELDS.get(row.name, ()) == row.compact_fields
    for policy in (row.policy, row.detail_policy, row.search_policy):
        assert policy is None or policy in DEFAULT_POLICIES


def test_an_entity_never_cached_has_no_cache_policy() -> None:
    with pytest.raises(LookupError, match="'budget' is never cached"):
        entities.entity("budget").cache_policy()
