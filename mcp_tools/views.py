"""HTTP face of the MCP server: `POST /mcp` (JSON-RPC, both protocol eras) and the plain-JSON endpoints.

DRF views with only what they use (`cacheops.rest.LeanAPIView`), running DRF's steps in the order the protocol
needs. `initial` checks the transport (Origin, then POST), reads the body through the view's parser (size, content
type, JSON) and checks the message; then, for a request, DRF's own steps: authentication names the caller
(`request.auth`, `tenancy.CallerAuthentication`) and `check_throttles` spends its budgets (`throttling`). `post`
answers. Every failure on the way reaches the site's exception handler (`jobnimbus_site.api_errors`), which asks the
view's `error_response` for its shape: JSON-RPC errors on /mcp, `{"success": false, "error": ...}` on the compat
routes. A view parses and answers; the protocol package decides, the catalog runs tools.
"""

from __future__ import annotations

import logging
from typing import Any, NoReturn

from django.http import HttpResponse, HttpResponseBase
from mcp_types import INVALID_REQUEST, JSONRPCRequest, RequestId
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle

from cacheops.rest import LeanAPIView
from jobnimbus_site.logging import request_id_var
from mcp_tools import throttling
from mcp_tools.catalog.base import ToolResult, UnknownToolError
from mcp_tools.protocol import dispatch, messages, tools
from mcp_tools.protocol.errors import (
    BadRequest,
    Era,
    HttpProblem,
    NotFound,
    RpcError,
    error_body,
    internal_error,
    rpc_status,
)
from mcp_tools.protocol.http import (
    JsonParser,
    JsonRpcParser,
    OptionalBodyParser,
    check_origin,
    require_post,
)
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
from mcp_tools.tenancy import CallerAuthentication, request_caller

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


class McpView(LeanAPIView):
    """What the MCP endpoints share: transport checks, the caller, the budgets, DRF's order around them."""

    authentication_classes = (CallerAuthentication,)
    tool_call = False  # a tool call is checked against the key's binding and charged to its instance

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        http = request._request
        check_origin(http.headers.get("Origin"))
        require_post(http.method)
        if self.take_message(request):
            super().initial(request, *args, **kwargs)

    def take_message(self, request: Request) -> bool:
        """Read and check the message, before the caller is looked at: a malformed message is refused first.

        Return whether it needs an answer (and so a caller and its budgets); a notification does not.
        """
        raise NotImplementedError

    def get_throttles(self) -> list[BaseThrottle]:
        return throttling.throttles_for(request_caller(self.request), tool_call=self.tool_call)

    def check_throttles(self, request: Request) -> None:
        # DRF asks every throttle; here the first refusal answers, so a budget is charged only once every budget
        # before it admitted the request (mcp_tools.throttling).
        refused = throttling.first_refusal(self.get_throttles(), request, self)
        if refused is not None:
            self.refused_by = refused
            self.throttled(request, refused.wait())

    def throttled(self, request: Request, wait: float) -> NoReturn:
        raise throttling.refusal(self.refused_by, wait)

    def error_response(self, exc: Exception) -> HttpResponseBase:
        """Answer a failure in this endpoint's shape (called by the site's exception handler)."""
        raise NotImplementedError


class McpEndpoint(McpView):
    """`POST /mcp`: one Streamable HTTP POST; a request gets JSON, a notification or response gets 202."""

    parser_classes = (JsonRpcParser,)
    rpc: JSONRPCRequest | None = None
    era: Era = "legacy"

    def take_message(self, request: Request) -> bool:
        self.rpc = messages.classify(request.data).request
        if self.rpc is None:
            return False
        params = self.rpc.params or {}
        header = request._request.headers.get(VERSION_HEADER)
        self.era = "modern" if is_modern(self.rpc.method, params, header) else "legacy"
        self.negotiated = _negotiate(self.rpc.method, params, request._request.headers, self.era)
        self.tool_call = self.rpc.method == "tools/call"
        return True

    def post(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if self.rpc is None:
            return _acknowledge(request._request.headers.get(VERSION_HEADER))
        rpc = self.rpc
        caller = request_caller(request)
        exchange = dispatch.Exchange(rpc.method, rpc.params or {}, self.negotiated, caller, request_id_var.get())
        return self.rendered({"jsonrpc": "2.0", "id": rpc.id, "result": dispatch.handle(exchange)})

    def error_response(self, exc: Exception) -> HttpResponseBase:
        rpc_id = self.rpc.id if self.rpc is not None else None
        if isinstance(exc, APIException):
            exc = _as_problem(exc)
        if isinstance(exc, HttpProblem):
            return _rpc_problem(exc, rpc_id)
        if isinstance(exc, RpcError):
            return _rpc_error(rpc_id, exc, self.era)
        # Reading and answering should refuse every bad input precisely; should something still slip through, the
        # caller gets a JSON-RPC error rather than Django's HTML 500, and the log has the traceback.
        if self.rpc is None:
            logger.error("MCP request could not be read", exc_info=exc)
        else:
            logger.error("MCP %s failed unexpectedly", self.rpc.method, exc_info=exc)
        return _rpc_error(rpc_id, internal_error(request_id_var.get()), self.era)


def _negotiate(method: str, params: dict[str, Any], headers: Any, era: Era) -> Negotiated:
    if era == "modern":
        return check_modern_envelope(method, params, headers)
    negotiated = check_legacy_header(headers.get(VERSION_HEADER))
    check_method_header(method, headers)
    check_name_header(method, params, headers, required=False)
    return negotiated


def _acknowledge(version_header: str | None) -> HttpResponseBase:
    if version_header is not None and version_header not in SUPPORTED_VERSIONS:
        return _rpc_error(None, unsupported(version_header), "modern")
    return HttpResponse(status=202)


def _rpc_error(rpc_id: RequestId | None, error: RpcError, era: Era) -> Response:
    return Response(error_body(rpc_id, error.code, error.message, error.data), status=rpc_status(error.code, era))


def _rpc_problem(problem: HttpProblem, rpc_id: RequestId | None) -> Response:
    data = {"status": problem.status, **problem.data}
    return Response(
        error_body(rpc_id, INVALID_REQUEST, problem.message, data), status=problem.status, headers=problem.headers
    )


def _as_problem(exc: APIException) -> HttpProblem:
    """Return a DRF refusal (none is expected: the views use none of DRF's refusing parts) as an `HttpProblem`."""
    problem = HttpProblem(str(exc.detail))
    problem.status = exc.status_code
    return problem


class CompatView(McpView):
    """A plain-JSON compatibility endpoint: every failure is `{"success": false, "error": ...}` with its status."""

    def error_response(self, exc: Exception) -> HttpResponseBase:
        if isinstance(exc, APIException):
            exc = _as_problem(exc)
        if isinstance(exc, HttpProblem):
            body = {"success": False, "error": exc.message, **exc.data}
            return Response(body, status=exc.status, headers=exc.headers)
        logger.error("%s failed unexpectedly", self.request._request.path, exc_info=exc)
        message = f"Internal error (request id {request_id_var.get()}); the server log has the details"
        return Response({"success": False, "error": message}, status=500)


class CompatToolsList(CompatView):
    """`POST /mcp/tools/list`, answered in the plain shape: `{"success": true, "data": {"tools": [...]}}`."""

    parser_classes = (OptionalBodyParser,)

    def take_message(self, request: Request) -> bool:
        request.data  # noqa: B018 - reading it runs the checks of size and (for a body) content type
        return True

    def post(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        return self.rendered({"success": True, "data": {"tools": tools.all_tools_json()}})


class CompatToolsCall(CompatView):
    """`POST /mcp/tools/call {"name", "arguments"}`, answered with `success`/`data` or `success`/`error`."""

    parser_classes = (JsonParser,)
    tool_call = True

    def take_message(self, request: Request) -> bool:
        self.name, self.arguments = _call_of(request.data)
        return True

    def post(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        ctx = request_caller(request).tool_context(request_id_var.get(), self.name)
        _require_tool(self.name)
        body, headers = _compat_result(tools.run_tool(ctx, self.name, self.arguments))
        return self.rendered(body, headers=headers)


def _call_of(payload: Any) -> tuple[str, dict[str, Any]]:
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


def _compat_result(result: ToolResult) -> tuple[dict[str, Any], dict[str, str]]:
    # A tool-level failure (bad argument, JobNimbus refusal) is a successful HTTP exchange with success false,
    # as in the plan's shape; HTTP errors are kept for requests this endpoint could not take at all.
    body = {"success": False, "error": result.text} if result.is_error else {"success": True, "data": result.structured}
    cache = tools.cache_meta(result)
    headers = {"X-Cache": _X_CACHE.get(str(cache.get("status")), str(cache.get("status")).upper())}
    if cache.get("age_s") is not None:
        headers["Age"] = str(int(cache["age_s"]))
    return body, headers
