"""Issue 11, hardening: errors before authentication, secrets in logs, webhook edges, production settings.

One section per finding of the outside tester; each test reproduces the finding and fails without its fix:
 5. malformed Origin, X-Webhook-Timestamp and Content-Length: precise 4xx, never Django's HTML 500 or a traceback;
 6. a webhook secret sent as ?token= never reaches the web server's access log (the Procfile's web line, run for real);
 7. a signed delivery is remembered until its timestamp leaves the tolerance, not for the tolerance from receipt;
 8. get_webhooks lists only the deliveries of records the caller's key can read;
 9. NUL and control characters refused before the database (runs on PostgreSQL when DATABASE_URL says so), chunked
    bodies read, webhook refusals logged once with reason and address, wrong secrets slowed per address;
10. check --deploy passes in the documented production configuration; operational figures need staff or a token.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import logging
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from django.contrib.auth.models import User
from django.test import Client
from django_redis import get_redis_connection
from redis.exceptions import ConnectionError as RedisConnectionError

from cacheops import backend, keys, webhooks
from cacheops.api import tenant_id
from cacheops.breakers import reset_breakers
from cacheops.models import InvalidationEvent, SeenSignature
from jobnimbus_site.logging import redact
from mcp_tools.catalog import registry
from mcp_tools.catalog.base import ToolContext
from sandbox.access import ADMIN_KEY, SALES_KEY
from sandbox.server import SandboxHandle
from tests.fixtures.clock import Clock
from tests.fixtures.freshness import SECRET
from tests.fixtures.redis import CacheEnv, require_real_redis
from tests.fixtures.sandbox import api, control

ROOT = Path(__file__).resolve().parent.parent
WEBHOOK = "/webhooks/jobnimbus/acme"
INIT = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
MCP_INIT = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INIT})
METRICS_TOKEN = "metrics-token-0123456789abcdef"


def _delivery(**overrides: Any) -> dict[str, Any]:
    return {"event": "updated", "type": "job", "jnid": f"job-{uuid.uuid4().hex[:8]}", **overrides}


def _post_webhook(client: Client, body: object, url: str = WEBHOOK, **extra: Any) -> Any:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return client.post(url, data=raw, content_type="application/json", **extra)


def _signed_headers(raw: bytes, timestamp: int | str) -> dict[str, str]:
    stamp = str(timestamp)
    return {"HTTP_X_WEBHOOK_TIMESTAMP": stamp, "HTTP_X_WEBHOOK_SIGNATURE": webhooks.sign(SECRET, stamp, raw)}


def _errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.ERROR]


# --- 5. Malformed Origin, timestamp and Content-Length: a precise 4xx, no 500, no traceback -----------------------


@pytest.mark.usefixtures("fake_catalog")
@pytest.mark.parametrize("path", ["/mcp", "/mcp/tools/list", "/mcp/tools/call"])
@pytest.mark.parametrize(
    "origin", ["http://[::1", "http://[not-an-address]:80", "http://[::1]x", "http://[1:::::]", "null", "http://x/y"]
)
def test_a_malformed_origin_is_a_json_403_without_a_traceback(
    client: Client, caplog: pytest.LogCaptureFixture, path: str, origin: str
) -> None:
    response = client.post(path, data=MCP_INIT, content_type="application/json", HTTP_ORIGIN=origin)
    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
    assert "not allowed" in orjson.dumps(response.json()).decode()
    assert _errors(caplog) == []


@pytest.mark.django_db
@pytest.mark.usefixtures("webhook_instances", "frozen_clock")
@pytest.mark.parametrize(
    "timestamp",
    ["9" * 309, "9" * 5000, "1" * 13, "²³", "+1700000000", "1e9", "-5", "17000000.5", "0x10", "١٢٣"],
    ids=["309-digits", "5000-digits", "13-digits", "superscripts", "plus", "exponent", "negative", "decimal", "hex",
         "arabic-indic"],
)  # fmt: skip
def test_a_malformed_webhook_timestamp_is_401_bad_timestamp(
    client: Client, caplog: pytest.LogCaptureFixture, timestamp: str
) -> None:
    raw = orjson.dumps(_delivery())
    response = _post_webhook(client, raw, **_signed_headers(raw, timestamp))
    assert response.status_code == 401
    assert response.json()["error"] == "bad_timestamp"
    assert "unix time in whole seconds" in response.json()["message"]
    assert not InvalidationEvent.objects.exists()
    assert _errors(caplog) == []


@pytest.mark.django_db
@pytest.mark.usefixtures("webhook_instances", "fake_catalog")
@pytest.mark.parametrize("length", ["²", "9" * 5000, "-1", "12abc"])
def test_a_malformed_content_length_is_no_500(client: Client, caplog: pytest.LogCaptureFixture, length: str) -> None:
    # Django reads a body whose Content-Length it cannot parse as empty; what matters is a 4xx, not a crash.
    webhook = _post_webhook(client, _delivery(), HTTP_X_WEBHOOK_TOKEN=SECRET, CONTENT_LENGTH=length)
    assert webhook.status_code == 400
    assert webhook.json()["error"] == "not_json"
    mcp = client.post("/mcp", data=MCP_INIT, content_type="application/json", CONTENT_LENGTH=length)
    assert mcp.status_code == 400
    assert mcp.json()["error"]["code"] == -32700
    assert _errors(caplog) == []


# --- 6. ?token= never reaches the web server's access log ---------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _procfile_web_argv(environ: dict[str, str], port: int) -> list[str]:
    """Return the Procfile's web command as a shell would run it, bound to 127.0.0.1 instead of every interface."""
    line = next(ln for ln in (ROOT / "Procfile").read_text().splitlines() if ln.startswith("web:"))
    expanded = re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: environ.get(m.group(1), m.group(2)), line[len("web:") :])
    argv = expanded.split()
    assert argv[0] == "granian"
    argv[argv.index("--host") + 1], argv[argv.index("--port") + 1] = "127.0.0.1", str(port)
    return [sys.executable, "-m", "granian", *argv[1:]]


@pytest.fixture(scope="module")
def procfile_web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """Run the Procfile's web line (one worker) with instance acme's webhook secret; yield (port, its stdout)."""
    redis_url = require_real_redis()
    port, out = _free_port(), tmp_path_factory.mktemp("web") / "stdout.log"
    environ = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("JOBNIMBUS_", "DJANGO_", "DATABASE_", "CACHE_"))},
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        "WEB_THREADS": "2",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
        "DATABASE_URL": f"sqlite:///{out.parent / 'db.sqlite3'}",
        "REDIS_URL": redis_url,
        "CACHE_KEY_NAMESPACE": f"test-web-{uuid.uuid4().hex[:8]}:",
        "JOBNIMBUS_INSTANCES": "acme",
        "JOBNIMBUS_WEBHOOK_SECRET_ACME": SECRET,
        "LOG_FORMAT": "text",
    }
    with out.open("wb") as sink:
        process = subprocess.Popen(
            _procfile_web_argv(environ, port), cwd=ROOT, env=environ, stdout=sink, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the web server did not start:\n{out.read_text()}")
                time.sleep(0.2)
        yield port, out
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def _http(port: int, method: str, path: str, body: Any, headers: dict[str, str]) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers, encode_chunked=not isinstance(body, bytes))
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _access_log(out: Path, path: str) -> str:
    """Return the access-log lines naming `path` (the server writes a line when the response is done)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [line for line in out.read_text(errors="replace").splitlines() if path in line]
        if lines:
            return "\n".join(lines)
        time.sleep(0.1)
    return ""


@pytest.mark.e2e
def test_a_query_token_never_reaches_the_access_log(procfile_web: tuple[int, Path]) -> None:
    port, out = procfile_web
    # A body the receiver refuses after authenticating (400): the line is logged whatever the answer, and nothing
    # needs the database.
    status, _ = _http(port, "POST", f"{WEBHOOK}?token={SECRET}&x=1", b"{not json", {"Content-Type": "application/json"})
    assert status == 400  # the token was accepted: the body was what it refused
    line = _access_log(out, WEBHOOK)
    assert line, out.read_text()
    assert SECRET not in out.read_text()
    assert "token=[redacted]" in line
    assert "x=1" in line  # other parameters stay readable


def test_a_query_token_never_reaches_the_json_log_through_the_request_django_attaches(settings: Any) -> None:
    # django.request logs refusals it makes itself (a GET is 405) with extra={"request": request}, and the JSON
    # formatter writes that request's repr: its full path, query string included.
    from django.test import RequestFactory
    from django.utils.module_loading import import_string

    config = dict(settings.LOGGING["formatters"]["json"])
    stream, factory = io.StringIO(), config.pop("()")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(import_string(factory)(**config))
    for name in ("request_id", "redact"):
        handler.addFilter(import_string(settings.LOGGING["filters"][name]["()"])())
    request = RequestFactory().get(f"{WEBHOOK}?token={SECRET}")
    record = logging.LogRecord(
        "django.request", logging.WARNING, __file__, 1, "Method Not Allowed (GET): %s", (WEBHOOK,), None
    )
    record.status_code, record.request = 405, request
    handler.handle(record)
    line = orjson.loads(stream.getvalue())
    assert SECRET not in stream.getvalue()
    assert "token=[redacted]" in line["request"]


# --- 7. A signature is remembered until its timestamp leaves the tolerance ------------------------------------------


@pytest.mark.django_db
@pytest.mark.usefixtures("webhook_instances")
def test_a_signature_from_the_future_is_remembered_until_its_own_tolerance_ends(
    client: Client, frozen_clock: Clock
) -> None:
    raw = orjson.dumps(_delivery())
    headers = _signed_headers(raw, int(frozen_clock.ts) + 290)
    assert _post_webhook(client, raw, **headers).status_code == 202
    digest = hashlib.sha256(headers["HTTP_X_WEBHOOK_SIGNATURE"].encode()).hexdigest()
    ttl = get_redis_connection("default").ttl(keys.signature_key(digest))
    assert 590 <= ttl <= 592  # timestamp + 300 s, not receipt + 300 s (Redis counts real time: checked directly)


@pytest.mark.django_db
@pytest.mark.usefixtures("webhook_instances")
def test_a_replay_305_s_later_is_refused_with_the_database_as_memory(
    client: Client, frozen_clock: Clock, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    def down() -> Any:
        raise RedisConnectionError("redis is down")

    monkeypatch.setattr(backend, "client", down)
    request.addfinalizer(reset_breakers)  # the failures count on the process's Redis breaker: leave it closed
    raw = orjson.dumps(_delivery())
    headers = _signed_headers(raw, int(frozen_clock.ts) + 290)
    assert _post_webhook(client, raw, **headers).status_code == 202
    frozen_clock.shift(timedelta(seconds=305))  # the timestamp is now 15 s old: still inside the tolerance
    replay = _post_webhook(client, raw, **headers)
    assert replay.status_code == 401
    assert replay.json()["error"] == "replayed"
    assert InvalidationEvent.objects.count() == 1
    expires = SeenSignature.objects.get().expires.timestamp()
    assert expires >= int(frozen_clock.ts) - 305 + 290 + 300


# --- 8. get_webhooks shows a key only the deliveries of records it can read ----------------------------------------


def _job_of(sandbox: SandboxHandle, *, sales_rep: bool) -> str:
    clause = {"term": {"sales_rep": sandbox.sales_rep_id}}
    flt = orjson.dumps({"must": [clause]} if sales_rep else {"must_not": [clause]}).decode()
    return str(api(sandbox, "GET", "/jobs", params={"size": 1, "filter": flt}).json()["results"][0]["jnid"])


@pytest.mark.django_db
@pytest.mark.parametrize("cache_backend", ["fake"], indirect=True)
def test_get_webhooks_lists_only_deliveries_of_records_the_key_can_read(
    cache_backend: CacheEnv, sandbox: SandboxHandle, settings: Any, client: Client
) -> None:
    settings.JOBNIMBUS_BASE_URL = sandbox.base_url
    settings.JOBNIMBUS_INSTANCES = {"demo": {"api_key": ADMIN_KEY, "webhook_secret": SECRET}}
    mine, theirs = _job_of(sandbox, sales_rep=True), _job_of(sandbox, sales_rep=False)
    for jnid in (mine, theirs):
        url = "/webhooks/jobnimbus/demo"
        assert _post_webhook(client, _delivery(jnid=jnid), url=url, HTTP_X_WEBHOOK_TOKEN=SECRET).status_code == 202
    assert api(sandbox, "GET", f"/jobs/{theirs}", key=SALES_KEY).status_code == 404  # the finding's premise

    def deliveries(key: str) -> tuple[list[str], int | None, str]:
        ctx = ToolContext(instance="demo", api_key=key, tenant=tenant_id(key), request_id="t")
        result = registry.call_tool(ctx, "get_webhooks", {"limit": 10})
        assert not result.is_error, result.text
        shown = [d["jnid"] for d in result.structured["recent_deliveries"]]
        return shown, result.structured.get("withheld_deliveries"), result.text

    shown, withheld, text = deliveries(SALES_KEY)
    assert (shown, withheld) == ([mine], 1)
    assert theirs not in text
    # The instance's own (server-held) key sees every delivery; so does another key whose profile sees everything,
    # after looking the records up with that key.
    assert deliveries(ADMIN_KEY)[:2] == ([theirs, mine], 0)
    everything = "test_all_" + secrets.token_hex(8)
    control(sandbox, "POST", "keys", {"key": everything, "profile": "all"})
    assert deliveries(everything)[:2] == ([theirs, mine], 0)


# --- 9. Invalid text, chunked bodies, refusals logged once, wrong secrets slowed ------------------------------------


@pytest.mark.django_db
@pytest.mark.usefixtures("webhook_instances")
@pytest.mark.parametrize(
    ("body", "says"),
    [
        (_delivery(jnid="job\x00one"), "jnid contains the control character U+0000 at position 3"),
        (_delivery(jnid="\x00"), "jnid contains the control character U+0000 at position 0"),
        (_delivery(related=[{"id": "contact\x00x"}]), "related id contains the control character U+0000"),
        (_delivery(primary={"id": "c\x1f1"}), "related id contains the control character U+001F at position 1"),
        (_delivery(jnid="job\r\nX-Injected: 1"), "U+000D"),
    ],
)
def test_nul_and_control_characters_are_a_400_before_the_database(
    client: Client, caplog: pytest.LogCaptureFixture, body: dict[str, Any], says: str
) -> None:
    # On PostgreSQL (DATABASE_URL=postgres://..., as in CI) a NUL made psycopg raise DataError: a 500.
    response = _post_webhook(client, body, HTTP_X_WEBHOOK_TOKEN=SECRET)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_text"
    assert says in response.json()["message"]
    assert not InvalidationEvent.objects.exists()
    assert _errors(caplog) == []


def _chunked(client: Client, path: str, raw: bytes, **extra: Any) -> Any:
    """POST `raw` as the web server hands a chunked body to the app: no CONTENT_LENGTH, wsgi.input_terminated set."""
    environ: dict[str, Any] = {
        "CONTENT_TYPE": "application/json",
        "wsgi.input": io.BytesIO(raw),
        "wsgi.input_terminated": True,
    }
    return client.generic("POST", path, b"", **environ, **extra)


@pytest.mark.django_db
@pytest.mark.usefixtures("webhook_instances")
def test_a_chunked_webhook_body_is_read(client: Client) -> None:
    body = _delivery()
    response = _chunked(client, WEBHOOK, orjson.dumps(body), HTTP_X_WEBHOOK_TOKEN=SECRET)
    assert response.status_code == 202, response.content
    assert InvalidationEvent.objects.get().jnid == body["jnid"]


@pytest.mark.django_db
@pytest.mark.usefixtures("webhook_instances")
def test_a_chunked_webhook_body_over_the_limit_is_413(client: Client, settings: Any) -> None:
    settings.CACHEOPS_FRESHNESS = {**settings.CACHEOPS_FRESHNESS, "WEBHOOK_MAX_BYTES": 1024}
    raw = orjson.dumps(_delivery(padding="x" * 2000))
    response = _chunked(client, WEBHOOK, raw, HTTP_X_WEBHOOK_TOKEN=SECRET)
    assert response.status_code == 413


@pytest.mark.usefixtures("fake_catalog")
def test_chunked_mcp_and_compat_bodies_are_read(client: Client, settings: Any) -> None:
    answer = _chunked(client, "/mcp", MCP_INIT)
    assert answer.status_code == 200
    assert answer.json()["result"]["protocolVersion"] == "2025-06-18"
    listed = _chunked(client, "/mcp/tools/list", b"{}")
    assert listed.json()["success"] is True
    settings.MCP = {**settings.MCP, "MAX_BODY_BYTES": 1024}
    assert _chunked(client, "/mcp", b'{"pad": "' + b"x" * 2000 + b'"}').status_code == 413


@pytest.mark.e2e
def test_the_web_server_hands_a_chunked_body_to_mcp_and_the_webhook_receiver(procfile_web: tuple[int, Path]) -> None:
    port, _ = procfile_web
    chunks = iter([MCP_INIT[:20], MCP_INIT[20:]])
    status, body = _http(port, "POST", "/mcp", chunks, {"Content-Type": "application/json"})
    assert status == 200, body
    assert orjson.loads(body)["result"]["protocolVersion"] == "2025-06-18"
    # A type the receiver does not know: refused only once the body was read (an empty body is "not_json").
    raw = orjson.dumps({"jnid": "j1", "type": "spaceship"})
    headers = {"Content-Type": "application/json", "X-Webhook-Token": SECRET}
    status, body = _http(port, "POST", WEBHOOK, iter([raw[:10], raw[10:]]), headers)
    assert (status, orjson.loads(body)["error"]) == (400, "type_unknown")


@pytest.mark.django_db
@pytest.mark.usefixtures("webhook_instances")
@pytest.mark.parametrize("cache_backend", ["fake"], indirect=True)
def test_a_refusal_is_logged_once_with_reason_and_address_never_the_token(
    cache_backend: CacheEnv, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "wrong-secret-value-0001"
    with caplog.at_level(logging.INFO):
        response = _post_webhook(
            client, _delivery(), url=f"{WEBHOOK}?token={wrong}", REMOTE_ADDR="203.0.113.9",
        )  # fmt: skip
    assert response.status_code == 401
    refusals = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(refusals) == 1, [r.getMessage() for r in refusals]
    message = refusals[0].getMessage()
    assert refusals[0].levelno == logging.WARNING
    assert "401 bad_token" in message
    assert "203.0.113.9" in message
    assert redact(message) == message  # the handlers' redaction filter leaves the reason readable
    assert wrong not in caplog.text
    assert SECRET not in caplog.text


@pytest.mark.django_db
@pytest.mark.usefixtures("webhook_instances")
@pytest.mark.parametrize("cache_backend", ["fake"], indirect=True)
def test_repeated_wrong_secrets_from_one_address_are_429_with_retry_after(
    cache_backend: CacheEnv, client: Client, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.CACHEOPS_FRESHNESS = {**settings.CACHEOPS_FRESHNESS, "AUTH_FAILURES_PER_MIN": 3}
    attacker, sender = "198.51.100.7", "198.51.100.8"
    raw = orjson.dumps(_delivery())
    guesses = [
        {"HTTP_X_WEBHOOK_TOKEN": "guess-1"},
        {"HTTP_X_WEBHOOK_TOKEN": "guess-2"},
        {"HTTP_X_WEBHOOK_TIMESTAMP": str(int(time.time())), "HTTP_X_WEBHOOK_SIGNATURE": "sha256=00"},
    ]
    for guess in guesses:
        assert _post_webhook(client, raw, REMOTE_ADDR=attacker, **guess).status_code == 401
    caplog.clear()
    blocked = _post_webhook(client, raw, REMOTE_ADDR=attacker, HTTP_X_WEBHOOK_TOKEN=SECRET)  # even the right one
    assert blocked.status_code == 429
    assert blocked.json()["error"] == "too_many_failures"
    assert 1 <= int(blocked["Retry-After"]) <= 60
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # the block was logged when it began
    assert not InvalidationEvent.objects.exists()
    # Another address is not affected; a missing credential does not count as a guess.
    assert _post_webhook(client, raw, REMOTE_ADDR=sender).status_code == 401
    assert _post_webhook(client, raw, REMOTE_ADDR=sender, HTTP_X_WEBHOOK_TOKEN=SECRET).status_code == 202


@pytest.mark.django_db
@pytest.mark.usefixtures("webhook_instances")
@pytest.mark.parametrize("cache_backend", ["fake"], indirect=True)
def test_behind_a_trusted_proxy_the_address_is_the_one_it_forwarded(
    cache_backend: CacheEnv, client: Client, settings: Any
) -> None:
    settings.CACHEOPS_FRESHNESS = {**settings.CACHEOPS_FRESHNESS, "AUTH_FAILURES_PER_MIN": 1}
    settings.TRUSTED_PROXY_COUNT = 1
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    raw = orjson.dumps(_delivery())
    forged = "192.0.2.1, 198.51.100.20"  # the client wrote the first entry; the proxy appended the second
    assert _post_webhook(client, raw, HTTP_X_FORWARDED_FOR=forged, HTTP_X_WEBHOOK_TOKEN="x", **proxy).status_code == 401
    assert _post_webhook(client, raw, HTTP_X_FORWARDED_FOR="198.51.100.20", **proxy).status_code == 429
    other = _post_webhook(client, raw, HTTP_X_FORWARDED_FOR="198.51.100.21", HTTP_X_WEBHOOK_TOKEN=SECRET, **proxy)
    assert other.status_code == 202


# --- 10. Production settings, operational endpoints, unknown instances ----------------------------------------------


def _production_env(**overrides: str) -> dict[str, str]:
    """The documented production configuration (README, "Configuration for real use")."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("JOBNIMBUS_", "DJANGO_", "METRICS_", "TRUSTED_"))}
    return {
        **base,
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "mcp.example.com",
        "DJANGO_SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto",
        "TRUSTED_PROXY_COUNT": "1",
        "METRICS_TOKEN": METRICS_TOKEN,
        "PYTHONPATH": str(ROOT),
        **overrides,
    }


def _manage(environ: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=environ, capture_output=True, text=True, check=False,
        timeout=120,
    )  # fmt: skip


def test_check_deploy_passes_in_the_documented_production_configuration() -> None:
    result = _manage(_production_env(), "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_without_the_proxy_header_check_deploy_still_asks_for_the_redirect() -> None:
    # Without it every request looks like http, so the redirect stays off by default (it would loop) and says so.
    result = _manage(_production_env(DJANGO_SECURE_PROXY_SSL_HEADER=""), "check", "--deploy")
    assert "security.W008" in result.stdout + result.stderr
    for fixed in ("W004", "W012", "W016"):
        assert f"security.{fixed}" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [("DJANGO_SECURE_PROXY_SSL_HEADER", "X Forwarded Proto"), ("METRICS_TOKEN", "short"),
     ("DJANGO_SECURE_HSTS_SECONDS", "a year"), ("TRUSTED_PROXY_COUNT", "-1")],
)  # fmt: skip
def test_malformed_production_switches_name_the_variable(name: str, value: str) -> None:
    result = _manage(_production_env(**{name: value}), "check")
    assert result.returncode != 0
    assert name in result.stderr
    assert "ImproperlyConfigured" in result.stderr


@pytest.mark.django_db
def test_https_redirect_spares_health_and_metrics_and_trusts_the_proxy_header(client: Client, settings: Any) -> None:
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert client.post("/mcp", data=MCP_INIT, content_type="application/json").status_code == 301
    assert client.get("/health").status_code == 200
    assert client.get("/metrics").status_code == 403  # answered (not redirected): it needs a token
    proxied = client.post("/mcp", data=MCP_INIT, content_type="application/json", HTTP_X_FORWARDED_PROTO="https")
    assert proxied.status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/metrics", "/cache/stats", "/cache/health"])
def test_operational_figures_need_staff_or_the_metrics_token(client: Client, settings: Any, path: str) -> None:
    settings.METRICS_TOKEN = METRICS_TOKEN
    assert client.get(path).status_code == 403
    assert client.get(path, HTTP_AUTHORIZATION="Bearer not-the-metrics-token").status_code == 403
    assert client.get(path, HTTP_AUTHORIZATION=f"Token {METRICS_TOKEN}").status_code in {401, 403}
    assert client.get(path, HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}").status_code == 200
    User.objects.create_user("ops", password="pw-ops-12345", is_staff=True)
    assert client.login(username="ops", password="pw-ops-12345")
    assert client.get(path).status_code == 200


@pytest.mark.django_db
def test_without_a_metrics_token_no_bearer_opens_them(client: Client, settings: Any) -> None:
    settings.METRICS_TOKEN = None
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer None").status_code == 403


@pytest.mark.django_db
def test_public_health_says_only_whether_each_part_is_up(client: Client, settings: Any) -> None:
    body = client.get("/health").json()
    assert set(body) == {"status", "checks"}
    assert all(set(check) == {"ok"} for check in body["checks"].values())
    settings.METRICS_TOKEN = METRICS_TOKEN
    detailed = client.get("/health", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}").json()
    assert "latency_ms" in detailed["checks"]["database"]


@pytest.mark.django_db
@pytest.mark.usefixtures("webhook_instances")
def test_an_unknown_webhook_instance_names_no_configured_instance(client: Client) -> None:
    body = _post_webhook(client, _delivery(), url="/webhooks/jobnimbus/nobody", HTTP_X_WEBHOOK_TOKEN=SECRET).json()
    assert "acme" not in orjson.dumps(body).decode()


@pytest.mark.usefixtures("fake_catalog")
def test_an_unknown_mcp_instance_names_no_configured_instance(client: Client) -> None:
    headers = {"X-JobNimbus-Instance": "nobody"}
    response = client.post("/mcp", data=MCP_INIT, content_type="application/json", headers=headers)
    assert response.status_code == 400
    assert "demo" not in response.content.decode()
