"""The catalog on the wire is lean and portable: no tool-schema portability finding (the MCP Inspector's --strict
rules and the model providers' common subset, mcp_tools.protocol.portability), within the tools/list byte budget,
and the published schemas differ from the validating ones only by the server's guards."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from mcp_tools.catalog import registry
from mcp_tools.catalog.declare import GUARD_KEYWORDS, HINT_DEFAULTS, published
from mcp_tools.protocol import portability
from mcp_tools.protocol.tools import all_tools_json

MAX_CATALOG_BYTES = 26_600  # issue 13: at most 40 % of the 66,631 bytes it weighed


def test_no_tool_schema_has_a_portability_finding() -> None:
    found = portability.findings(all_tools_json())
    assert not found, "\n".join(str(f) for f in found)


def test_the_catalog_fits_its_byte_budget() -> None:
    assert len(orjson.dumps(all_tools_json())) <= MAX_CATALOG_BYTES


@pytest.mark.parametrize(
    ("schema", "rule"),
    [
        ({"type": ["string", "integer"]}, "inspector/type-union"),
        ({"type": "array", "items": {"description": "anything"}}, "inspector/untyped-schema"),
        ({"type": "array", "items": {"description": "anything"}}, "provider/array-items"),
        ({"type": "object", "properties": {"a": True}}, "inspector/boolean-schema"),
        ({"$ref": "https://example.com/s.json"}, "inspector/remote-ref"),
        ({"type": "string", "format": "email"}, "provider/format"),
        ({"type": "integer", "enum": [1, 2]}, "provider/enum"),
        ({"type": "array", "items": {"type": "string"}, "uniqueItems": True}, "provider/keyword"),
        ({"type": "object", "additionalProperties": {"type": "string"}}, "provider/additional-properties"),
        ({"type": "string", "description": "x" * 201}, "catalog/description-length"),
    ],
)
def test_each_rule_catches_what_it_names(schema: dict[str, Any], rule: str) -> None:
    tool = {"name": "t", "description": "d", "inputSchema": {"type": "object", "properties": {"a": schema}}}
    assert rule in {f.rule for f in portability.findings([tool])}


def test_output_schemas_answer_to_the_inspector_rules_only() -> None:
    nullable = {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    tool = {
        "name": "t",
        "inputSchema": {"type": "object"},
        "outputSchema": {"type": "object", "properties": {"n": nullable}},
    }
    assert portability.findings([tool]) == []
    assert portability.findings([{**tool, "inputSchema": tool["outputSchema"]}])


def test_a_tool_name_providers_refuse_is_a_finding() -> None:
    assert portability.findings([{"name": "get jobs", "inputSchema": {"type": "object"}}])


def _keywords(schema: Any) -> set[str]:
    if isinstance(schema, dict):
        return set(schema) | {k for v in schema.values() for k in _keywords(v)}
    if isinstance(schema, list):
        return {k for v in schema for k in _keywords(v)}
    return set()


@pytest.mark.parametrize("spec", registry.all_tools(), ids=lambda s: s.name)
def test_the_published_schema_is_the_validating_one_without_its_guards(spec: Any) -> None:
    shown = published(spec.input_schema)
    assert not _keywords(shown) & GUARD_KEYWORDS  # no property of the catalog is called like one
    assert set(shown["properties"]) == set(spec.input_schema["properties"])
    assert shown.get("required") == spec.input_schema.get("required")
    for name, prop in spec.input_schema["properties"].items():
        kept = {k: v for k, v in prop.items() if k not in GUARD_KEYWORDS and k not in ("items", "properties")}
        assert {k: v for k, v in shown["properties"][name].items() if k not in ("items", "properties")} == kept


def test_annotations_state_only_what_differs_from_the_mcp_defaults() -> None:
    for spec in registry.all_tools():
        assert all(HINT_DEFAULTS[hint] != value for hint, value in spec.annotations.items()), spec.name


def test_a_property_called_like_a_guard_keyword_is_kept() -> None:
    schema = {"type": "object", "properties": {"pattern": {"type": "string", "maxLength": 5}}}
    assert published(schema) == {"type": "object", "properties": {"pattern": {"type": "string"}}}
