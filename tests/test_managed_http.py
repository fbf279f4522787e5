"""Managed mode over HTTP (Django's test client): the OAuth endpoints' refusals, /mcp with this server's tokens, and
the edges between managed mode and the header mode.

Tokens come from the real flow (DCR → authorize → consent → token) where the flow is what is tested, and are minted
straight into the database (`mint`) where only /mcp's handling of a token is.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import orjson
import pytest
from cryptography.fernet import Fernet
from django.contrib.auth.models import Group, User
from django.test import Client
from django.utils import timezone
from oauth2_provider.models import (
    get_access_token_model,
    get_application_model,
    get_grant_model,
    get_refresh_token_model,
    set_token_value,
)

from cacheops.breakers import reset_breakers
from managed import tokens, vault
from managed.models import JobNimbusKey, KeyAssignment, RateLimit, WriteAudit
from mcp_tools.catalog.base import ToolContext, ToolResult, ToolSpec
from mcp_tools.throttling import FixedWindowThrottle, LeaseStore
from tests.fixtures.clock import Clock
from tests.fixtures.servers import FakeCatalog, new_api_key

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fake_catalog")]

AccessToken = get_access_token_model()
RefreshToken = get_refresh_token_model()
Application = get_application_model()
Grant = get_grant_model()

RESOURCE = "http://testserver/mcp"
METADATA_URL = "http://testserver/.well-known/oauth-protected-resource/mcp"
REDIRECT = "http://127.0.0.1:9999/cb"
READ = "jobnimbus:read"
BOTH = "jobnimbus:read jobnimbus:write"
VERSION = {"MCP-Protocol-Version": "2025-06-18"}
INIT = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}


# --- Helpers -----------------------------------------------------------------------------------------------------


def rpc(method: str, params: dict[str, Any] | None = None) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": method}
    if params is not None:
        message["params"] = params
    return orjson.dumps(message)


CALLS = {
    "initialize": rpc("initialize", INIT),
    "tools/list": rpc("tools/list"),
    "tools/call": rpc("tools/call", {"name": "echo", "arguments": {"text": "hi"}}),
}


def mcp(client: Client, body: bytes, token: str | None = None, **headers: str) -> Any:
    sent = {**VERSION, **headers}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    return client.post("/mcp", data=body, content_type="application/json", headers=sent)


def call(client: Client, token: str | None, tool: str, arguments: dict[str, Any], **headers: str) -> Any:
    return mcp(client, rpc("tools/call", {"name": tool, "arguments": arguments}), token, **headers)


def make_key(label: str = "full", instance: str = "demo", secret: str | None = None) -> JobNimbusKey:
    key = JobNimbusKey(instance=instance, label=label)
    vault.store(key, secret or new_api_key())
    key.save()
    return key


def make_user(name: str | None = None, key: JobNimbusKey | None = None, **fields: Any) -> User:
    user = User.objects.create_user(
        username=name or f"user-{secrets.token_hex(4)}", **fields
    )  # force_login: no password
    if key is not None:
        KeyAssignment.objects.create(user=user, key=key)
    return user


def make_app(name: str = "Test client", **fields: Any) -> Any:
    return Application.objects.create(
        name=name,
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=REDIRECT,
        **fields,
    )


def mint(user: User, app: Any, scope: str = BOTH, resource: str = RESOURCE, ttl: timedelta | None = None) -> str:
    """Store an access token as the token endpoint does (digest only) and return its string."""
    raw = tokens.access_token(None)
    token = AccessToken(
        user=user,
        application=app,
        scope=scope,
        resource=[resource],
        expires=timezone.now() + (ttl or timedelta(hours=1)),
    )
    set_token_value(token, raw)
    token.save()
    return raw


@dataclass
class Pkce:
    verifier: str
    challenge: str

    @classmethod
    def new(cls) -> Pkce:
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        return cls(verifier, challenge)


def register(client: Client, **metadata: Any) -> Any:
    body = {
        "client_name": "Claude-ish",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        **metadata,
    }
    return client.post("/oauth/register/", data=orjson.dumps(body), content_type="application/json")


def authorize_query(client_id: str, pkce: Pkce, scope: str = BOTH, **extra: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "scope": scope,
        "state": "st",
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
        "resource": RESOURCE,
        **extra,
    }


def consent(user: User, query: dict[str, str]) -> Any:
    """Sign `user` in, open the consent page for `query`, allow, and return the final response (the redirect)."""
    browser = Client()
    browser.force_login(user)
    page = browser.get("/oauth/authorize/", query)
    assert page.status_code == 200, page.content[:500]
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.content.decode()))
    assert fields, "the consent page has no form"
    fields["allow"] = "Allow"
    return browser.post("/oauth/authorize/?" + urlencode(query), fields)


def code_for(user: User, client_id: str, pkce: Pkce, scope: str = BOTH) -> str:
    answer = consent(user, authorize_query(client_id, pkce, scope))
    assert answer.status_code == 302, answer.content[:500]
    return parse_qs(urlsplit(answer["Location"]).query)["code"][0]


def exchange(client_id: str, code: str, verifier: str | None, **extra: str) -> Any:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "client_id": client_id}
    if verifier is not None:
        form["code_verifier"] = verifier
    form.setdefault("resource", RESOURCE)
    form.update(extra)
    return Client().post("/oauth/token/", form)


@dataclass
class Flow:
    """A user with a key, a client registered by DCR, and a token pair from the real flow."""

    user: User
    client_id: str
    access: str
    refresh: str
    scope: str


def full_flow(scope: str = BOTH, user: User | None = None) -> Flow:
    web = Client()
    client_id = register(web).json()["client_id"]
    owner = user or make_user(key=make_key(label=f"key-{secrets.token_hex(3)}"))
    pkce = Pkce.new()
    answer = exchange(client_id, code_for(owner, client_id, pkce, scope), pkce.verifier)
    assert answer.status_code == 200, answer.content
    body = answer.json()
    return Flow(owner, client_id, body["access_token"], body["refresh_token"], body["scope"])


def issued() -> int:
    """Return how many access tokens were issued to users (DCR also stores one, its registration access token)."""
    return AccessToken.objects.filter(user__isnull=False).count()


def oauth_error(response: Any) -> str:
    assert response["Content-Type"] == "application/json"
    return str(response.json()["error"])


@pytest.fixture
def managed(settings: Any) -> Any:
    settings.MANAGED_MODE = True
    settings.MANAGED_KEY_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    # Every test here registers and signs in from 127.0.0.1; the per-address budgets have their own tests.
    settings.MANAGED_DOOR_RATES = {"registration": "1000000/min", "sign_in": "1000000/min"}
    return settings


# --- Off: no OAuth surface -----------------------------------------------------------------------------------------

MANAGED_ENDPOINTS = [
    ("get", "/oauth/authorize/"),
    ("post", "/oauth/token/"),
    ("post", "/oauth/revoke/"),
    ("post", "/oauth/register/"),
    ("get", "/oauth/register/some-client/"),
    ("get", "/.well-known/oauth-protected-resource"),
    ("get", "/.well-known/oauth-protected-resource/mcp"),
    ("get", "/.well-known/oauth-authorization-server"),
    ("get", "/.well-known/oauth-authorization-server/issuer"),
    ("get", "/accounts/login/"),
    ("post", "/accounts/logout/"),
]


@pytest.mark.parametrize(("method", "path"), MANAGED_ENDPOINTS, ids=[p for _, p in MANAGED_ENDPOINTS])
def test_every_managed_endpoint_is_404_while_managed_mode_is_off(
    client: Client, settings: Any, method: str, path: str
) -> None:
    settings.MANAGED_MODE = False
    assert getattr(client, method)(path).status_code == 404
    settings.MANAGED_MODE = True
    settings.MANAGED_KEY_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    assert getattr(client, method)(path).status_code != 404  # the route exists: it is the switch that hides it


def test_token_of_this_server_is_refused_saying_managed_mode_is_off(
    client: Client, settings: Any, fake_catalog: FakeCatalog
) -> None:
    settings.MANAGED_MODE = False
    for method, body in CALLS.items():
        response = mcp(client, body, tokens.access_token(None))
        assert response.status_code == 401, method
        assert "managed mode is off" in response.json()["error"]["message"]
        assert 'error="invalid_token"' in response["WWW-Authenticate"]
    assert fake_catalog.calls == []


# --- /mcp in managed mode: the challenge, and the header mode unchanged ----------------------------------------


@pytest.mark.parametrize("method", list(CALLS))
def test_no_credentials_in_managed_mode_get_the_oauth_challenge(client: Client, managed: Any, method: str) -> None:
    response = mcp(client, CALLS[method])
    assert response.status_code == 401
    challenge = response["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert f'resource_metadata="{METADATA_URL}"' in challenge
    assert f'scope="{BOTH}"' in challenge
    metadata = client.get(urlsplit(METADATA_URL).path).json()  # the URL the challenge names answers
    assert metadata["resource"] == RESOURCE
    assert metadata["authorization_servers"] == ["http://testserver"]
    assert metadata["scopes_supported"] == BOTH.split()


def test_no_credentials_with_managed_mode_off_still_shake_hands(client: Client, settings: Any) -> None:
    settings.MANAGED_MODE = False
    assert mcp(client, CALLS["initialize"]).status_code == 200
    assert mcp(client, CALLS["tools/list"]).status_code == 200


def _comparable(response: Any) -> tuple[int, Any, str | None]:
    body = response.json()
    return response.status_code, body, response.get("WWW-Authenticate")


def test_header_mode_answers_exactly_as_before_when_managed_mode_is_on(
    client: Client, settings: Any, fake_catalog: FakeCatalog
) -> None:
    key = new_api_key()
    settings.MANAGED_MODE = False
    before = {method: _comparable(mcp(client, body, **{"X-JobNimbus-Api-Key": key})) for method, body in CALLS.items()}
    settings.MANAGED_MODE = True
    settings.MANAGED_KEY_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    after = {method: _comparable(mcp(client, body, **{"X-JobNimbus-Api-Key": key})) for method, body in CALLS.items()}
    assert after == before
    assert before["tools/call"][1]["result"]["structuredContent"] == {"echo": "hi", "instance": "demo"}
    assert [ctx.api_key for ctx, _, _ in fake_catalog.calls] == [key, key]
    assert all(ctx.audit is None for ctx, _, _ in fake_catalog.calls)  # the header mode writes no audit trail
    bearer = mcp(client, CALLS["tools/call"], key)  # the key as a bearer is header mode too
    assert bearer.status_code == 200
    assert fake_catalog.calls[-1][0].api_key == key


# --- Dynamic Client Registration refusals ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "described"),
    [
        (b'{"client_name": "x", ', "valid JSON"),
        (b'["a list"]', "JSON object"),
        (orjson.dumps({"redirect_uris": REDIRECT}), "redirect_uris must be an array"),
        (orjson.dumps({"redirect_uris": [5]}), "redirect_uri must be a string"),
        (orjson.dumps({"redirect_uris": [REDIRECT], "grant_types": "authorization_code"}), "grant_types must be"),
        (orjson.dumps({"redirect_uris": [REDIRECT], "grant_types": ["refresh_token"]}), "other than refresh_token"),
        (orjson.dumps({"redirect_uris": [REDIRECT], "grant_types": ["magic"]}), "Unsupported grant_type"),
        (orjson.dumps({"redirect_uris": [], "grant_types": ["authorization_code"]}), "redirect_uris is required"),
        (orjson.dumps({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "carrier-pigeon"}), "auth"),
        (orjson.dumps({"redirect_uris": [REDIRECT], "client_name": 5}), "client_name must be a string"),
        (orjson.dumps({"redirect_uris": [REDIRECT], "client_name": {"a": 1}}), "client_name must be a string"),
        (orjson.dumps({"redirect_uris": ["javascript:alert(1)"]}), "redirect_uris"),
        (orjson.dumps({"redirect_uris": [REDIRECT], "grant_types": ["client_credentials"],
                       "token_endpoint_auth_method": "client_secret_post"}), "Unsupported grant_type"),
        (orjson.dumps({"redirect_uris": [REDIRECT], "grant_types": ["password"]}), "Unsupported grant_type"),
        (orjson.dumps({"redirect_uris": [REDIRECT], "grant_types": ["implicit"]}), "Unsupported grant_type"),
    ],
    ids=["truncated", "list", "uris-string", "uri-int", "grants-string", "only-refresh", "unknown-grant", "no-uri",
         "auth-method", "name-int", "name-object", "uri-scheme", "client-credentials", "password", "implicit"],
)  # fmt: skip
def test_malformed_registration_is_400_with_a_precise_error_and_no_client(
    client: Client, managed: Any, body: bytes, described: str
) -> None:
    response = client.post("/oauth/register/", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client_metadata"
    assert described in response.json()["error_description"]
    assert Application.objects.count() == 0


def test_registration_of_a_public_client_answers_its_id_and_no_secret(client: Client, managed: Any) -> None:
    response = register(client)
    assert response.status_code == 201
    body = response.json()
    app = Application.objects.get()
    assert body["client_id"] == app.client_id
    assert "client_secret" not in body
    assert app.client_type == Application.CLIENT_PUBLIC
    assert app.redirect_uris == REDIRECT


# --- The token endpoint's refusals -------------------------------------------------------------------------------


@pytest.fixture
def pending(managed: Any) -> tuple[str, str, Pkce]:
    """A registered client and an authorization code for it (with its PKCE pair), nothing exchanged yet."""
    client_id = register(Client()).json()["client_id"]
    user = make_user(key=make_key())
    pkce = Pkce.new()
    return client_id, code_for(user, client_id, pkce), pkce


def test_client_credentials_grant_issues_no_token(client: Client, managed: Any) -> None:
    # Even for a client registered for it (by staff, or before registration refused it): a token for no user.
    app = Application(
        name="Machine",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        client_secret="machine-secret-0123456789",
        hash_client_secret=False,
    )
    app.save()
    form = {
        "grant_type": "client_credentials",
        "client_id": app.client_id,
        "client_secret": "machine-secret-0123456789",
    }
    response = client.post("/oauth/token/", {**form, "resource": RESOURCE})
    assert response.status_code == 400
    assert oauth_error(response) == "unauthorized_client"
    assert AccessToken.objects.count() == 0


def test_a_token_without_a_user_never_acts_on_mcp(client: Client, managed: Any, fake_catalog: FakeCatalog) -> None:
    raw = tokens.access_token(None)
    token = AccessToken(user=None, application=make_app(), scope=BOTH, resource=[RESOURCE])
    token.expires = timezone.now() + timedelta(hours=1)
    set_token_value(token, raw)
    token.save()
    assert call(client, raw, "echo", {"text": "x"}).status_code == 401
    assert fake_catalog.calls == []


def test_code_exchange_issues_tokens_bound_to_mcp(pending: tuple[str, str, Pkce]) -> None:
    client_id, code, pkce = pending
    response = exchange(client_id, code, pkce.verifier)
    assert response.status_code == 200
    body = response.json()
    assert body["access_token"].startswith(tokens.ACCESS_PREFIX)
    assert body["refresh_token"].startswith(tokens.REFRESH_PREFIX)
    stored = AccessToken.objects.get(user__isnull=False)
    assert stored.resource == [RESOURCE]
    assert stored.token == ""  # stored as a digest only
    assert set(stored.scope.split()) == set(BOTH.split())


def test_missing_code_verifier_is_refused_without_a_token(pending: tuple[str, str, Pkce]) -> None:
    client_id, code, _ = pending
    response = exchange(client_id, code, None)
    assert response.status_code == 400
    assert oauth_error(response) == "invalid_request"
    assert "verifier" in response.json().get("error_description", "").lower()
    assert issued() == 0
    assert RefreshToken.objects.count() == 0


def test_wrong_code_verifier_is_invalid_grant_without_a_token(pending: tuple[str, str, Pkce]) -> None:
    client_id, code, _ = pending
    response = exchange(client_id, code, Pkce.new().verifier)
    assert response.status_code == 400
    assert oauth_error(response) == "invalid_grant"
    assert issued() == 0


def test_plain_pkce_is_refused_before_the_consent_page_and_where_the_code_would_be_issued(managed: Any) -> None:
    client_id = register(Client()).json()["client_id"]
    user = make_user(key=make_key())
    verifier = secrets.token_urlsafe(48)
    query = authorize_query(client_id, Pkce(verifier, verifier), code_challenge_method="plain")
    browser = Client()
    browser.force_login(user)
    page = browser.get("/oauth/authorize/", query)
    assert page.status_code == 400  # the person is never asked to allow what cannot be granted
    assert b"S256" in page.content
    # A consent form posted without the page (a client skipping it) is refused where the code would be issued.
    answer = browser.post("/oauth/authorize/?" + urlencode(query), {**query, "allow": "Allow"})
    assert answer.status_code == 302
    assert answer["Location"].startswith(REDIRECT)
    returned = parse_qs(urlsplit(answer["Location"]).query)
    assert returned["error"] == ["invalid_request"]
    assert "S256" in returned["error_description"][0]
    assert "code" not in returned
    assert Grant.objects.count() == 0
    assert issued() == 0


def test_foreign_resource_is_invalid_target_without_a_token(pending: tuple[str, str, Pkce]) -> None:
    client_id, code, pkce = pending
    response = exchange(client_id, code, pkce.verifier, resource="https://elsewhere.example/mcp")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"  # it went out as text/html before
    assert response["Cache-Control"] == "no-store"
    assert oauth_error(response) == "invalid_target"
    assert "elsewhere.example" in response.json()["error_description"]
    assert issued() == 0


def test_foreign_resource_is_refused_at_authorize(managed: Any) -> None:
    client_id = register(Client()).json()["client_id"]
    browser = Client()
    browser.force_login(make_user(key=make_key()))
    query = authorize_query(client_id, Pkce.new(), resource="https://elsewhere.example/mcp")
    page = browser.get("/oauth/authorize/", query)
    assert page.status_code == 400
    assert page.content.decode().startswith("invalid_target")
    assert Grant.objects.count() == 0


def test_reused_authorization_code_is_invalid_grant_and_issues_nothing_more(pending: tuple[str, str, Pkce]) -> None:
    client_id, code, pkce = pending
    assert exchange(client_id, code, pkce.verifier).status_code == 200
    again = exchange(client_id, code, pkce.verifier)
    assert again.status_code == 400
    assert oauth_error(again) == "invalid_grant"
    assert issued() == 1
    assert RefreshToken.objects.count() == 1


def test_refresh_token_rotates_and_the_old_one_is_refused(managed: Any, fake_catalog: FakeCatalog) -> None:
    flow = full_flow()
    form = {"grant_type": "refresh_token", "refresh_token": flow.refresh, "client_id": flow.client_id}
    renewed = Client().post("/oauth/token/", form)
    assert renewed.status_code == 200
    pair = renewed.json()
    assert pair["refresh_token"] != flow.refresh
    assert pair["access_token"] != flow.access
    assert call(Client(), pair["access_token"], "echo", {"text": "x"}).status_code == 200
    replayed = Client().post("/oauth/token/", form)
    assert replayed.status_code == 400
    assert oauth_error(replayed) == "invalid_grant"
    # Reuse protection: replaying a used refresh token revokes its whole family, the pair it was swapped for too.
    assert call(Client(), pair["access_token"], "echo", {"text": "x"}).status_code == 401
    newer = Client().post("/oauth/token/", {**form, "refresh_token": pair["refresh_token"]})
    assert oauth_error(newer) == "invalid_grant"


def test_revoked_access_token_gets_401_on_the_next_call(managed: Any, fake_catalog: FakeCatalog) -> None:
    flow = full_flow()
    web = Client()
    assert call(web, flow.access, "echo", {"text": "x"}).status_code == 200
    revoked = web.post("/oauth/revoke/", {"token": flow.access, "client_id": flow.client_id})
    assert revoked.status_code == 200
    refused = call(web, flow.access, "echo", {"text": "x"})
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused["WWW-Authenticate"]
    assert f'resource_metadata="{METADATA_URL}"' in refused["WWW-Authenticate"]
    assert len(fake_catalog.calls) == 1


# --- /mcp with a managed token -----------------------------------------------------------------------------------


def test_token_from_the_real_flow_runs_with_the_mapped_key(managed: Any, fake_catalog: FakeCatalog) -> None:
    secret = new_api_key()
    key = make_key(label="sales", instance="demo", secret=secret)
    flow = full_flow(user=make_user(key=key))
    response = call(Client(), flow.access, "echo", {"text": "hi"})
    assert response.status_code == 200
    assert response.json()["result"]["structuredContent"] == {"echo": "hi", "instance": "demo"}
    ctx = fake_catalog.calls[0][0]
    assert ctx.api_key == secret
    assert ctx.instance == "demo"


def test_user_without_a_key_gets_403_naming_the_fix(client: Client, managed: Any, fake_catalog: FakeCatalog) -> None:
    user = make_user("nokey")
    token = mint(user, make_app())
    response = call(client, token, "echo", {"text": "x"})
    assert response.status_code == 403
    message = response.json()["error"]["message"]
    assert "nokey" in message
    assert "ask the server's staff to map" in message
    assert fake_catalog.calls == []


def test_user_whose_key_is_disabled_gets_403(client: Client, managed: Any, fake_catalog: FakeCatalog) -> None:
    key = make_key()
    token = mint(make_user(key=key), make_app())
    JobNimbusKey.objects.filter(pk=key.pk).update(enabled=False)
    response = call(client, token, "echo", {"text": "x"})
    assert response.status_code == 403
    assert "disabled" in response.json()["error"]["message"]
    assert fake_catalog.calls == []


def test_instance_header_naming_another_instance_is_400(
    client: Client, managed: Any, fake_catalog: FakeCatalog
) -> None:
    token = mint(make_user(key=make_key(instance="demo")), make_app())
    response = call(client, token, "echo", {"text": "x"}, **{"X-JobNimbus-Instance": "other"})
    assert response.status_code == 400
    assert "'demo'" in response.json()["error"]["message"]
    assert fake_catalog.calls == []
    same = call(client, token, "echo", {"text": "x"}, **{"X-JobNimbus-Instance": "demo"})
    assert same.status_code == 200


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("other-resource", "not issued for this resource"),
        ("user-disabled", "disabled"),
        ("deleted", "unknown or was revoked"),
        ("unknown", "unknown or was revoked"),
    ],
)
def test_unusable_token_is_401_saying_why(
    client: Client, managed: Any, fake_catalog: FakeCatalog, change: str, reason: str
) -> None:
    user = make_user(key=make_key())
    app = make_app()
    token = mint(user, app, resource="https://elsewhere.example/mcp" if change == "other-resource" else RESOURCE)
    if change == "user-disabled":
        User.objects.filter(pk=user.pk).update(is_active=False)
    elif change == "deleted":
        AccessToken.objects.all().delete()
    elif change == "unknown":
        token = tokens.access_token(None)
    response = call(client, token, "echo", {"text": "x"})
    assert response.status_code == 401
    assert reason in response.json()["error"]["message"]
    assert 'error="invalid_token"' in response["WWW-Authenticate"]
    assert fake_catalog.calls == []


def test_token_stops_working_when_it_expires(client: Client, managed: Any, frozen_clock: Any) -> None:
    token = mint(make_user(key=make_key()), make_app(), ttl=timedelta(hours=1))
    frozen_clock.shift(timedelta(minutes=59))
    assert call(client, token, "echo", {"text": "x"}).status_code == 200
    frozen_clock.shift(timedelta(minutes=2))
    response = call(client, token, "echo", {"text": "x"})
    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]


def test_a_changed_mapping_takes_effect_on_the_next_call(
    client: Client, managed: Any, fake_catalog: FakeCatalog
) -> None:
    first, second = new_api_key(), new_api_key()
    user = make_user(key=make_key(label="first", secret=first))
    token = mint(user, make_app())
    assert call(client, token, "echo", {"text": "x"}).status_code == 200
    KeyAssignment.objects.filter(user=user).update(key=make_key(label="second", secret=second))
    assert call(client, token, "echo", {"text": "x"}).status_code == 200
    assert [ctx.api_key for ctx, _, _ in fake_catalog.calls] == [first, second]


def test_dcr_registration_access_token_is_refused_on_mcp_and_never_forwarded(
    client: Client, managed: Any, fake_catalog: FakeCatalog
) -> None:
    # RFC 7592's registration access token is stored as an access token without a user: it must never act on /mcp
    # as a user, nor be taken for a JobNimbus key and sent to JobNimbus (its prefix is not a key's shape).
    registration = register(client).json()["registration_access_token"]
    assert registration.startswith(tokens.SECRET_PREFIX)
    assert not tokens.is_access_token(registration)
    stored = AccessToken.objects.get()
    assert stored.user is None
    answer = call(client, registration, "echo", {"text": "x"})
    assert answer.status_code == 401
    assert "malformed" in answer.json()["error"]["message"]
    assert fake_catalog.calls == []


def test_consent_page_is_the_managed_one(managed: Any) -> None:
    client_id = register(Client(), client_name="Named Client").json()["client_id"]
    browser = Client()
    browser.force_login(make_user("consenting", key=make_key()))
    page = browser.get("/oauth/authorize/", authorize_query(client_id, Pkce.new())).content.decode()
    assert 'id="signed-in-user">consenting<' in page
    assert 'id="redirect-host">127.0.0.1:9999<' in page


def _record_tool(fake_catalog: FakeCatalog) -> list[dict[str, Any]]:
    """Add `update_contact`, a write tool answering the record it changed; return the list of its runs."""
    runs: list[dict[str, Any]] = []

    def handler(spec: ToolSpec, ctx: ToolContext, arguments: dict[str, Any]) -> ToolResult:
        runs.append(arguments)
        record = {"jnid": arguments["jnid"], "display_name": arguments["text"]}
        return ToolResult(structured={"record": record}, text="updated")

    fake_catalog.specs.append(
        ToolSpec(
            name="update_contact",
            title="Update contact",
            description="A write test tool.",
            input_schema={
                "type": "object",
                "properties": {"jnid": {"type": "string"}, "text": {"type": "string"}},
                "required": ["jnid", "text"],
            },
            output_schema=None,
            annotations={"readOnlyHint": False},
            handler=handler,
            policy=None,
        )
    )
    return runs


def test_read_only_token_calling_a_write_tool_is_403_insufficient_scope(
    client: Client, managed: Any, fake_catalog: FakeCatalog
) -> None:
    runs = _record_tool(fake_catalog)
    token = mint(make_user(key=make_key()), make_app(), scope=READ)
    response = call(client, token, "update_contact", {"jnid": "c1", "text": "New name"})
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response["WWW-Authenticate"]
    assert "jobnimbus:write" in response.json()["error"]["message"]
    assert runs == []
    assert fake_catalog.calls == []
    assert WriteAudit.objects.count() == 0
    assert call(client, token, "echo", {"text": "x"}).status_code == 200  # reads still work with it


def test_write_with_a_write_token_leaves_one_audit_row_without_arguments(
    client: Client, managed: Any, fake_catalog: FakeCatalog
) -> None:
    runs = _record_tool(fake_catalog)
    user = make_user("auditor", key=make_key(label="Sales reps", instance="demo"))
    app = make_app(name="Claude Desktop")
    token = mint(user, app)
    secret_text = "Jane Confidential Doe"
    response = call(client, token, "update_contact", {"jnid": "contact-42", "text": secret_text})
    assert response.status_code == 200
    assert response.json()["result"]["isError"] is False
    assert len(runs) == 1
    assert call(client, token, "echo", {"text": secret_text}).status_code == 200  # a read is not audited
    audit = WriteAudit.objects.get()
    assert (audit.user_id, audit.username) == (user.pk, "auditor")
    assert (audit.application_id, audit.client_name) == (app.pk, "Claude Desktop")
    assert (audit.instance, audit.key_label) == ("demo", "Sales reps")
    assert (audit.tool, audit.record, audit.succeeded) == ("update_contact", "contact-42", True)
    stored = " ".join(str(getattr(audit, f.attname)) for f in WriteAudit._meta.concrete_fields)
    assert secret_text not in stored


def test_failed_write_is_audited_as_failed(client: Client, managed: Any, fake_catalog: FakeCatalog) -> None:
    token = mint(make_user(key=make_key()), make_app())
    response = call(client, token, "boom", {"text": "x", "jnid": "rec-9"})
    assert response.json()["result"]["isError"] is True
    audit = WriteAudit.objects.get()
    assert (audit.tool, audit.record, audit.succeeded) == ("boom", "rec-9", False)


def test_calls_are_counted_on_the_connection(client: Client, managed: Any) -> None:
    from managed.models import Connection

    user = make_user(key=make_key())
    app = make_app()
    token = mint(user, app)
    assert call(client, token, "echo", {"text": "x"}).status_code == 200
    connection = Connection.objects.get()
    assert (connection.user_id, connection.application_id) == (user.pk, app.pk)
    assert connection.calls >= 1


# --- Throttles: a managed caller spends its user's and its client's budgets, not the key's ----------------------


@pytest.fixture
def throttled(managed: Any, frozen_clock: Clock) -> Iterator[Any]:
    # Frozen: the budgets' fixed windows cannot roll over between the calls a test counts.
    reset_breakers()  # the throttles stand aside while the process's Redis breaker is not closed
    FixedWindowThrottle._leases, saved = LeaseStore(), FixedWindowThrottle._leases
    try:
        yield managed
    finally:
        FixedWindowThrottle._leases = saved
        reset_breakers()


def _unique_id() -> int:
    # Budgets are counted in Redis by user and client id; ids no other run (or test database) uses this window.
    return secrets.randbelow(2**30) + 2**30


def throttled_user(key: JobNimbusKey) -> User:
    user = User.objects.create_user(id=_unique_id(), username=f"t-{secrets.token_hex(4)}")
    KeyAssignment.objects.create(user=user, key=key)
    return user


def throttled_app() -> Any:
    return make_app(id=_unique_id())


def _statuses(client: Client, token: str, count: int) -> list[int]:
    return [call(client, token, "echo", {"text": "x"}).status_code for _ in range(count)]


@pytest.mark.redis
def test_users_sharing_a_key_have_their_own_budgets(client: Client, throttled: Any) -> None:
    # The key's own budget (1/min) would refuse the second call of anyone if managed callers were charged to it.
    throttled.MCP = {**throttled.MCP, "THROTTLE_RATE": "1/min", "THROTTLE_USER_RATE": "2/min"}
    shared = make_key()
    app = throttled_app()
    first, second = mint(throttled_user(shared), app), mint(throttled_user(shared), app)
    assert _statuses(client, first, 2) == [200, 200]
    refused = call(client, first, "echo", {"text": "x"})
    assert refused.status_code == 429
    assert refused.json()["error"]["data"]["throttle"] == "user"
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert _statuses(client, second, 2) == [200, 200]


@pytest.mark.redis
def test_a_client_budget_is_shared_by_its_users(client: Client, throttled: Any) -> None:
    throttled.MCP = {**throttled.MCP, "THROTTLE_USER_RATE": "100/min", "THROTTLE_CLIENT_RATE": "3/min"}
    key = make_key()
    app, other_app = throttled_app(), throttled_app()
    first, second = mint(throttled_user(key), app), mint(throttled_user(key), app)
    assert _statuses(client, first, 2) + _statuses(client, second, 1) == [200, 200, 200]
    refused = call(client, second, "echo", {"text": "x"})
    assert refused.status_code == 429
    assert refused.json()["error"]["data"]["throttle"] == "client"
    assert _statuses(client, mint(throttled_user(key), other_app), 1) == [200]


@pytest.mark.redis
def test_a_rate_limit_row_overrides_the_default_budget(client: Client, throttled: Any) -> None:
    throttled.MCP = {**throttled.MCP, "THROTTLE_USER_RATE": "100/min", "THROTTLE_CLIENT_RATE": "100/min"}
    key = make_key()
    app = throttled_app()
    limited, unlimited = throttled_user(key), throttled_user(key)
    RateLimit.objects.create(user=limited, rate="1/min")
    limited_token, other_token = mint(limited, app), mint(unlimited, app)
    assert _statuses(client, limited_token, 2) == [200, 429]
    assert _statuses(client, other_token, 3) == [200, 200, 200]


@pytest.mark.redis
def test_a_client_rate_limit_row_overrides_the_client_default(client: Client, throttled: Any) -> None:
    throttled.MCP = {**throttled.MCP, "THROTTLE_USER_RATE": "100/min", "THROTTLE_CLIENT_RATE": "100/min"}
    key = make_key()
    app = throttled_app()
    RateLimit.objects.create(application=app, rate="2/min")
    token = mint(throttled_user(key), app)
    refused = _statuses(client, token, 3)
    assert refused == [200, 200, 429]
    response = call(client, mint(throttled_user(key), app), "echo", {"text": "x"})
    assert response.json()["error"]["data"]["throttle"] == "client"


def test_group_mapping_is_used_over_http(client: Client, managed: Any, fake_catalog: FakeCatalog) -> None:
    secret = new_api_key()
    group = Group.objects.create(name="sales")
    KeyAssignment.objects.create(group=group, key=make_key(label="sales", secret=secret))
    user = make_user()
    user.groups.add(group)
    assert call(client, mint(user, make_app()), "echo", {"text": "x"}).status_code == 200
    assert fake_catalog.calls[0][0].api_key == secret


def test_a_refused_server_held_key_sends_the_person_to_staff_not_to_a_header(
    client: Client, managed: Any, fake_catalog: FakeCatalog
) -> None:
    from mcp_tools.jobnimbus.errors import AuthError

    def refused(spec: ToolSpec, ctx: ToolContext, arguments: dict[str, Any]) -> ToolResult:
        raise AuthError("JobNimbus answered 401", status=401)

    fake_catalog.specs.append(
        ToolSpec(
            name="refused_read",
            title="Refused read",
            description="A read JobNimbus refuses the key of.",
            input_schema={"type": "object", "properties": {}},
            output_schema=None,
            annotations={"readOnlyHint": True},
            handler=refused,
        )
    )
    token = mint(make_user(key=make_key()), make_app())
    result = call(client, token, "refused_read", {}).json()["result"]
    assert result["isError"] is True
    text = result["content"][0]["text"]
    assert "staff mapped to your user (HTTP 401)" in text
    assert "X-JobNimbus-Api-Key" not in text


def _address() -> str:
    # Budgets live in Redis per address and window: an address no other run of this test uses.
    return f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"


def test_registrations_beyond_an_addresss_budget_get_429_and_create_nothing(throttled: Any) -> None:
    throttled.MANAGED_DOOR_RATES = {**throttled.MANAGED_DOOR_RATES, "registration": "2/hour"}
    crowd, other = Client(REMOTE_ADDR=_address()), Client(REMOTE_ADDR=_address())
    assert [register(crowd).status_code for _ in range(2)] == [201, 201]
    refused = register(crowd)
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 3600
    assert refused.json()["error_description"].startswith("Too many client registrations from your address")
    assert Application.objects.count() == 2
    assert register(other).status_code == 201  # another address is not refused for the first one's registrations


def test_sign_in_attempts_beyond_an_addresss_budget_get_429_without_checking_the_password(throttled: Any) -> None:
    throttled.MANAGED_DOOR_RATES = {**throttled.MANAGED_DOOR_RATES, "sign_in": "3/min"}
    user = make_user("guessed", key=make_key())
    user.set_password("the-right-one-123")
    user.save()
    guesser, colleague = Client(REMOTE_ADDR=_address()), Client(REMOTE_ADDR=_address())
    wrong = {"username": "guessed", "password": "wrong"}
    assert [guesser.post("/accounts/login/", wrong).status_code for _ in range(3)] == [200, 200, 200]  # form again
    refused = guesser.post("/accounts/login/", {"username": "guessed", "password": "the-right-one-123"})
    assert refused.status_code == 429
    assert refused["Retry-After"]
    assert "_auth_user_id" not in guesser.session  # refused before the password was looked at
    signed_in = colleague.post("/accounts/login/", {"username": "guessed", "password": "the-right-one-123"})
    assert signed_in.status_code == 302


@pytest.mark.redis
def test_a_managed_caller_is_not_charged_to_its_address(throttled: Any) -> None:
    # A hosted connector calls for all its users from one address: two people there must not share a budget.
    throttled.MCP = {**throttled.MCP, "THROTTLE_ADDRESS_RATE": "1/min"}
    connector = Client(REMOTE_ADDR=_address())
    key = make_key()
    first, second = mint(throttled_user(key), throttled_app()), mint(throttled_user(key), throttled_app())
    assert _statuses(connector, first, 2) + _statuses(connector, second, 2) == [200, 200, 200, 200]


def test_the_admin_sign_in_is_under_the_same_address_budget(throttled: Any) -> None:
    throttled.MANAGED_DOOR_RATES = {**throttled.MANAGED_DOOR_RATES, "sign_in": "2/min"}
    guesser = Client(REMOTE_ADDR=_address())
    wrong = {"username": "admin", "password": "wrong", "next": "/admin/"}
    assert [guesser.post("/admin/login/", wrong).status_code for _ in range(2)] == [200, 200]
    refused = guesser.post("/admin/login/", wrong)
    assert refused.status_code == 429
    assert refused["Retry-After"]
    assert guesser.get("/admin/login/").status_code == 200  # the page itself still shows


def test_a_client_cannot_skip_the_consent_page_with_approval_prompt(managed: Any) -> None:
    flow = full_flow()
    browser = Client()
    browser.force_login(flow.user)
    page = browser.get("/oauth/authorize/", authorize_query(flow.client_id, Pkce.new(), approval_prompt="auto"))
    assert page.status_code == 200  # the consent page again, not a redirect carrying a code
    assert 'name="allow"' in page.content.decode()


@pytest.mark.parametrize(
    ("drop", "said"),
    [("code_challenge_method", "must be S256, not 'plain'"), ("code_challenge", "PKCE is required")],
)
def test_an_authorization_request_without_s256_pkce_is_refused_before_the_consent_page(
    managed: Any, drop: str, said: str
) -> None:
    client_id = register(Client()).json()["client_id"]
    browser = Client()
    browser.force_login(make_user(key=make_key()))
    query = authorize_query(client_id, Pkce.new())
    del query[drop]
    page = browser.get("/oauth/authorize/", query)
    assert page.status_code == 400
    assert said in page.content.decode()
    assert Grant.objects.count() == 0


def test_the_sign_in_page_answers_a_signed_in_person_sent_back_to_it(managed: Any) -> None:
    browser = Client()
    browser.force_login(make_user(key=make_key()))
    page = browser.get("/accounts/login/", {"next": "/accounts/login/"})
    assert page.status_code == 200  # the form (sign in as someone else), not a redirect loop's 500


def test_a_key_that_no_longer_decrypts_is_a_403_for_staff_to_fix(
    client: Client, managed: Any, fake_catalog: FakeCatalog
) -> None:
    token = mint(make_user(key=make_key()), make_app())
    managed.MANAGED_KEY_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # the key that encrypted it is gone
    answer = call(client, token, "echo", {"text": "x"})
    assert answer.status_code == 403
    assert "ask the server's staff" in answer.json()["error"]["message"]
    assert fake_catalog.calls == []
