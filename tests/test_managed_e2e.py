"""End to end: managed mode with the official `mcp` client's OAuth support against a live server and the sandbox.

Sign-in and consent are driven over HTTP as a browser would (tests/fixtures/managed.py `Browser`); the server runs
in-process (pytest-django live_server) on the real PostgreSQL and Redis, with MANAGED_MODE on.

1. DCR: discovery from the 401, Dynamic Client Registration, authorization with PKCE, tokens, tools/list, a cached
   read, a write, refresh with rotation, revocation.
2. CIMD: the client's id is an https URL whose document the server fetches over real TLS; no registration.
3. Refusals: scope, audience, expiry, revocation, tampering; the token endpoint's resource and PKCE rules.
4. Partitioning: users on different JobNimbus keys never see each other's cached answers; users on one key share.
5. Secrets: the JobNimbus keys never reach logs, responses, Redis or the database in clear.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import anyio
import pytest
import zstandard
from django.db import connection
from django.utils import timezone
from mcp import ClientSession
from mcp.client.auth.oauth2 import PKCEParameters
from mcp_types import CallToolResult, TextContent
from oauth2_provider.models import AccessToken, Application, Grant, set_token_value

from managed.models import WriteAudit
from tests.fixtures.managed import (
    REDIRECT_URI,
    ZSTD_MAGIC,
    Browser,
    DocumentServer,
    Issued,
    ManagedSite,
    OAuthConnection,
    authorization_url,
    authorize_code,
    issue_tokens,
    register_client,
    token_request,
)
from tests.fixtures.redis import scan_keys
from tests.fixtures.sandbox import api

pytestmark = [pytest.mark.e2e, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

READ_TOOL = "search_contacts"
CACHE = "jobnimbus-mcp/cache"
HITS = {"hit_l1", "hit_l2"}


def structured(result: CallToolResult) -> dict[str, Any]:
    text = result.content[0]
    assert isinstance(text, TextContent)
    assert result.is_error is False, text.text
    assert isinstance(result.structured_content, dict)
    return result.structured_content


def cache_status(result: CallToolResult) -> str:
    assert result.meta is not None
    status: str = result.meta[CACHE]["status"]
    return status


def ids(body: dict[str, Any]) -> list[str]:
    return [record["jnid"] for record in body["records"]]


def sandbox_contacts(site: ManagedSite, key: str, **filters: str) -> list[dict[str, Any]]:
    """Return the contacts the sandbox itself gives `key` for term filters (the ground truth, no cache)."""
    must = [{"term": {name: value}} for name, value in filters.items()]
    response = api(site.sandbox, "GET", "/contacts", key=key, params={"filter": json.dumps({"must": must})})
    response.raise_for_status()
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def oauth_error(response: Any) -> str:
    """Return the OAuth error of a 400 from the token endpoint (and check nothing was issued)."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert "access_token" not in body
    error: str = body["error"]
    return error


def challenge_of(response: Any) -> str:
    header: str = response.headers.get("WWW-Authenticate", "")
    return header


def assert_invalid_token(site: ManagedSite, token: str) -> None:
    """The token is refused on /mcp with the MCP challenge: 401, resource_metadata and error="invalid_token"."""
    response = site.mcp(token, "tools/call", {"name": READ_TOOL, "arguments": {"query": "a"}})
    assert response.status_code == 401, response.text
    header = challenge_of(response)
    assert f'resource_metadata="{site.url("/.well-known/oauth-protected-resource/mcp")}"' in header
    assert 'error="invalid_token"' in header


Call = tuple[str, dict[str, Any]]


def calls(conn: OAuthConnection, wanted: list[Call]) -> list[CallToolResult]:
    """Call each tool in one session of `conn` and return the results in order."""

    async def work(session: ClientSession) -> list[CallToolResult]:
        return [await session.call_tool(name, arguments) for name, arguments in wanted]

    results: list[CallToolResult] = conn.run(work)
    return results


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Capture every log record of the process (the live server runs in it) at DEBUG."""
    caplog.set_level(logging.DEBUG)
    return caplog


# --- 5. Secrets: where a JobNimbus key must never appear -----------------------------------------------------


def redis_blobs(raw: Any) -> Iterator[tuple[bytes, bytes]]:
    """Yield (key, blob) for every key of the Redis DB and every part of its value, whatever the type; the key's
    own name is a blob too. zstd frames (values above 1 KB) are yielded decompressed."""
    for key in scan_keys(raw, "*"):
        kind = raw.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        parts: list[Any] = [key]
        if kind == "string":
            parts.append(raw.get(key))
        elif kind == "hash":
            parts += [item for pair in raw.hgetall(key).items() for item in pair]
        elif kind == "list":
            parts += raw.lrange(key, 0, -1)
        elif kind == "set":
            parts += list(raw.smembers(key))
        elif kind == "zset":
            parts += raw.zrange(key, 0, -1)
        elif kind == "stream":
            parts += [repr(entry).encode() for entry in raw.xrange(key)]
        for part in parts:
            if part is None:
                continue
            blob = part if isinstance(part, bytes) else str(part).encode()
            if blob.startswith(ZSTD_MAGIC):
                blob = zstandard.ZstdDecompressor().decompressobj().decompress(blob)
            yield key, blob


def database_rows() -> Iterator[tuple[str, str]]:
    """Yield (table, row as text) for every row of every table, every column rendered as text."""
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608 (introspected names)
            for row in cursor.fetchall():
                cells = [
                    bytes(c).decode(errors="replace") if isinstance(c, bytes | memoryview) else str(c) for c in row
                ]
                yield table, "\x1f".join(cells)


def key_leaks(site: ManagedSite, logs: pytest.LogCaptureFixture, secret_values: list[str]) -> dict[str, set[str]]:
    """Return where any of `secret_values` appears in clear: log records (message, arguments, traceback, extras),
    responses the test's clients received (status, headers, bodies), Redis (every key and value of the DB, zstd
    values decompressed) and the database (every column of every table)."""
    found: dict[str, set[str]] = {}

    def check(place: str, where: str, text: str) -> None:
        for value in secret_values:
            if value in text:
                found.setdefault(place, set()).add(where)

    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for record in logs.records:
        check("logs", record.name, formatter.format(record) + repr(vars(record)))
    check("logs", "text", logs.text)
    for index, response in enumerate(site.seen.responses):
        check("responses", f"response {index}", response)
    for key, blob in redis_blobs(site.redis):
        check("redis", key.decode(errors="replace"), blob.decode(errors="replace"))
    for table, row in database_rows():
        check("database", table, row)
    return found


def assert_no_key_leaks(site: ManagedSite, logs: pytest.LogCaptureFixture, *, tools_called: bool = True) -> None:
    """Neither JobNimbus key of the test appears anywhere `key_leaks` looks."""
    assert logs.records, "no log records were captured: the check would be vacuous"
    assert site.seen.responses, "no responses were recorded: the check would be vacuous"
    encoded = [r for r in site.seen.responses if "\ncontent-encoding: " in r.lower()]
    assert not encoded, "a response body is content-encoded: searching its raw bytes would prove nothing"
    if tools_called:
        assert scan_keys(site.redis, f"{site.namespace}*"), "the server wrote nothing to Redis: the check is vacuous"
    assert key_leaks(site, logs, [site.admin_key, site.sales_key]) == {}


# --- 1. The whole flow with Dynamic Client Registration -------------------------------------------------------


def test_dcr_flow_discovers_registers_authorizes_calls_refreshes_and_revokes(
    managed_site: ManagedSite, logs: pytest.LogCaptureFixture
) -> None:
    site = managed_site
    user = site.user("ada", key=site.store_key("Full access", site.admin_key))
    conn = OAuthConnection(site, Browser(site, "ada"))
    email = f"dcr-{secrets.token_hex(4)}@example.com"
    observed: dict[str, Any] = {}

    async def work(session: ClientSession) -> None:
        assert conn.provider is not None
        observed["tools"] = [tool.name for tool in (await session.list_tools()).tools]
        first = await session.call_tool(READ_TOOL, {"query": "Smith", "size": 5})
        second = await session.call_tool(READ_TOOL, {"query": "Smith", "size": 5})
        observed["reads"] = (first, second)
        observed["write"] = await session.call_tool(
            "create_contact", {"first_name": "Dee", "last_name": "Cee", "email": email}
        )
        observed["before_refresh"] = conn.storage.tokens
        conn.provider.context.token_expiry_time = time.time() - 1  # the client now holds an expired token
        observed["after_refresh_call"] = await session.call_tool(READ_TOOL, {"query": "Smith", "size": 5})
        observed["after_refresh"] = conn.storage.tokens

    conn.run(work)

    # Discovery → DCR → authorization (the person signed in once and consented) → tokens.
    assert conn.storage.registrations == 1
    assert conn.storage.client_info is not None
    application = Application.objects.get(client_id=conn.storage.client_info.client_id)
    assert application.registration_source == Application.RegistrationSource.DCR
    assert conn.authorizations == 1
    assert conn.browser.sign_ins == 1
    consent = conn.browser.pages[0]  # the consent page: who asks, for whom, where the answer goes, what it may do
    assert '<span id="client-name">E2E Test Client</span>' in consent
    assert '<strong id="signed-in-user">ada</strong>' in consent
    assert '<span class="redirect" id="redirect-host">127.0.0.1:3999</span>' in consent
    assert "Create and change JobNimbus records" in consent
    first_tokens = observed["before_refresh"]
    assert first_tokens.access_token.startswith("jnmcp_at.")
    assert set(first_tokens.scope.split()) == {"jobnimbus:read", "jobnimbus:write"}
    # tools/list, and a read answered the second time from the cache.
    assert {READ_TOOL, "create_contact", "get_contact"} <= set(observed["tools"])
    first, second = observed["reads"]
    assert structured(first) == structured(second)
    assert cache_status(first) == "miss"
    assert cache_status(second) in HITS
    # The write reached JobNimbus, and was audited under the user and client.
    made = structured(observed["write"])
    assert [c["jnid"] for c in sandbox_contacts(site, site.admin_key, email=email)] == [made["record"]["jnid"]]
    audit = WriteAudit.objects.get(tool="create_contact")
    assert (audit.user_id, audit.application_id, audit.record) == (user.pk, application.pk, made["record"]["jnid"])
    # Refresh: a new access token, the call with it succeeded, and the old pair no longer works (rotation).
    refreshed = observed["after_refresh"]
    structured(observed["after_refresh_call"])
    assert refreshed.access_token != first_tokens.access_token
    assert refreshed.refresh_token
    assert refreshed.refresh_token != first_tokens.refresh_token
    assert conn.authorizations == 1  # refreshed, not signed in again
    assert_invalid_token(site, first_tokens.access_token)
    with_new = site.mcp(refreshed.access_token, "tools/call", {"name": READ_TOOL, "arguments": {"query": "x"}})
    assert with_new.status_code == 200, with_new.text

    # Revocation: the access token is refused on the very next call.
    client_id = conn.storage.client_info.client_id
    revoked = site.post("/oauth/revoke/", data={"token": refreshed.access_token, "client_id": client_id})
    assert revoked.status_code == 200, revoked.text
    assert_invalid_token(site, refreshed.access_token)

    # The old refresh token is dead; presenting it again (reuse) also ends the newer one's family.
    reused = token_request(
        site, grant_type="refresh_token", refresh_token=first_tokens.refresh_token, client_id=client_id
    )
    assert oauth_error(reused) == "invalid_grant"
    again = token_request(site, grant_type="refresh_token", refresh_token=refreshed.refresh_token, client_id=client_id)
    assert oauth_error(again) == "invalid_grant"
    assert_no_key_leaks(site, logs)


# --- 2. The whole flow with a Client ID Metadata Document --------------------------------------------------------


CIMD_DOCUMENT = {
    "client_name": "E2E CIMD Client",
    "redirect_uris": [REDIRECT_URI],
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "token_endpoint_auth_method": "none",
}
CIMD_HEADERS = {"Content-Type": "application/json", "Cache-Control": "max-age=300"}


def test_cimd_flow_uses_the_url_as_client_id_without_registration(
    managed_site: ManagedSite, document_server: DocumentServer, settings: Any, logs: pytest.LogCaptureFixture
) -> None:
    site, document = managed_site, document_server
    settings.MANAGED_CIMD_PRIVATE_HOSTS = ["localhost"]
    settings.MANAGED_CIMD_CA_FILE = str(document.ca_file)
    client_id = document.serve("/client.json", CIMD_DOCUMENT, headers=CIMD_HEADERS)
    site.user("cy", key=site.store_key("Full access", site.admin_key))
    conn = OAuthConnection(site, Browser(site, "cy"), client_metadata_url=client_id)

    async def work(session: ClientSession) -> tuple[list[str], CallToolResult]:
        names = [tool.name for tool in (await session.list_tools()).tools]
        return names, await session.call_tool(READ_TOOL, {"query": "Smith", "size": 3})

    names, result = conn.run(work)

    assert READ_TOOL in names
    assert structured(result)["records"] is not None
    assert conn.storage.client_info is not None
    assert conn.storage.client_info.client_id == client_id
    # The server fetched the document over TLS (its own CA) and made the client from it; nobody registered.
    assert document.hits
    assert set(document.hits) == {"/client.json"}
    application = Application.objects.get()
    assert application.client_id == client_id
    assert application.registration_source == Application.RegistrationSource.CIMD
    assert application.name == "E2E CIMD Client"  # the document's name, not the client's registration metadata
    assert not any(request.startswith("POST /oauth/register") for request in site.seen.requests)
    assert '<span id="client-name">E2E CIMD Client</span>' in conn.browser.pages[0]
    assert conn.access_token.startswith("jnmcp_at.")
    assert AccessToken.objects.get().application_id == application.pk
    assert_no_key_leaks(site, logs)


# --- 3. Refusals ------------------------------------------------------------------------------------------------


def stored_token(site: ManagedSite, issued: Issued, **overrides: Any) -> str:
    """Create an access token row directly (as DOT stores it: only its SHA-256) and return the token string."""
    template = AccessToken.objects.select_related("user", "application").filter(
        application__client_id=issued.client_id, user__isnull=False
    )[0]
    raw = "jnmcp_at." + secrets.token_urlsafe(32)
    fields: dict[str, Any] = {
        "user": template.user,
        "application": template.application,
        "expires": timezone.now() + timedelta(hours=1),
        "scope": "jobnimbus:read jobnimbus:write",
        "resource": [site.resource],
        **overrides,
    }
    token = AccessToken(**fields)
    set_token_value(token, raw)
    token.save()
    assert token.token == ""  # digest only at rest
    return raw


def test_tokens_are_refused_for_scope_audience_expiry_revocation_and_tampering(
    managed_site: ManagedSite, logs: pytest.LogCaptureFixture
) -> None:
    site = managed_site
    site.user("rita", key=site.store_key("Full access", site.admin_key))
    read_only = issue_tokens(site, "rita", scope="jobnimbus:read")
    assert read_only.scope == "jobnimbus:read"
    reading = {"name": READ_TOOL, "arguments": {"query": "Smith", "size": 2}}
    assert site.mcp(read_only.access_token, "tools/call", reading).status_code == 200

    # A write with a read-only token: 403 insufficient_scope naming jobnimbus:write, and nothing written.
    email = f"scope-{secrets.token_hex(4)}@example.com"
    writing = {"name": "create_contact", "arguments": {"first_name": "No", "last_name": "Scope", "email": email}}
    refused = site.mcp(read_only.access_token, "tools/call", writing)
    assert refused.status_code == 403, refused.text
    header = challenge_of(refused)
    assert 'error="insufficient_scope"' in header
    assert "jobnimbus:write" in header.split('scope="', 1)[1].split('"', 1)[0]
    assert "resource_metadata=" in header
    assert sandbox_contacts(site, site.admin_key, email=email) == []
    assert not WriteAudit.objects.exists()

    # A well-made token row works (so the refusals below are for the reason each states) ...
    made = site.mcp(stored_token(site, read_only), "tools/call", reading)
    assert made.status_code == 200, (made.headers, made.text)
    # ... but not one for another resource, an expired one, a tampered one or a revoked one.
    assert_invalid_token(site, stored_token(site, read_only, resource=["https://other.example/mcp"]))
    assert_invalid_token(site, stored_token(site, read_only, expires=timezone.now() - timedelta(seconds=1)))
    last = read_only.access_token[-1]
    assert_invalid_token(site, read_only.access_token[:-1] + ("A" if last != "A" else "B"))
    revoked = site.post("/oauth/revoke/", data={"token": read_only.access_token, "client_id": read_only.client_id})
    assert revoked.status_code == 200
    assert_invalid_token(site, read_only.access_token)

    # The registration access token DCR hands out (RFC 7592, to manage the registration) acts for nobody on /mcp,
    # and its prefix is not a JobNimbus key's shape: refused as malformed, never sent to JobNimbus.
    registered = site.post("/oauth/register/", json={"client_name": "Other", "redirect_uris": [REDIRECT_URI],
                                                     "token_endpoint_auth_method": "none"})  # fmt: skip
    assert registered.status_code == 201, registered.text
    registration_token = registered.json()["registration_access_token"]
    answer = site.mcp(registration_token, "tools/call", reading)
    assert answer.status_code == 401, answer.text
    assert_no_key_leaks(site, logs)


def test_token_endpoint_refuses_another_resource_and_plain_pkce(
    managed_site: ManagedSite, logs: pytest.LogCaptureFixture
) -> None:
    site = managed_site
    site.user("tess", key=site.store_key("Full access", site.admin_key))
    client_id = register_client(site)

    # A code for this server cannot buy a token for another resource (RFC 8707 invalid_target).
    code, verifier = authorize_code(site, "tess", client_id, "jobnimbus:read")
    foreign = token_request(
        site,
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT_URI,
        client_id=client_id,
        code_verifier=verifier,
        resource="https://other.example/mcp",
    )
    assert oauth_error(foreign) == "invalid_target"

    # ... nor can an authorization request name one.
    pkce = PKCEParameters.generate()
    elsewhere = authorization_url(site, client_id, pkce.code_challenge, "st", resource="https://other.example/mcp")
    page = anyio.run(Browser(site, "tess").visit, elsewhere)
    assert page.status_code == 400, (page.status_code, page.text[:300])
    assert "invalid_target" in page.text

    # PKCE plain: not offered, refused at authorization before the consent page (no code is made) ...
    metadata = site.request("GET", "/.well-known/oauth-authorization-server").json()
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    challenge = secrets.token_urlsafe(48)
    url = authorization_url(site, client_id, challenge, "st", code_challenge_method="plain")
    grants = Grant.objects.count()
    page = anyio.run(Browser(site, "tess").visit, url)
    assert page.status_code == 400, (page.status_code, page.text[:300])
    assert "S256" in page.text
    assert Grant.objects.count() == grants
    # ... and the token endpoint wants the S256 proof: the challenge itself (what `plain` would take) is refused.
    code, verifier = authorize_code(site, "tess", client_id, "jobnimbus:read")
    s256_challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    exchange = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "client_id": client_id,
        "resource": site.resource,
    }
    as_plain = token_request(site, **exchange, code_verifier=s256_challenge)
    assert oauth_error(as_plain) == "invalid_grant"
    assert "access_token" not in as_plain.json()
    assert_no_key_leaks(site, logs, tools_called=False)


# --- 4. Partitioning: the cache never answers one key's caller with another key's records ----------------------


def test_cached_answers_are_partitioned_by_jobnimbus_key_and_shared_within_one(
    managed_site: ManagedSite, logs: pytest.LogCaptureFixture
) -> None:
    site = managed_site
    full = site.store_key("Full access", site.admin_key)
    reps = site.group("Sales reps", site.store_key("Sales reps", site.sales_key))
    site.user("alice", key=full)
    site.user("bob", group=reps)
    site.user("carol", group=reps)
    everyone = sandbox_contacts(site, site.admin_key)
    hidden = next(
        c for c in everyone
        if c.get("email") and api(site.sandbox, "GET", f"/contacts/{c['jnid']}", key=site.sales_key).status_code == 404
    )  # fmt: skip
    shared = sandbox_contacts(site, site.sales_key)[0]
    detail = ("get_contact", {"jnid": hidden["jnid"]})
    search = (READ_TOOL, {"query": hidden["email"]})

    # Alice (full access) reads the record and finds it by email; both answers are cached.
    a_detail, a_again, a_search, a_search_again = calls(
        OAuthConnection(site, Browser(site, "alice")), [detail, detail, search, search]
    )
    assert structured(a_detail)["jnid"] == hidden["jnid"]
    assert cache_status(a_detail) == "miss"
    assert cache_status(a_again) in HITS
    assert hidden["jnid"] in ids(structured(a_search))
    assert cache_status(a_search_again) in HITS

    # Bob (sales rep's key) asks the same questions: never her answers, neither the first time nor from the cache.
    b_detail, b_search, b_detail_again, b_search_again, b_shared = calls(
        OAuthConnection(site, Browser(site, "bob")),
        [detail, search, detail, search, ("get_contact", {"jnid": shared["jnid"]})],
    )
    for refused in (b_detail, b_detail_again):
        assert refused.is_error is True
        assert "Not found in JobNimbus" in str(refused.content)
        assert hidden["email"] not in str(refused.content)
        assert hidden["email"] not in str(refused.structured_content)
    assert hidden["jnid"] not in ids(structured(b_search))
    assert cache_status(b_search) == "miss"  # the same arguments as Alice's cached search: not her entry
    assert hidden["jnid"] not in ids(structured(b_search_again))
    assert cache_status(b_search_again) in HITS  # his own cached answer
    assert structured(b_shared)["jnid"] == shared["jnid"]
    assert cache_status(b_shared) == "miss"

    # Carol is on Bob's key (the same group): she is answered from his cache entries.
    c_shared, c_search = calls(
        OAuthConnection(site, Browser(site, "carol")), [("get_contact", {"jnid": shared["jnid"]}), search]
    )
    assert structured(c_shared) == structured(b_shared)
    assert cache_status(c_shared) in HITS
    assert hidden["jnid"] not in ids(structured(c_search))
    assert cache_status(c_search) in HITS
    assert_no_key_leaks(site, logs)


# --- 5. The secret checks can fail ------------------------------------------------------------------------------


def test_the_leak_checks_find_a_key_planted_in_each_place(
    managed_site: ManagedSite, logs: pytest.LogCaptureFixture
) -> None:
    """key_leaks is what the flows above end with; here a key is planted in each place it searches, so a check
    that looked in the wrong place (or could not read zstd values) would fail this test."""
    site = managed_site
    planted = "planted_" + secrets.token_hex(12)
    logging.getLogger("managed.resource").debug("calling with %s", planted)
    site.redis.set(f"{site.namespace}planted", zstandard.ZstdCompressor().compress(("x" * 2048 + planted).encode()))
    site.redis.hset(f"{site.namespace}planted-hash", "field", planted)
    site.user(planted)
    site.seen.responses.append(f"200\nx-debug: {planted}\n\n")
    assert key_leaks(site, logs, [planted]) == {
        "logs": {"managed.resource", "text"},
        "responses": {"response 0"},
        "redis": {f"{site.namespace}planted", f"{site.namespace}planted-hash"},
        "database": {"auth_user"},
    }
