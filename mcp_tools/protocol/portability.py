"""Tool-schema portability: the rules a `tools/list` answer must meet so every major client and model provider takes
every tool as declared. `findings(tools)` checks the wire's `Tool` JSON (what `protocol.tools.all_tools_json()`
returns) and names each problem by tool, schema path and rule; tests/test_catalog_portability.py wants none, and
bench/figures_catalog.py counts them before and after.

Where the rules come from:

- `inspector/*`: the MCP Inspector's `--strict` lint (`@modelcontextprotocol/inspector` 2.12.0,
  `core/json/schemaLint.ts`, run on `--method tools/list`), ported rule for rule over input and output schemas:
  `type-union` (a `type` array), `remote-ref` (a `$ref` outside the document), `untyped-schema` (a subschema with no
  validation keyword: it accepts anything), `boolean-schema` (a bare `true`/`false` where a schema object belongs).
- `provider/*`, on input schemas (what a client hands a model provider; output schemas stay between server and
  client, where the Inspector's rules apply): the subset the providers' tool schemas share:
  Google Gemini's function declarations (an OpenAPI 3.0 `Schema`: one `type` per schema and no `null` type, no
  `$ref`/`$defs`, `enum` on strings only, `format` only `enum`/`date-time` for strings, only the keywords of its
  `Schema` object); OpenAI function calling (root `type: object`, every array with `items`, `format` from its short
  list, function descriptions of at most 1024 characters, names `^[a-zA-Z0-9_-]{1,64}$`); Anthropic tool use (names
  `^[a-zA-Z0-9_-]{1,64}$`, a JSON Schema object at the root). What all three accept is what is allowed here:
  `additionalProperties` as a boolean (Gemini's `parametersJsonSchema` and OpenAI's strict mode take `false`).
- `catalog/*`: this catalog's own budget: argument descriptions of at most 200 characters (say a thing once, in
  the tool's description or the server's instructions), `required` naming declared properties only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

JSON_TYPES = frozenset({"null", "boolean", "object", "array", "number", "string", "integer"})
PORTABLE_TYPES = JSON_TYPES - {"null"}
# The keywords of Gemini's function-declaration Schema that OpenAI and Anthropic read too (plus
# additionalProperties, see above); title, example, nullable and propertyOrdering are Gemini's alone.
PORTABLE_KEYWORDS = frozenset(
    {
        "type",
        "description",
        "title",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "enum",
        "default",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "pattern",
        "minItems",
        "maxItems",
        "anyOf",
        "format",
    }
)
PORTABLE_FORMATS = frozenset({"date-time"})
TOOL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
MAX_TOOL_DESCRIPTION = 1024
MAX_ARGUMENT_DESCRIPTION = 200

# The Inspector's walk: where subschemas sit, which keywords constrain a value, which may hold a boolean.
_SUBSCHEMA: tuple[str, ...] = ("items", "contains", "not", "propertyNames", "if", "then", "else")
_SUBSCHEMA += ("additionalProperties", "unevaluatedProperties", "additionalItems", "unevaluatedItems", "contentSchema")
_SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SUBSCHEMA_MAPS = ("properties", "patternProperties", "dependentSchemas", "dependencies", "$defs", "definitions")
_BOOLEAN_VALUED = frozenset({"additionalProperties", "unevaluatedProperties", "additionalItems", "unevaluatedItems"})
_CONSTRAINING = frozenset(
    {
        *("type", "enum", "const", "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum"),
        *("maxLength", "minLength", "pattern", "format", "contentMediaType", "contentEncoding", "contentSchema"),
        *("maxItems", "minItems", "uniqueItems", "maxContains", "minContains", "maxProperties", "minProperties"),
        *("required", "dependentRequired", "allOf", "anyOf", "oneOf", "not", "items", "prefixItems", "contains"),
        *("additionalItems", "unevaluatedItems", "properties", "patternProperties", "additionalProperties"),
        *("unevaluatedProperties", "propertyNames", "dependentSchemas", "dependencies", "$ref", "$dynamicRef"),
        "$recursiveRef",
    }
)


@dataclass(frozen=True)
class Finding:
    """One portability problem: which tool, where in which schema, which rule, what is wrong."""

    tool: str
    where: str
    rule: str
    issue: str

    def __str__(self) -> str:
        return f"{self.tool} {self.where}: [{self.rule}] {self.issue}"


def findings(tools: Sequence[Mapping[str, Any]]) -> list[Finding]:
    """Return every portability problem of `tools` (the `tools` array of a tools/list result)."""
    return [f for tool in tools for f in tool_findings(tool)]


def inspector_findings(tools: Sequence[Mapping[str, Any]]) -> list[Finding]:
    """Return only what the Inspector's `--strict` reports (its warnings and errors)."""
    return [f for f in findings(tools) if f.rule.startswith("inspector/")]


def tool_findings(tool: Mapping[str, Any]) -> list[Finding]:
    """Return the problems of one tool's name, description and schemas."""
    name = str(tool.get("name"))
    found: list[Finding] = []
    if not TOOL_NAME.match(name):
        found.append(Finding(name, "name", "provider/tool-name", "must match ^[A-Za-z_][A-Za-z0-9_-]{0,63}$"))
    if len(str(tool.get("description") or "")) > MAX_TOOL_DESCRIPTION:
        found.append(
            Finding(name, "description", "provider/description-length", f"over {MAX_TOOL_DESCRIPTION} characters")
        )
    for kind in ("inputSchema", "outputSchema"):
        schema = tool.get(kind)
        if schema is None:
            continue
        if not isinstance(schema, Mapping) or schema.get("type") != "object" or "anyOf" in schema:
            found.append(Finding(name, kind, "provider/root-object", "the root must be one schema of type object"))
        sent_to_models = kind == "inputSchema"
        for path, keyword, node in _walk(schema, kind, None):
            problems = _node_problems(node, keyword, sent_to_models)
            found.extend(Finding(name, path, rule, issue) for rule, issue in problems)
    return found


def _walk(node: Any, path: str, keyword: str | None, depth: int = 0) -> Iterator[tuple[str, str | None, Any]]:
    """Yield every schema position under `node` (itself first) with the keyword that holds it, as the Inspector."""
    if depth > 64:
        return
    yield path, keyword, node
    if not isinstance(node, Mapping):
        return
    for key in _SUBSCHEMA_MAPS:
        if isinstance(node.get(key), Mapping):
            for name, sub in node[key].items():
                yield from _walk(sub, f"{path}.{key}.{name}", key, depth + 1)
    for key in _SUBSCHEMA_LISTS:
        if isinstance(node.get(key), list):
            for i, sub in enumerate(node[key]):
                yield from _walk(sub, f"{path}.{key}[{i}]", key, depth + 1)
    for key in _SUBSCHEMA:
        if key in node:
            yield from _walk(node[key], f"{path}.{key}", key, depth + 1)


def _node_problems(node: Any, keyword: str | None, sent_to_models: bool) -> Iterator[tuple[str, str]]:
    if isinstance(node, bool):
        if keyword not in _BOOLEAN_VALUED:
            yield "inspector/boolean-schema", f"bare {str(node).lower()} where a schema object is expected"
        return
    if not isinstance(node, Mapping):
        return
    kind = node.get("type")
    if isinstance(kind, list) and kind and all(k in JSON_TYPES for k in kind) and len(set(kind)) == len(kind):
        yield "inspector/type-union", f"`type` is an array {kind}; use one type"
    ref = node.get("$ref")
    if isinstance(ref, str) and ref and not ref.startswith("#"):
        yield "inspector/remote-ref", f"`$ref` {ref!r} points outside the document"
    if keyword != "not" and not (set(node) & _CONSTRAINING or ("if" in node and ("then" in node or "else" in node))):
        yield "inspector/untyped-schema", "carries no validation keyword, so it accepts any value"
    if sent_to_models:
        yield from _provider_problems(node)


def _provider_problems(node: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    kind = node.get("type")
    if "anyOf" not in node and not (isinstance(kind, str) and kind in PORTABLE_TYPES):
        yield "provider/single-type", f"declare one `type` of {sorted(PORTABLE_TYPES)}, got {kind!r}"
    unknown = sorted(set(node) - PORTABLE_KEYWORDS)
    if unknown:
        yield "provider/keyword", f"keywords outside the providers' common subset: {unknown}"
    if kind == "array" and not (isinstance(node.get("items"), Mapping) and "type" in node["items"]):
        yield "provider/array-items", "an array must declare typed `items`"
    if "enum" in node and (kind != "string" or not all(isinstance(v, str) for v in node["enum"])):
        yield "provider/enum", "`enum` only on strings, with string values"
    if "format" in node and node["format"] not in PORTABLE_FORMATS:
        yield (
            "provider/format",
            f"format {node['format']!r} is not one every provider takes ({sorted(PORTABLE_FORMATS)})",
        )
    if "additionalProperties" in node and not isinstance(node["additionalProperties"], bool):
        yield "provider/additional-properties", "`additionalProperties` must be true or false"
    description = node.get("description")
    if isinstance(description, str) and len(description) > MAX_ARGUMENT_DESCRIPTION:
        yield "catalog/description-length", f"description over {MAX_ARGUMENT_DESCRIPTION} characters"
    missing = [r for r in node.get("required", ()) if r not in node.get("properties", {})]
    if missing:
        yield "catalog/required-declared", f"required but not declared: {missing}"
