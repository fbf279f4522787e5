"""Who is calling: the JobNimbus instance and API key from the request headers, and the tenant id.

Decisions:
- The handshake (`initialize`, `ping`, `server/discover`) and `tools/list` are answered without a key, so
  inspectors and `claude mcp add` can connect and show the catalog; `tools/call` needs a key. A key that is
  sent but malformed is refused on every method, so a typo shows up at connect time, not at the first call.
- A server-held key (JOBNIMBUS_API_KEY_<NAME>) is NOT used for callers who bring none: anyone who can reach
  the server would otherwise act with the account's key. Callers always bring their own; the server-held
  key is for the poller and warming only.
- The tenant id is `cacheops.api.tenant_id(key)` (an HMAC), so the cache is partitioned by key and the key
  itself is never stored or logged.
- Managed mode (the `managed` app): a bearer token this server issued (`jnmcp_at.…`, never a key's shape) names a
  user, a client and scopes, and runs with the JobNimbus key staff mapped to that user; its instance is the key's.
  While managed mode is on, a request with no credentials at all gets the MCP authorization challenge (401 with the
  resource metadata URL) on every method, so connector-style clients start their OAuth flow at connect time; a
  request with a key header is the header mode's, unchanged. A write tool needs the `jobnimbus:write` scope.
- The client address (for the per-address throttle budgets) is REMOTE_ADDR. Behind reverse proxies,
  TRUSTED_PROXY_COUNT (default 0: none; the webhook receiver reads it too) says how many of them append to
  X-Forwarded-For, and the address is the entry the outermost trusted proxy appended: the one that many places
  from the right. The entries left of it are whatever the client sent and are never trusted. A header with fewer
  entries than that (a request that did not come through the proxies) or an entry that is not an address counts
  under REMOTE_ADDR. IPv6 addresses count by their /64, the block one subscriber gets; a REMOTE_ADDR that is not
  an address counts as `unknown`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import cast

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from cacheops.api import tenant_id
from cacheops.http import client_address
from managed import resource as managed_resource
from managed import resource_id, tokens
from managed.audit import write_recorder
from mcp_tools.catalog.base import ToolContext
from mcp_tools.protocol.errors import BadRequest, Forbidden, Unauthorized
from mcp_tools.protocol.tools import catalog

INSTANCE_HEADER = "X-JobNimbus-Instance"
KEY_HEADER = "X-JobNimbus-Api-Key"
_KEY_FORMAT = re.compile(r"[A-Za-z0-9_-]{16,256}")
_AUTH_REALM = 'Bearer realm="jobnimbus-mcp"'


@dataclass(frozen=True)
class Caller:
    """The headers' claims, checked for form (instance None when not yet decidable, key None when absent), and
    the address the request came from."""

    instance: str | None
    api_key: str | None = field(repr=False)
    address: str = "unknown"
    principal: managed_resource.Principal | None = None  # managed mode: the token's user, client, scopes and key
    resource_metadata: str = ""  # managed mode: where the resource metadata is, for the WWW-Authenticate challenges

    @cached_property
    def tenant(self) -> str | None:
        """Return the tenant id, or None for a caller without a key (an HMAC: worked out once per request)."""
        return tenant_id(self.api_key) if self.api_key is not None else None

    def tool_context(self, request_id: str, tool: str = "") -> ToolContext:
        """Return the context a call of `tool` runs in; raise 401/400 when the key or instance is missing, 403 when
        a managed token lacks the scope `tool` needs."""
        if self.api_key is None:
            raise missing_key()
        audit = None
        if self.principal is not None:
            if catalog().is_write_tool(tool) and not self.principal.allows(managed_resource.WRITE_SCOPE):
                raise insufficient_scope(tool, self.resource_metadata)
            audit = write_recorder(self.principal)
        return ToolContext(
            instance=require_instance(self.instance),
            api_key=self.api_key,
            tenant=self.tenant or "",
            request_id=request_id,
            audit=audit,
            held_key=self.principal is not None,
        )


def resolve_caller(request: HttpRequest) -> Caller:
    """Return the caller named by the request's headers; raise 400 for an unknown instance, 401 for a bad key or
    token (and, in managed mode, for no credentials at all)."""
    address = client_address(request)
    bearer = _bearer(request.headers.get("Authorization", ""))
    if tokens.is_access_token(bearer):
        return _managed_caller(request, bearer, address)
    caller = Caller(instance=_instance(request), api_key=_api_key(request), address=address)
    if caller.api_key is None and settings.MANAGED_MODE:
        raise sign_in_required(resource_id.metadata_url(request))
    return caller


def _managed_caller(request: HttpRequest, token: str, address: str) -> Caller:
    if not settings.MANAGED_MODE:
        raise Unauthorized(
            "This is an OAuth access token, but managed mode is off on this server: send your JobNimbus API key in "
            f"the {KEY_HEADER} header instead",
            headers={"WWW-Authenticate": f'{_AUTH_REALM}, error="invalid_token"'},
        )
    metadata = resource_id.metadata_url(request)
    try:
        principal = managed_resource.authenticate(token, resource_id.for_request(request))
    except managed_resource.TokenRefused as refused:
        raise _token_refusal(refused, metadata) from None
    named = request.headers.get(INSTANCE_HEADER, "").strip()
    if named and named != principal.key.instance:
        raise BadRequest(
            f"{INSTANCE_HEADER} names {named[:64]!r}, but your access token acts on JobNimbus instance "
            f"{principal.key.instance!r}: leave the header out",
            data={"header": INSTANCE_HEADER},
        )
    return Caller(
        instance=principal.key.instance,
        api_key=principal.key.secret,
        address=address,
        principal=principal,
        resource_metadata=metadata,
    )


def oauth_challenge(metadata_url: str, **params: str) -> str:
    """Return the WWW-Authenticate of managed mode's refusals (RFC 6750, with RFC 9728's resource_metadata): the one
    place its parameters are written; quotes in values become apostrophes."""
    fields = {"resource_metadata": metadata_url, "scope": " ".join(managed_resource.ALL_SCOPES), **params}
    return "Bearer " + ", ".join(f"{name}={_quoted(value)}" for name, value in fields.items())


def _quoted(value: str) -> str:
    return '"' + value.replace('"', "'") + '"'


def sign_in_required(metadata_url: str) -> Unauthorized:
    """Return the 401 for a request without credentials while managed mode is on: the challenge OAuth clients follow."""
    return Unauthorized(
        "Sign in: this server uses OAuth (connect by URL and your client opens the sign-in page), or send "
        f"your JobNimbus API key in the {KEY_HEADER} header",
        headers={"WWW-Authenticate": oauth_challenge(metadata_url)},
    )


def _token_refusal(refused: managed_resource.TokenRefused, metadata_url: str) -> Unauthorized | Forbidden:
    if refused.error == "no_key":
        return Forbidden(refused.reason)
    challenge = oauth_challenge(metadata_url, error="invalid_token", error_description=refused.reason)
    return Unauthorized(refused.reason, headers={"WWW-Authenticate": challenge})


def insufficient_scope(tool: str, metadata_url: str) -> Forbidden:
    """Return the 403 for a write tool called with a token that may only read (RFC 6750 `insufficient_scope`)."""
    return Forbidden(
        f"{tool} changes JobNimbus records: it needs the {managed_resource.WRITE_SCOPE} scope, and this access token "
        f"has only {managed_resource.READ_SCOPE}. Reconnect and allow changes to use it.",
        headers={"WWW-Authenticate": oauth_challenge(metadata_url, error="insufficient_scope")},
        data={"scope": managed_resource.WRITE_SCOPE},
    )


class CallerAuthentication(BaseAuthentication):
    """DRF authentication of the MCP views: `request.auth` is the `Caller` the headers name; there is no Django
    user (`request.user` is anonymous). Raises 400 for an unknown instance and 401 for a malformed key; a caller
    without a key is still a caller (it may shake hands and list tools)."""

    def authenticate(self, request: Request) -> tuple[AnonymousUser, Caller]:
        return AnonymousUser(), resolve_caller(request._request)


def request_caller(request: Request) -> Caller:
    """Return the caller `CallerAuthentication` put on a DRF request."""
    return cast(Caller, request.auth)


def require_instance(instance: str | None) -> str:
    """Return the instance, or raise 400 when the request did not name one.

    The configured instances are never listed: they name this server's customers, and the caller is not
    authenticated yet. Whoever runs the server tells each tenant its instance name.
    """
    if instance is not None:
        return instance
    raise BadRequest(
        f"Send the {INSTANCE_HEADER} header naming your JobNimbus account (the instance name this server's "
        "operator gave you)",
        data={"header": INSTANCE_HEADER},
    )


def missing_key() -> Unauthorized:
    """Return the 401 for a call without a JobNimbus API key."""
    return Unauthorized(
        f"Send your JobNimbus API key in the {KEY_HEADER} header (or Authorization: Bearer <key>)",
        headers={"WWW-Authenticate": _AUTH_REALM},
        data={"header": KEY_HEADER},
    )


def _instance(request: HttpRequest) -> str | None:
    configured = settings.JOBNIMBUS_INSTANCES
    named = request.headers.get(INSTANCE_HEADER, "").strip()
    if not named:
        return next(iter(configured)) if len(configured) == 1 else None
    if named in configured:
        return named
    raise BadRequest(
        f"Unknown JobNimbus instance {named[:64]!r} in {INSTANCE_HEADER}: check the instance name this server's "
        "operator gave you",
        data={"header": INSTANCE_HEADER},
    )


def _api_key(request: HttpRequest) -> str | None:
    key = request.headers.get(KEY_HEADER, "").strip() or _bearer(request.headers.get("Authorization", ""))
    if not key:
        return None
    if not _KEY_FORMAT.fullmatch(key):
        raise Unauthorized(
            f"The JobNimbus API key in {KEY_HEADER} (or Authorization: Bearer) is malformed: "
            "expected 16 to 256 letters, digits, '_' or '-'",
            headers={"WWW-Authenticate": f'{_AUTH_REALM}, error="invalid_token"'},
            data={"header": KEY_HEADER},
        )
    return key


def _bearer(authorization: str) -> str:
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""
