"""The MCP endpoints as plain Django functions, as they were before they became DRF views (bench only).

bench/figures_views.py measures the DRF views (mcp_tools.views) against these in the same run: the issue asks
that the DRF views keep at least 90 % of this throughput. They do the same work in the same order as the product
did (transport checks, decode, negotiate, caller, budgets, dispatch) and answer the same bodies; bench.urls mounts
them under /bench/plain/. Never routed by the product's URLconf.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from mcp_types import INVALID_REQUEST, RequestId

from jobnimbus_site.logging import request_id_var
from mcp_tools import throttling
from mcp_tools.catalog.base import ToolResult, UnknownToolError
from mcp_tools.protocol import dispatch, messages, tools
from mcp_tools.protocol.errors import (
    BadRequest,
    Era,
    HttpProblem,
    MethodNotAllowed,
    NotFound,
    RpcError,
    error_body,
    internal_error,
    rpc_status,
)
from mcp_tools.protocol.http import check_content_type, check_origin, read_limited
from mcp_tools.protocol.versions import (
    SUPPORTED_VERSIONS,
    VERSION_HEADER,
    Negotiated,
    check_legacy_header,
    check_method_header,
    check_modern_envelope,
    check_name_header,
    is_modern,
    unsupported,
)
from mcp_tools.tenancy import resolve_caller

logger = logging.getLogger(__name__)

# X-Cache on the compatibility endpoints: the cache status in the style of CDNs' X-Cache.
_X_CACHE = {
    "hit_l1": "HIT-L1",
    "hit_l2": "HIT-L2",
    "miss": "MISS",
    "stale": "STALE",
    "coalesced": "COALESCED",
    "bypass": "BYPASS",
}


@csrf_exempt
def mcp_endpoint(request: HttpRequest) -> HttpResponse:
    """Answer one Streamable HTTP POST: a request gets JSON, a notification or response gets 202."""
    try:
        incoming = messages.decode(read_json_body(request))
    except HttpProblem as problem:
        return _rpc_problem(problem, None)
    except RpcError as error:
        return _rpc_error(None, error, "legacy")
    except Exception:
        # Reading and decoding should refuse every malformed input with a precise answer; should one still slip
        # through, the caller gets a JSON-RPC error rather than Django's HTML 500.
        logger.exception("MCP request could not be read")
        return _rpc_error(None, internal_error(request_id_var.get()), "legacy")
    if incoming.request is None:
        return _acknowledge(request)
    rpc = incoming.request
    return _answer(request, rpc.id, rpc.method, rpc.params or {})


def _answer(request: HttpRequest, rpc_id: RequestId, method: str, params: dict[str, Any]) -> HttpResponse:
    header = request.headers.get(VERSION_HEADER)
    era: Era = "modern" if is_modern(method, params, header) else "legacy"
    try:
        negotiated = _negotiate(method, params, request, era)
        caller = resolve_caller(request)
        throttling.enforce(caller, tool_call=method == "tools/call")
        exchange = dispatch.Exchange(method, params, negotiated, caller, request_id_var.get())
        result = dispatch.handle(exchange)
    except HttpProblem as problem:
        return _rpc_problem(problem, rpc_id)
    except RpcError as error:
        return _rpc_error(rpc_id, error, era)
    except Exception:
        logger.exception("MCP %s failed unexpectedly", method)
        return _rpc_error(rpc_id, internal_error(request_id_var.get()), era)
    return _json({"jsonrpc": "2.0", "id": rpc_id, "result": result})


def _negotiate(method: str, params: dict[str, Any], request: HttpRequest, era: Era) -> Negotiated:
    if era == "modern":
        return check_modern_envelope(method, params, request.headers)
    negotiated = check_legacy_header(request.headers.get(VERSION_HEADER))
    check_method_header(method, request.headers)
    check_name_header(method, params, request.headers, required=False)
    return negotiated


def _acknowledge(request: HttpRequest) -> HttpResponse:
    header = request.headers.get(VERSION_HEADER)
    if header is not None and header not in SUPPORTED_VERSIONS:
        return _rpc_error(None, unsupported(header), "modern")
    return HttpResponse(status=202)


def _rpc_error(rpc_id: RequestId | None, error: RpcError, era: Era) -> HttpResponse:
    return _json(error_body(rpc_id, error.code, error.message, error.data), status=rpc_status(error.code, era))


def _rpc_problem(problem: HttpProblem, rpc_id: RequestId | None) -> HttpResponse:
    data = {"status": problem.status, **problem.data}
    response = _json(error_body(rpc_id, INVALID_REQUEST, problem.message, data), status=problem.status)
    return _with_headers(response, problem.headers)


@csrf_exempt
def compat_tools_list(request: HttpRequest) -> HttpResponse:
    """Answer `POST /mcp/tools/list` in the plain shape: `{"success": true, "data": {"tools": [...]}}`."""
    return _compat(request, _compat_list)


@csrf_exempt
def compat_tools_call(request: HttpRequest) -> HttpResponse:
    """Answer `POST /mcp/tools/call {"name", "arguments"}` with `success`/`data` or `success`/`error`."""
    return _compat(request, _compat_call)


def _compat(request: HttpRequest, work: Callable[[HttpRequest], HttpResponse]) -> HttpResponse:
    """Run a compatibility endpoint; every failure becomes `{"success": false, "error": ...}` with its status."""
    try:
        return work(request)
    except HttpProblem as problem:
        return _compat_problem(problem)
    except Exception:
        logger.exception("%s failed unexpectedly", request.path)
        message = f"Internal error (request id {request_id_var.get()}); the server log has the details"
        return _json({"success": False, "error": message}, status=500)


def _compat_list(request: HttpRequest) -> HttpResponse:
    read_json_body(request, allow_empty=True)
    caller = resolve_caller(request)
    throttling.enforce(caller)
    return _json({"success": True, "data": {"tools": tools.all_tools_json()}})


def _compat_call(request: HttpRequest) -> HttpResponse:
    name, arguments = _compat_call_body(read_json_body(request))
    caller = resolve_caller(request)
    throttling.enforce(caller, tool_call=True)
    ctx = caller.tool_context(request_id_var.get())
    _require_tool(name)
    return _compat_result(tools.run_tool(ctx, name, arguments))


def _compat_call_body(body: bytes) -> tuple[str, dict[str, Any]]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("The body is not valid JSON") from exc
    if not isinstance(payload, dict):
        raise BadRequest('The body must be an object: {"name": "<tool>", "arguments": {...}}')
    try:
        return dispatch.call_arguments(payload)
    except RpcError as error:
        raise BadRequest(error.message.removeprefix("Invalid params: ")) from error


def _require_tool(name: str) -> None:
    try:
        tools.catalog().get_tool(name)
    except UnknownToolError as exc:
        raise NotFound(f"Unknown tool {name!r}; POST /mcp/tools/list shows the tools this server offers") from exc


def _compat_result(result: ToolResult) -> HttpResponse:
    # A tool-level failure (bad argument, JobNimbus refusal) is a successful HTTP exchange with success false,
    # as in the plan's shape; HTTP errors are kept for requests this endpoint could not take at all.
    body = {"success": False, "error": result.text} if result.is_error else {"success": True, "data": result.structured}
    cache = tools.cache_meta(result)
    response = _json(body)
    response["X-Cache"] = _X_CACHE.get(str(cache.get("status")), str(cache.get("status")).upper())
    if cache.get("age_s") is not None:
        response["Age"] = str(int(cache["age_s"]))
    return response


def _compat_problem(problem: HttpProblem) -> HttpResponse:
    response = _json({"success": False, "error": problem.message, **problem.data}, status=problem.status)
    return _with_headers(response, problem.headers)


def read_json_body(request: HttpRequest, *, allow_empty: bool = False) -> bytes:
    """Return the POSTed body after the transport checks, or raise the `HttpProblem` that refuses it."""
    check_origin(request.headers.get("Origin"))
    if request.method != "POST":
        raise MethodNotAllowed(
            f"{request.method} is not supported here: send JSON-RPC messages with POST (this server keeps no "
            "sessions and opens no event stream)",
            headers={"Allow": "POST"},
        )
    body = read_limited(request)
    if not (allow_empty and not body):
        check_content_type(request.content_type)
    return body


def _json(body: dict[str, Any], status: int = 200) -> HttpResponse:
    return HttpResponse(orjson.dumps(body), status=status, content_type="application/json")


def _with_headers(response: HttpResponse, headers: dict[str, str]) -> HttpResponse:
    for name, value in headers.items():
        response[name] = value
    return response
