"""The JobNimbus API client: one object per API key, normalised answers, typed errors.

    client = JobNimbusClient(api_key)
    page = client.list("jobs", size=20, filter=must(term("status_name", "Lead")))
    page.count, page.records          # same shape for activities ("activity") and files ("files")

Transport (pool, timeouts, retries, budget, stats) is `transport.Transport`; error mapping is `failures`;
which path each resource lives at is `resources`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import requests
from django.conf import settings

from mcp_tools.jobnimbus.config import ClientConfig
from mcp_tools.jobnimbus.errors import MalformedKeyError, ValidationError
from mcp_tools.jobnimbus.failures import Call, unexpected_error
from mcp_tools.jobnimbus.filters import to_query_param
from mcp_tools.jobnimbus.resources import ACCOUNT_ENDPOINTS, Resource, envelope_keys, get_resource
from mcp_tools.jobnimbus.transport import Clock, Transport

# JobNimbus keys are 16 lowercase alphanumerics in every sample; accept the wider alphabet the API documentation allows.
# Checking here also keeps a key with a newline out of the header, where requests would echo it in its error.
_API_KEY_RE = re.compile(r"^[A-Za-z0-9_-]{16,256}$")
SortDirection = Literal["asc", "desc"]
# Named once here: inside the class, `list` is the method, so annotations there use this alias.
Records = list[dict[str, Any]]


@dataclass(frozen=True)
class Page:
    """One page of a list: `count` is the total number of matches, `records` this page's records."""

    count: int
    records: Records


class JobNimbusClient:
    """Talk to one JobNimbus account with one API key. Cheap to create: the HTTP pool is per process."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        config: ClientConfig | Mapping[str, Any] | None = None,
        session: requests.Session | None = None,
        clock: Clock | None = None,
    ) -> None:
        if not isinstance(api_key, str) or not _API_KEY_RE.match(api_key):
            raise MalformedKeyError(
                "The JobNimbus API key is malformed (expected 16-256 letters, digits, '_' or '-'): "
                "check the key in X-JobNimbus-Api-Key"
            )
        self._base_url = (base_url or settings.JOBNIMBUS_BASE_URL).rstrip("/")
        resolved = config if isinstance(config, ClientConfig) else ClientConfig.load(config)
        self._transport = Transport(api_key, resolved, session, clock)

    def __repr__(self) -> str:
        return f"<JobNimbusClient {self._base_url}>"

    def list(
        self,
        resource: str,
        *,
        size: int | None = None,
        from_: int | None = None,
        sort_field: str | None = None,
        sort_direction: SortDirection | None = None,
        fields: Sequence[str] | str | None = None,
        filter: Mapping[str, Any] | None = None,  # JobNimbus's own parameter name
    ) -> Page:
        """Return one page of `resource`, whatever envelope JobNimbus wraps it in."""
        spec = get_resource(resource)
        params = _list_params(size, from_, sort_field, sort_direction, fields, filter)
        call = self._call("GET", spec.name, spec.path("list"), params=params)
        return _page(call, spec, self._transport.send(call))

    def get(self, resource: str, jnid: str) -> dict[str, Any]:
        """Return the record `jnid` of `resource`."""
        spec = get_resource(resource)
        call = self._call("GET", spec.name, _with_jnid(spec.path("get"), jnid), jnid=jnid)
        return _record(call, self._transport.send(call))

    def create(self, resource: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a record of `resource` and return it as JobNimbus stored it. Sent once, never retried."""
        spec = get_resource(resource)
        call = self._call("POST", spec.name, spec.path("create"), body=_body(body), root=spec.create_root)
        return _record(call, self._transport.send(call))

    def update(self, resource: str, jnid: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Change the given fields of record `jnid` and return the record. Sent once, never retried."""
        spec = get_resource(resource)
        path = _with_jnid(spec.path("update"), jnid)
        call = self._call("PUT", spec.name, path, body=_body(body), jnid=jnid)
        return _record(call, self._transport.send(call))

    def delete(self, resource: str, jnid: str) -> dict[str, Any]:
        """Delete record `jnid` the JobNimbus way (PUT is_active=false) and return the record."""
        return self.update(resource, jnid, {"is_active": False})

    def users(self) -> Records:
        """Return the account's users."""
        endpoint = ACCOUNT_ENDPOINTS["users"]
        call = self._call("GET", endpoint.name, endpoint.path)
        body = _record(call, self._transport.send(call))
        return _records(call, body.get(endpoint.list_key or ""))

    def account_settings(self) -> dict[str, Any]:
        """Return the account settings: workflows and their statuses, file/task/activity types, sources."""
        endpoint = ACCOUNT_ENDPOINTS["settings"]
        call = self._call("GET", endpoint.name, endpoint.path)
        return _record(call, self._transport.send(call))

    def _call(self, method: str, resource: str, path: str, *, root: str = "api1", **extra: Any) -> Call:
        return Call(method=method, resource=resource, url=self._root_url(root) + path, path=path, **extra)

    def _root_url(self, root: str) -> str:
        if root == "api1":
            return self._base_url
        # Payments are created under /api2 on the same host: swap the base's last path segment (`api1`).
        return self._base_url.rsplit("/", 1)[0] + "/" + root


def _list_params(
    size: int | None,
    from_: int | None,
    sort_field: str | None,
    sort_direction: str | None,
    fields: Sequence[str] | str | None,
    filter_: Mapping[str, Any] | None,
) -> dict[str, str]:
    """Return the query string of a list call; refuse values JobNimbus would misread."""
    if size is not None and (not isinstance(size, int) or size < 1):
        raise ValidationError(f"size must be a positive whole number, got {size!r}")
    if from_ is not None and (not isinstance(from_, int) or from_ < 0):
        raise ValidationError(f"from must be a whole number >= 0, got {from_!r}")
    if sort_direction is not None and sort_direction not in ("asc", "desc"):
        raise ValidationError(f"sort_direction must be 'asc' or 'desc', got {sort_direction!r}")
    params = {
        "size": size,
        "from": from_,
        "sort_field": sort_field,
        "sort_direction": sort_direction,
        "fields": fields if isinstance(fields, str) or fields is None else ",".join(fields),
        "filter": None if filter_ is None else to_query_param(filter_),
    }
    return {name: str(value) for name, value in params.items() if value is not None and value != ""}


def _with_jnid(template: str, jnid: str) -> str:
    """Return the path with `jnid` escaped, so an id can never reach another path (`../account/settings`)."""
    if not isinstance(jnid, str) or not jnid.strip():
        raise ValidationError("jnid must be a non-empty string")
    return template.format(jnid=quote(jnid, safe=""))


def _body(body: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(body, Mapping):
        raise ValidationError(f"the record to send must be a JSON object, got {type(body).__name__}")
    return dict(body)


def _page(call: Call, spec: Resource, body: Any) -> Page:
    """Return the page in a list answer: `{"count", <envelope>: [...]}` or, tolerated, a bare list."""
    if isinstance(body, list):
        return Page(count=len(body), records=_records(call, body))
    if not isinstance(body, dict):
        raise unexpected_error(call, f"a JSON {type(body).__name__} instead of a list answer")
    # The table names the envelope; any known one is accepted, in case JobNimbus harmonises them one day.
    key = spec.envelope if spec.envelope in body else next((k for k in sorted(envelope_keys()) if k in body), None)
    if key is None:
        raise unexpected_error(call, f"a list answer without {spec.envelope!r}")
    records = _records(call, body[key])
    count = body.get("count", len(records))
    if not isinstance(count, int) or isinstance(count, bool):
        raise unexpected_error(call, f"a non-numeric count {count!r}")
    return Page(count=count, records=records)


def _records(call: Call, value: Any) -> Records:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise unexpected_error(call, "records that are not a list of objects")
    return value


def _record(call: Call, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise unexpected_error(call, f"a JSON {type(body).__name__} instead of a record")
    return body
