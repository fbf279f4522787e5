"""Check tool arguments against a tool's JSON Schema and say, in one sentence, which argument is wrong and how."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError as SchemaError
from jsonschema.exceptions import best_match

from mcp_tools.memo import OwnedMemo
from mcp_tools.suggest import did_you_mean, near

_TYPE_NAMES = {
    "integer": "an integer",
    "number": "a finite number",
    "string": "a string",
    "boolean": "true or false",
    "array": "a list",
    "object": "an object",
    "null": "null",
}


# The largest integer every JSON reader holds exactly (RFC 8259 §6); orjson, which hashes cache keys, stops at 2**64.
MAX_SAFE_INTEGER = 2**53 - 1


def _is_strict_integer(checker: Any, instance: Any) -> bool:
    # Draft 2020-12 counts 1.0 as an integer; the tools slice and page with these values, so only real ints pass.
    return isinstance(instance, int) and not isinstance(instance, bool) and abs(instance) <= MAX_SAFE_INTEGER


def _is_sendable_number(checker: Any, instance: Any) -> bool:
    # inf and nan are no JSON at all: requests refuses to encode them, so they must never get past validation.
    if isinstance(instance, float):
        return math.isfinite(instance)
    return _is_strict_integer(checker, instance)


# Draft 2020-12 with "integer" meaning a JSON number written without a fraction or exponent, and "number" (and
# "integer") meaning one that can be sent on: finite, and an integer within MAX_SAFE_INTEGER.
StrictValidator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine_many(
        {"integer": _is_strict_integer, "number": _is_sendable_number}
    ),
)


def validator_for(schema: Mapping[str, Any]) -> Draft202012Validator:
    """Return a Draft 2020-12 validator for `schema` whose integers exclude floats like 1.0 (schema checked first)."""
    Draft202012Validator.check_schema(schema)
    validator: Draft202012Validator = StrictValidator(schema)
    return validator


def first_error(
    validator: Draft202012Validator, instance: Any, *, prefix: str = "", remember: bool = True
) -> str | None:
    """Return the message for the most relevant problem in `instance`, or None when it is valid.

    Verdicts are remembered per validator and exact JSON text of `instance`: clients repeat the same arguments
    (that is what the cache is for) and a schema walk costs more than the cached answer it guards. Callers whose
    instances never repeat (import rows) pass remember=False so they do not push those verdicts out.
    """
    if not remember:
        return _judge(validator, instance, prefix)
    try:
        text = orjson.dumps(instance, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # not JSON (never off the wire): judge it afresh
        return _judge(validator, instance, prefix)
    if len(text) > MAX_REMEMBERED_BYTES:  # big arguments (imports, notes) are rarely repeated; memory stays bounded
        return _judge(validator, instance, prefix)
    if b"null" in text:  # orjson writes inf and nan as null: such text names more than one instance
        return _judge(validator, instance, prefix)
    memo_key = (id(validator), prefix, text)  # the validator's id keeps validators apart; ownership keeps it honest
    known, verdict = _verdicts.lookup(memo_key, validator)
    if not known:
        verdict = _judge(validator, instance, prefix)
        _verdicts.remember(memo_key, validator, verdict)
    return verdict


_verdicts: OwnedMemo[str | None] = OwnedMemo(max_entries=4096)
MAX_REMEMBERED_BYTES = 2048


def _judge(validator: Draft202012Validator, instance: Any, prefix: str) -> str | None:
    """Return the message of the most relevant error; an unknown argument comes first (it usually explains the
    rest: `get_job {"id": ...}` is missing `jnid` because `id` was meant), the others it explains are added."""
    errors = list(validator.iter_errors(instance))
    unknown = [e for e in errors if e.validator == "additionalProperties"]
    error = best_match(unknown or errors)
    if error is None:
        return None
    message = describe(error, prefix)
    if unknown:
        missing = [
            e for e in errors if e.validator == "required" and list(e.absolute_path) == list(error.absolute_path)
        ]
        names = [_missing_name(e) for e in missing]
        if names:
            message += f"; {', '.join(repr(_join(_path(error, prefix), n)) for n in names)} required"
    return message


def describe(error: SchemaError, prefix: str = "") -> str:
    """Return "Argument 'x' must be ..., got ..." for one schema error."""
    where = _path(error, prefix)
    kind, schema, value = error.validator, error.schema, error.instance
    if kind == "required":
        return f"Argument {_join(where, _missing_name(error))!r} is required"
    if kind == "additionalProperties":
        allowed = list(schema.get("properties", {}))
        extra = sorted(set(value) - set(allowed)) if isinstance(value, dict) else []
        names = ", ".join(repr(_join(where, n)) + _hint(n, allowed) for n in extra)
        return f"Unknown argument{'s' if len(extra) > 1 else ''} {names}; allowed: {', '.join(sorted(allowed))}"
    said = f"Argument {where or '(arguments)'!r} must be {_expected(schema)}, got {_shown(value)}{_why(kind, value)}"
    if kind == "enum" and isinstance(value, str):
        said += "." + did_you_mean(near(value, [v for v in schema["enum"] if isinstance(v, str)]))
    return said


# Names other APIs use for an argument these tools call differently.
_ALIASES = {
    "id": "jnid",
    "record_id": "jnid",
    "limit": "size",
    "page_size": "size",
    "per_page": "size",
    "offset": "from",
    "start": "from",
    "q": "query",
    "search": "query",
    "text": "query",
    "sort": "sort_field",
    "order_by": "sort_field",
    "order": "sort_direction",
    "since": "date_from",
    "start_date": "date_from",
    "until": "date_to",
    "end_date": "date_to",
}


def _hint(name: str, allowed: list[str]) -> str:
    """Return " (did you mean 'jnid'?)" for an unknown argument with a near match among the allowed ones."""
    alias = _ALIASES.get(name)
    matches = [alias] if alias in allowed else near(name, allowed, n=2)
    if not matches:
        return ""
    return " (did you mean " + " or ".join(repr(m) for m in matches) + "?)"


def _missing_name(error: SchemaError) -> str:
    return error.message.split("'")[1] if "'" in error.message else error.message


def _expected(schema: Mapping[str, Any]) -> str:
    """Return what a value of `schema` must be, in words ("an integer between 1 and 100")."""
    if "enum" in schema:
        return "one of " + ", ".join(repr(v) for v in schema["enum"])
    types = schema.get("type", "a value")
    names = " or ".join(_TYPE_NAMES.get(t, t) for t in ([types] if isinstance(types, str) else types))
    return names + _bounds(schema)


def _why(kind: str, value: Any) -> str:
    """Return why a number of the right kind was still refused by its type: too big an integer to send exactly."""
    if kind == "type" and isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SAFE_INTEGER:
        return f" (integers are sent only up to {MAX_SAFE_INTEGER} in size)"
    return ""


def _bounds(schema: Mapping[str, Any]) -> str:
    parts = []
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and high is not None:
        parts.append(f" between {low} and {high}")
    elif low is not None:
        parts.append(f" >= {low}")
    elif high is not None:
        parts.append(f" <= {high}")
    for key, words in (
        ("minLength", "at least {} characters"),
        ("maxLength", "at most {} characters"),
        ("minItems", "at least {} items"),
        ("maxItems", "at most {} items"),
    ):
        if key in schema:
            parts.append(" of " + words.format(schema[key]) if not parts else ", " + words.format(schema[key]))
    if "pattern" in schema:
        parts.append(f" matching {schema['pattern']}")
    if schema.get("uniqueItems"):
        parts.append(" without repeats")
    return "".join(parts)


def _path(error: SchemaError, prefix: str) -> str:
    out = prefix
    for part in error.absolute_path:
        out = f"{out}[{part}]" if isinstance(part, int) else _join(out, str(part))
    return out


def _join(base: str, name: str) -> str:
    return f"{base}.{name}" if base else name


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
