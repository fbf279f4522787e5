"""The one registry of tools: list them, find one, and call one with validated arguments.

Every failure a caller can cause, JobNimbus can report, or a tool can crash with becomes an `is_error` result
here, in one place; neither a tool handler nor the protocol layer formats its own errors.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator

from cacheops.api import CacheOutcome, cache_enabled
from cacheops.errors import UpstreamError
from mcp_tools.catalog import account, activities, contacts, financial, jobs
from mcp_tools.catalog.args import ArgumentError
from mcp_tools.catalog.base import ToolContext, ToolResult, ToolSpec, UnknownToolError
from mcp_tools.catalog.compose import composed
from mcp_tools.catalog.failures import upstream_message
from mcp_tools.catalog.notes import collecting, with_notes
from mcp_tools.catalog.validation import first_error, validator_for
from mcp_tools.catalog.warnings import check_choices
from mcp_tools.timezones import instance_locale, using_locale

logger = logging.getLogger(__name__)

_MODULES = (contacts, jobs, activities, financial, account)


@cache
def _tools() -> dict[str, ToolSpec]:
    specs = [spec for module in _MODULES for spec in module.TOOLS]
    by_name = {spec.name: spec for spec in specs}
    if len(by_name) != len(specs):
        raise RuntimeError("two tools share a name")
    return by_name


@cache
def _validator(name: str) -> Draft202012Validator:
    return validator_for(_tools()[name].input_schema)


def all_tools() -> list[ToolSpec]:
    """Return every tool, in declaration order."""
    return list(_tools().values())


def get_tool(name: str) -> ToolSpec:
    """Return the tool called `name`; raise UnknownToolError when there is none."""
    try:
        return _tools()[name]
    except KeyError:
        raise UnknownToolError(name) from None


def is_write_tool(name: str) -> bool:
    """Return whether `name` is a tool that changes JobNimbus records (False for reads and unknown names)."""
    spec = _tools().get(name)
    return spec is not None and not spec.read_only


def call_tool(ctx: ToolContext, name: str, arguments: Mapping[str, Any] | None) -> ToolResult:
    """Validate `arguments`, apply defaults, run the tool; every failure is an `is_error` result, never raised.

    The call is answered in its instance's time zone and currency, and the notes on how its arguments were read
    (a datetime without an offset) are added to the answer.
    """
    with using_locale(instance_locale(ctx.instance)), collecting() as notes:
        return with_notes(answer(ctx, name, lambda: _run(ctx, get_tool(name), arguments)), notes)


def _run(ctx: ToolContext, spec: ToolSpec, arguments: Mapping[str, Any] | None) -> ToolResult:
    if arguments is not None and not isinstance(arguments, Mapping):
        raise ArgumentError(f"Tool arguments must be an object, got {type(arguments).__name__}")
    args = dict(arguments or {})
    problem = first_error(_validator(spec.name), args)
    if problem:
        raise ArgumentError(problem)
    filled = with_defaults(spec.input_schema, args)
    check_choices(ctx, spec, filled)  # a status or type the account does not have: an error naming near matches
    if filled.get("include"):  # a detail with its related records: each part is a call of its own tool
        return composed(ctx, spec, filled, lambda tool, part_args: call_tool(ctx, tool, part_args))
    return spec.run(ctx, filled)


def answer(ctx: ToolContext, name: str, call: Callable[[], ToolResult]) -> ToolResult:
    """Return what `call()` answers for tool `name`, or the `is_error` result its failure means (the one catch-all).

    An unknown tool is answered as a tool error, as the SDK servers do, so the model can pick another (the spec
    also allows a -32602 protocol error). A crash is a bug: logged with its traceback and the request id (the log
    filter adds it), answered with a generic message, never the traceback.
    """
    try:
        return call()
    except UnknownToolError:
        return error_result(f"Unknown tool {name!r}. Call tools/list to see the tools this server offers.")
    except ArgumentError as exc:
        return error_result(str(exc))
    except UpstreamError as exc:  # JobNimbus's answers, and the calls the engine refused to make
        return error_result(upstream_message(exc, held_key=ctx.held_key), cache=_failed_read_meta(name))
    except Exception:
        logger.exception("tool %s failed unexpectedly", name)
        return error_result(f"The tool {name!r} failed unexpectedly (request id {ctx.request_id}); try again later.")


def with_defaults(schema: Mapping[str, Any], args: Mapping[str, Any]) -> dict[str, Any]:
    """Return `args` with every top-level schema default filled in where the argument was left out."""
    filled = dict(args)
    for key, prop in schema.get("properties", {}).items():
        if key not in filled and "default" in prop:
            filled[key] = copy.deepcopy(prop["default"])
    return filled


def _failed_read_meta(name: str) -> dict[str, Any] | None:
    """Return the cache outcome of a cached read JobNimbus failed: it went through the cache and missed.

    Errors are never cached, so with the cache on such a read is a miss, not a bypass; None (reported as bypass)
    for writes, uncached tools, and a cache switched off.
    """
    spec = _tools().get(name)
    if spec is None or spec.policy is None or not cache_enabled():
        return None
    return CacheOutcome.without_value("miss").meta()


def error_result(message: str, cache: dict[str, Any] | None = None) -> ToolResult:
    """Return an `is_error` result with `message` as text and structured content (and the cache outcome, if any)."""
    return ToolResult(structured={"error": message}, text=message, is_error=True, cache=cache)
