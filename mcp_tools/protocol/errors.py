"""Failures on the MCP face, and the one place that turns them into JSON-RPC bodies and HTTP statuses.

Two kinds: `RpcError` is a JSON-RPC protocol error (answered as an `error` object), `HttpProblem` is an
HTTP-level refusal (Origin, size, content type, auth, throttling) decided before or beside JSON-RPC.
"""

from __future__ import annotations

from typing import Any, Literal

from mcp_types import (
    HEADER_MISMATCH,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    UNSUPPORTED_PROTOCOL_VERSION,
    ErrorData,
    JSONRPCError,
    RequestId,
)

Era = Literal["legacy", "modern"]

# 2026-07-28 maps every protocol error to an HTTP status (404 for an unknown method is also what
# makes a dual-era client fall back). Before it, only an unreadable message was an HTTP failure.
_MODERN_STATUS = {
    PARSE_ERROR: 400,
    INVALID_REQUEST: 400,
    INVALID_PARAMS: 400,
    HEADER_MISMATCH: 400,
    UNSUPPORTED_PROTOCOL_VERSION: 400,
    METHOD_NOT_FOUND: 404,
}
_LEGACY_STATUS = {PARSE_ERROR: 400, INVALID_REQUEST: 400, HEADER_MISMATCH: 400, UNSUPPORTED_PROTOCOL_VERSION: 400}


class RpcError(Exception):
    """A JSON-RPC error to answer instead of a result."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


def parse_error() -> RpcError:
    """Return the error for a body that is not JSON."""
    return RpcError(PARSE_ERROR, "Parse error: the body is not valid JSON")


def invalid_request(message: str) -> RpcError:
    """Return the error for a message that is not a valid JSON-RPC request."""
    return RpcError(INVALID_REQUEST, f"Invalid request: {message}")


def invalid_params(message: str) -> RpcError:
    """Return the error for a request whose params do not fit the method."""
    return RpcError(INVALID_PARAMS, f"Invalid params: {message}")


def method_not_found(method: str) -> RpcError:
    """Return the error for a method this server does not serve (in this era)."""
    return RpcError(METHOD_NOT_FOUND, f"Method not found: {method}")


def internal_error(request_id: str) -> RpcError:
    """Return the generic error for an unexpected failure; the details are only in the log."""
    return RpcError(INTERNAL_ERROR, f"Internal error (request id {request_id}); the server log has the details")


def error_body(request_id: RequestId | None, code: int, message: str, data: Any = None) -> dict[str, Any]:
    """Return a JSON-RPC error response. Every JSON-RPC error this server sends is built here."""
    envelope = JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(code=code, message=message, data=data))
    body = envelope.model_dump(mode="json", exclude_none=True)
    body["id"] = request_id  # JSON-RPC wants `"id": null` on the wire when the id is unknown
    return body


def rpc_status(code: int, era: Era) -> int:
    """Return the HTTP status that carries a JSON-RPC error of `code` in `era`."""
    table = _MODERN_STATUS if era == "modern" else _LEGACY_STATUS
    return table.get(code, 200)


class HttpProblem(Exception):
    """An HTTP-level refusal. Subclasses fix the status; `headers` go on the response."""

    status = 400

    def __init__(self, message: str, *, headers: dict[str, str] | None = None, data: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.headers = headers or {}
        self.data = data or {}


class BadRequest(HttpProblem):
    status = 400


class Unauthorized(HttpProblem):
    status = 401


class ForbiddenOrigin(HttpProblem):
    status = 403


class Forbidden(HttpProblem):
    """The caller is known but may not do this (a managed token without the scope, or without a mapped key)."""

    status = 403


class NotFound(HttpProblem):
    status = 404


class MethodNotAllowed(HttpProblem):
    status = 405


class PayloadTooLarge(HttpProblem):
    status = 413


class UnsupportedMediaType(HttpProblem):
    status = 415


class Throttled(HttpProblem):
    status = 429
