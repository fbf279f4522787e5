"""Decode one POSTed body into a JSON-RPC request, notification or client response."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from mcp_types import JSONRPCNotification, JSONRPCRequest, RequestId
from pydantic import ValidationError

from mcp_tools.protocol.errors import invalid_params, invalid_request, parse_error

M = TypeVar("M", JSONRPCRequest, JSONRPCNotification)


@dataclass(frozen=True)
class Incoming:
    """A decoded message. `request` is None for notifications and client responses (answered 202)."""

    request: JSONRPCRequest | None


def decode(body: bytes) -> Incoming:
    """Return the message in `body`, or raise `RpcError` (parse error, batch, malformed envelope)."""
    return classify(parse(body))


def parse(body: bytes) -> Any:
    """Return the JSON value in `body` (orjson), or raise the JSON-RPC parse error."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise parse_error() from exc


def classify(payload: Any) -> Incoming:
    """Return the message a parsed body holds, or raise `RpcError` (batch, malformed envelope)."""
    if isinstance(payload, list):
        raise invalid_request("batches (JSON arrays) are not supported; send one JSON-RPC message per POST")
    if not isinstance(payload, dict):
        raise invalid_request("the body must be one JSON-RPC object")
    return _classify(payload)


def request_id_of(payload: Any) -> RequestId | None:
    """Return the id of a request-shaped payload when it is a valid id, else None (for error replies)."""
    if not isinstance(payload, dict):
        return None
    value = payload.get("id")
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    return None


def _classify(payload: dict[str, Any]) -> Incoming:
    if payload.get("jsonrpc") != "2.0":
        raise invalid_request('"jsonrpc" must be "2.0"')
    if "method" not in payload:
        if "id" in payload and ("result" in payload or "error" in payload):
            return Incoming(request=None)  # a client's answer to a server request; nothing waits for it here
        raise invalid_request('"method" is missing')
    if not isinstance(payload["method"], str):
        raise invalid_request('"method" must be a string')
    if "params" in payload and payload["params"] is not None and not isinstance(payload["params"], dict):
        raise invalid_params("params must be an object")
    if "id" not in payload:
        _validate(JSONRPCNotification, payload)
        return Incoming(request=None)
    if request_id_of(payload) is None:
        raise invalid_request('"id" must be a string or an integer')
    return Incoming(request=_validate(JSONRPCRequest, payload))


def _validate(model: type[M], payload: dict[str, Any]) -> M:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise invalid_request(exc.errors()[0]["msg"]) from exc
