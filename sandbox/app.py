"""The sandbox WSGI app: JobNimbus's API under /api1 and the control API under /__sandbox/.

Choices where what is known of JobNimbus is silent or unsure:
- Lists return active records only unless the filter has a clause on `is_active` (then that clause decides, so
  `{"must":[{"term":{"is_active":false}}]}` lists deleted records). GET by id returns deleted records too.
- A missing required field or an unknown workflow/status answers 400 with `{"message": ...}` naming it (JobNimbus
  answers 500 on some creates). Unknown paths answer 404 with the plain text `Not Found`; a record that does not exist
  (or is outside the key's access profile) answers 404 with `{"message": ...}`; a method a path lacks answers 405.
- Bad or missing key: 401 `{"message": "Unauthorized"}`. Latency and faults apply to /api1 only; control endpoints
  never sleep. Request counts (GET /__sandbox/stats) include every /api1 request, also refused and faulted ones.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote

import orjson

from sandbox.access import InvalidKey, Keys, Profile, bearer_key
from sandbox.faults import Fault, Faults, InvalidFault, parse_fault
from sandbox.query import QueryError, Record, compile_filter, mentions_field, parse_fields, parse_int
from sandbox.resources import Resource, resolve
from sandbox.store import InvalidRecord, Store
from sandbox.webhooks import InvalidWebhookConfig, Webhooks

logger = logging.getLogger(__name__)
API = "/api1"
CONTROL = "/__sandbox"
MAX_BODY = 10 * 1024 * 1024
SIGNING_KEY = b"sandbox-download-signing"
REASONS = {
    200: "OK",
    302: "Found",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


@dataclass
class Response:
    """A status, a body and headers."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


class BadRequest(ValueError):
    """A request body or parameter the sandbox refuses with 400."""


def json_response(data: Any, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
    """Return a JSON response."""
    return Response(status, orjson.dumps(data), [("Content-Type", "application/json"), *(headers or [])])


def message(status: int, text: str, headers: list[tuple[str, str]] | None = None) -> Response:
    """Return `{"message": text}` with a status."""
    return json_response({"message": text}, status, headers)


NOT_FOUND = Response(404, b"Not Found", [("Content-Type", "text/plain")])


@dataclass
class Request:
    """What a handler needs from the WSGI environ."""

    method: str
    path: str
    query: dict[str, list[str]]
    environ: dict[str, Any]

    def param(self, name: str) -> str | None:
        """Return the last value of a query parameter."""
        values = self.query.get(name)
        return values[-1] if values else None

    def json(self) -> Any:
        """Return the parsed JSON body (None when empty); raise BadRequest when it is not JSON."""
        try:
            length = int(self.environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise BadRequest("bad Content-Length") from None
        if length > MAX_BODY:
            raise BadRequest("body too large")
        raw = self.environ["wsgi.input"].read(length) if length > 0 else b""
        if not raw.strip():
            return None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"body is not valid JSON: {exc}") from None

    def object(self) -> Record:
        """Return the JSON body, which must be an object."""
        body = self.json()
        if not isinstance(body, dict):
            raise BadRequest("body must be a JSON object")
        return body

    def host_url(self) -> str:
        """Return scheme://host:port this request came to."""
        host = self.environ.get("HTTP_HOST") or f"{self.environ['SERVER_NAME']}:{self.environ['SERVER_PORT']}"
        return f"{self.environ.get('wsgi.url_scheme', 'http')}://{host}"


class Sandbox:
    """The WSGI callable and everything it serves from."""

    def __init__(self, store: Store, keys: Keys, webhooks: Webhooks, latency_ms: int = 0, jitter_ms: int = 0) -> None:
        self.store = store
        self.keys = keys
        self.webhooks = webhooks
        self.faults = Faults()
        self.latency = (latency_ms, jitter_ms)
        self.jitter = random.Random(0)
        self.counts: Counter[str] = Counter()
        self.counts_lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Answer one request."""
        request = Request(
            environ["REQUEST_METHOD"].upper(),
            environ.get("PATH_INFO") or "/",
            parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True),
            environ,
        )
        response = self.route(request)
        status = f"{response.status} {REASONS.get(response.status, 'Status')}"
        start_response(status, [*response.headers, ("Content-Length", str(len(response.body)))])
        return [response.body]

    def route(self, request: Request) -> Response:
        """Send a request to the API, the control API, or 404."""
        try:
            if request.path == API or request.path.startswith(API + "/"):
                return self.api(request)
            if request.path.startswith(CONTROL + "/"):
                return self.control(request)
        except BadRequest as exc:
            return message(400, str(exc))
        except Exception as exc:  # the one place a sandbox bug becomes a 500, not a dropped socket
            logger.exception("sandbox error on %s %s", request.method, request.path)
            return message(500, f"sandbox error: {type(exc).__name__}")
        return NOT_FOUND

    # /api1

    def api(self, request: Request) -> Response:
        """Count, delay, fault, authenticate, then serve one API request."""
        rest = request.path[len(API) :] or "/"
        found = resolve(rest)
        self.count(f"{request.method} {API}{found[2] if found else rest}")
        fault = self.faults.pick(request.method, request.path, bearer_key(request.environ.get("HTTP_AUTHORIZATION")))
        self.delay()
        if fault is not None:
            faulted = self.apply_fault(fault)
            if faulted is not None:
                return faulted
        profile = self.keys.profile(request.environ.get("HTTP_AUTHORIZATION"))
        if profile is None:
            return message(401, "Unauthorized: send Authorization: Bearer <api key>")
        if rest in ACCOUNT_PATHS:
            return self.account(request, rest)
        if found is None:
            return NOT_FOUND
        return self.resource(request, profile, found[0], found[1], rest)

    def count(self, key: str) -> None:
        with self.counts_lock:
            self.counts[key] += 1

    def delay(self) -> None:
        """Sleep the configured latency ± jitter."""
        latency, jitter = self.latency
        if latency or jitter:
            time.sleep(max(0.0, latency + self.jitter.uniform(-jitter, jitter)) / 1000)

    def apply_fault(self, fault: Fault) -> Response | None:
        """Do what a fault says; return its response, or None to answer normally."""
        if fault.latency_ms:
            time.sleep(fault.latency_ms / 1000)
        if fault.hang:
            self.faults.hold(fault)
            if self.faults.stopping.is_set():
                return message(503, "sandbox stopping")
        if fault.status is None:
            return None
        headers = [("Retry-After", str(fault.retry_after))] if fault.retry_after is not None else []
        return message(fault.status, f"Injected fault: {REASONS.get(fault.status, 'error')}", headers)

    def account(self, request: Request, rest: str) -> Response:
        """Serve /account/users and /account/settings."""
        if request.method != "GET":
            return message(405, "Method Not Allowed")
        with self.store.lock:
            if rest == "/account/users":
                return json_response({"users": self.store.users, "date_updated": self.store.users_date_updated})
            return json_response(self.store.settings)

    def resource(self, request: Request, profile: Profile, res: Resource, jnid: str | None, rest: str) -> Response:
        """Dispatch by method on a resource path."""
        visible = profile.visibility(self.store)
        if jnid is None and request.method == "GET":
            return self.list_records(request, res, visible)
        if jnid is None and request.method == "POST" and res.writable and rest == res.path:
            return self.create(request, res, profile)
        if jnid is not None and request.method == "GET":
            return self.one(request, res, jnid, visible)
        if jnid is not None and request.method == "PUT" and res.updatable:
            return self.update(request, res, jnid, visible)
        return message(405, f"{request.method} is not supported on {API}{rest}")

    def list_records(self, request: Request, res: Resource, visible: Callable[[Record], bool]) -> Response:
        """Answer a list request with its envelope."""
        try:
            spec = orjson.loads(request.param("filter") or "{}")
        except orjson.JSONDecodeError as exc:
            return message(400, f"filter is not valid JSON: {exc}")
        try:
            predicate = compile_filter(spec)
            window = (
                parse_int("from", request.param("from"), 0),
                parse_int("size", request.param("size"), 1000, 10_000),
            )
            order = (request.param("sort_field") or "date_created", request.param("sort_direction") or "desc")
            if not mentions_field(spec, "is_active"):
                matches = predicate
                predicate = lambda r: r.get("is_active") is not False and matches(r)  # noqa: E731
            count, page = self.store.query(
                res.name, predicate, order, window, parse_fields(request.param("fields")), visible
            )
        except QueryError as exc:
            return message(400, str(exc))
        return json_response({"count": count, res.envelope: page})

    def one(self, request: Request, res: Resource, jnid: str, visible: Callable[[Record], bool]) -> Response:
        """Answer GET by id: the bare record, or the files' 302 to a signed download URL."""
        if not res.get_one and res.name != "files":
            return NOT_FOUND
        record = self.store.get(res.name, jnid)
        if record is None or not visible(record):
            return message(404, f"{res.type} {jnid} not found")
        if res.name == "files":
            return Response(302, b"", [("Location", self.signed_download_url(request, jnid))])
        return json_response(record)

    def create(self, request: Request, res: Resource, profile: Profile) -> Response:
        """Create a record and notify webhooks once it is visible."""
        try:
            body = request.object()
            if profile.sales_rep and res.name in ("contacts", "jobs"):
                # A restricted key's new contact/job is its own rep's, so the key can still see what it made.
                body.setdefault("sales_rep", profile.sales_rep)
            record = self.store.create(res, body, int(time.time()))
        except InvalidRecord as exc:
            return message(400, str(exc))
        self.webhooks.notify("created", record)
        return json_response(record)

    def update(self, request: Request, res: Resource, jnid: str, visible: Callable[[Record], bool]) -> Response:
        """Apply a partial update (`is_active: false` deletes) and notify webhooks."""
        current = self.store.get(res.name, jnid)
        if current is None or not visible(current):
            return message(404, f"{res.type} {jnid} not found")
        try:
            outcome = self.store.update(res, jnid, request.object(), int(time.time()))
        except InvalidRecord as exc:
            return message(400, str(exc))
        if outcome is None:
            return message(404, f"{res.type} {jnid} not found")
        event, record = outcome
        self.webhooks.notify(event, record)
        return json_response(record)

    def signed_download_url(self, request: Request, jnid: str) -> str:
        """Return a signed, expiring URL for a file's bytes."""
        expires = int(time.time()) + 900
        return f"{request.host_url()}{CONTROL}/download/{quote(jnid)}?Expires={expires}&Signature={sign(jnid, expires)}"

    # /__sandbox

    def control(self, request: Request) -> Response:
        """Serve the control API (no auth, no latency)."""
        handler = CONTROL_ROUTES.get((request.method, request.path))
        if handler is not None:
            return handler(self, request)
        if request.method == "GET" and request.path.startswith(CONTROL + "/download/"):
            return self.download(request, request.path.rsplit("/", 1)[-1])
        return message(404, f"no control endpoint {request.method} {request.path}")

    def health(self, _request: Request) -> Response:
        return json_response({"status": "ok"})

    def stats(self, _request: Request) -> Response:
        with self.counts_lock:
            return json_response({"total": sum(self.counts.values()), "requests": dict(self.counts)})

    def reset(self, request: Request) -> Response:
        """Zero the counts, clear faults and webhook deliveries; re-seed data when asked."""
        body = request.json() or {}
        if not isinstance(body, dict) or not isinstance(body.get("data", False), bool):
            raise BadRequest('reset body must be {"data": true|false}')
        with self.counts_lock:
            self.counts.clear()
        self.faults.clear()
        self.webhooks.reset()
        if body.get("data"):
            self.store.reset()
        return json_response({"status": "ok", "data_reset": bool(body.get("data"))})

    def show_faults(self, _request: Request) -> Response:
        return json_response({"fault": self.faults.show()})

    def set_faults(self, request: Request) -> Response:
        try:
            fault = parse_fault(request.json() or {})
        except InvalidFault as exc:
            return message(400, str(exc))
        self.faults.set(fault)
        return json_response({"fault": fault.public()})

    def clear_faults(self, _request: Request) -> Response:
        self.faults.clear()
        return json_response({"fault": None})

    def list_keys(self, _request: Request) -> Response:
        return json_response({"keys": self.keys.listing()})

    def add_key(self, request: Request) -> Response:
        body = request.object()
        try:
            profile = self.keys.add(body.get("key"), body.get("profile", "all"), self.store.user_ids())
        except InvalidKey as exc:
            return message(400, str(exc))
        return json_response({"key": body["key"], "profile": profile.describe()})

    def show_webhooks(self, _request: Request) -> Response:
        return json_response(self.webhooks.show())

    def set_webhooks(self, request: Request) -> Response:
        try:
            return json_response(self.webhooks.configure(request.json()))
        except InvalidWebhookConfig as exc:
            return message(400, str(exc))

    def download(self, request: Request, jnid: str) -> Response:
        """Serve placeholder bytes for a file when the signature is valid."""
        expires = request.param("Expires") or ""
        if (
            not expires.isdigit()
            or int(expires) < time.time()
            or not hmac.compare_digest(sign(jnid, int(expires)), request.param("Signature") or "")
        ):
            return message(403, "signature invalid or expired")
        record = self.store.get("files", jnid)
        if record is None:
            return message(404, f"file {jnid} not found")
        body = f"sandbox file {record.get('filename')}\n".encode()
        return Response(200, body, [("Content-Type", record.get("content_type") or "application/octet-stream")])


def sign(jnid: str, expires: int) -> str:
    """Return the download signature for a file id and expiry."""
    return hmac.new(SIGNING_KEY, f"{jnid}:{expires}".encode(), hashlib.sha256).hexdigest()


ACCOUNT_PATHS = ("/account/users", "/account/settings")
CONTROL_ROUTES: dict[tuple[str, str], Callable[[Sandbox, Request], Response]] = {
    ("GET", f"{CONTROL}/health"): Sandbox.health,
    ("GET", f"{CONTROL}/stats"): Sandbox.stats,
    ("POST", f"{CONTROL}/reset"): Sandbox.reset,
    ("GET", f"{CONTROL}/faults"): Sandbox.show_faults,
    ("POST", f"{CONTROL}/faults"): Sandbox.set_faults,
    ("DELETE", f"{CONTROL}/faults"): Sandbox.clear_faults,
    ("GET", f"{CONTROL}/keys"): Sandbox.list_keys,
    ("POST", f"{CONTROL}/keys"): Sandbox.add_key,
    ("GET", f"{CONTROL}/webhooks"): Sandbox.show_webhooks,
    ("POST", f"{CONTROL}/webhooks"): Sandbox.set_webhooks,
}
