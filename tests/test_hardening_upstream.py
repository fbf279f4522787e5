"""Issue 11, hardening: no caller can degrade other tenants through the upstream failure taxonomy or a refused key.

Each finding is reproduced the way the outside tester did, over real parts: the live server and the official MCP
client, the sandbox JobNimbus (or a scripted one for exact 429s), and the real Redis for the cache.

- 1: numbers that cannot be sent are refused at validation; a body that cannot be encoded never counts against the
  instance's breaker.
- 2: one key's 429 backs off that key only; the instance's breaker stays closed and other keys are served.
- 5c: an absurd Retry-After is a clean error, never a crash.
- 11: a key JobNimbus refuses is remembered (no upstream call, no cached answer) for REFUSED_KEY_TTL_S; a revoked key
  that only hits cache is served at most KEY_REVALIDATE_S after JobNimbus last accepted it.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from mcp_types import CallToolResult, TextContent

from cacheops import callers, engine, keys
from cacheops.api import CacheScope, ReadRequest, guard_upstream, list_tag, read_through, tenant_id
from cacheops.breakers import redis_breaker, upstream_breaker
from cacheops.errors import (
    KeyBackoffError,
    KeyRefusedError,
    UpstreamUnavailableError,
    breaker_verdict,
    key_verdict,
    whole_seconds,
)
from mcp_tools.jobnimbus.client import JobNimbusClient
from mcp_tools.jobnimbus.errors import (
    AuthError,
    MalformedKeyError,
    NotFoundError,
    RateLimitedError,
    UnavailableError,
    UnsendableRequestError,
    UnsupportedOperationError,
    ValidationError,
)
from mcp_tools.jobnimbus.retry import MAX_RETRY_AFTER_S, parse_retry_after
from sandbox.server import SandboxHandle
from tests.fixtures.redis import ZSTD, caches_setting, engine_setting_for, require_real_redis
from tests.fixtures.sandbox import control
from tests.fixtures.servers import McpServer, mcp_call, new_api_key
from tests.jobnimbus_scripted_server import Reply, ScriptedServer, Seen

NINES = "9" * 400
INFINITE_ITEM = {"name": "Shingles", "quantity": 1e308, "price": 1e308}
PAGE = {"count": 1, "results": [{"jnid": "c1", "type": "contact", "display_name": "Ada"}]}


# --- fixtures ------------------------------------------------------------------------------------------------


@pytest.fixture
def real_cache(settings: Any) -> Iterator[redis.Redis]:
    """Run the engine on the real Redis under a namespace of its own; yield the raw client; delete its keys after."""
    url = require_real_redis()
    namespace = f"hardening-{uuid.uuid4().hex[:10]}:"
    settings.CACHES = caches_setting(url, ZSTD)
    settings.CACHEOPS_ENGINE = engine_setting_for(namespace)
    settings.MCP = {**settings.MCP, "THROTTLE_RATE": "1000000/min"}
    engine.reset_engine()
    raw = redis.Redis.from_url(url)
    yield raw
    engine.reset_engine()
    for key in raw.scan_iter(match=f"{namespace}*", count=1000):
        raw.delete(key)
    raw.close()


def tune(settings: Any, **options: Any) -> None:
    """Change engine options of the running test (its namespace kept) and rebuild the engine."""
    settings.CACHEOPS_ENGINE = {**settings.CACHEOPS_ENGINE, **options}
    engine.reset_engine()


class PerKeyServer(ScriptedServer):
    """A scripted JobNimbus answering each key from its own reply (`by_key`), else `default`."""

    def __init__(self) -> None:
        super().__init__()
        self.by_key: dict[str, Reply] = {}
        self.default = Reply(body=PAGE)

    def next_reply(self, seen: Seen) -> Reply:
        with self._lock:
            self.seen.append(seen)
        return self.by_key.get(_key_of(seen), self.default)

    def requests_from(self, key: str) -> list[Seen]:
        return [seen for seen in self.seen if _key_of(seen) == key]


def _key_of(seen: Seen) -> str:
    return seen.headers.get("Authorization", "").removeprefix("Bearer ")


@pytest.fixture
def scripted(settings: Any) -> Iterator[PerKeyServer]:
    server = PerKeyServer()
    server.start()
    settings.JOBNIMBUS_BASE_URL = server.base_url
    yield server
    server.stop()


@pytest.fixture
def scripted_mcp(live_server: Any, settings: Any, scripted: PerKeyServer, real_cache: redis.Redis) -> McpServer:
    """The live server in front of the scripted JobNimbus, with the real cache."""
    return McpServer(live_server.url, next(iter(settings.JOBNIMBUS_INSTANCES)), new_api_key())


def text_of(result: CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


def failed(server: McpServer, tool: str, arguments: dict[str, Any]) -> str:
    """Call `tool` and return the text of the error result it must be."""
    result = mcp_call(server, tool, arguments)
    assert result.is_error is True, text_of(result)
    text = text_of(result)
    assert "unexpectedly" not in text  # a clean answer, not a crash
    return text


def succeeded(server: McpServer, tool: str, arguments: dict[str, Any]) -> CallToolResult:
    result = mcp_call(server, tool, arguments)
    assert result.is_error is False, text_of(result)
    return result


def cache_status(result: CallToolResult) -> str:
    assert result.meta is not None
    return str(result.meta["jobnimbus-mcp/cache"]["status"])


def sandbox_requests(handle: SandboxHandle) -> int:
    return int(control(handle, "GET", "stats")["total"])


def breaker_state(server: McpServer) -> str:
    return upstream_breaker(server.instance)[0].state


# --- the taxonomy, in one place --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "breaker", "key"),
    [
        (UnavailableError("timeout"), "failure", "none"),
        (UpstreamUnavailableError("503"), "failure", "none"),
        (RateLimitedError("429", retry_after_s=5), "success", "backoff"),
        (AuthError("401"), "success", "refused"),
        (NotFoundError("404"), "success", "accepted"),
        (ValidationError("422"), "success", "accepted"),
        (UnsendableRequestError("inf"), "none", "none"),
        (UnsupportedOperationError("no such endpoint"), "none", "none"),
        (MalformedKeyError("malformed"), "none", "none"),
        (KeyRefusedError("remembered"), "none", "none"),
        (KeyBackoffError("remembered"), "none", "none"),
    ],
)
def test_only_an_instance_fault_counts_against_the_breaker(error: Exception, breaker: str, key: str) -> None:
    assert (breaker_verdict(error), key_verdict(error)) == (breaker, key)


# --- finding 1: numbers that cannot be sent ----------------------------------------------------------------------


@pytest.mark.e2e
def test_unsendable_numbers_are_refused_naming_the_argument_and_never_open_the_breaker(
    mcp_server: McpServer, clean_sandbox: SandboxHandle, real_cache: redis.Redis
) -> None:
    # 1e308 x 1e308 is inf: before the fix the body could not be encoded, which counted as JobNimbus being down.
    texts = [failed(mcp_server, "create_estimate", {"related_to": "job1", "items": [INFINITE_ITEM]}) for _ in range(10)]
    priced = {**INFINITE_ITEM, "quantity": 1}
    texts += [failed(mcp_server, "update_estimate", {"jnid": "est1", "items": [priced]}) for _ in range(10)]
    assert sandbox_requests(clean_sandbox) == 0  # nothing reached JobNimbus
    assert breaker_state(mcp_server) == "CLOSED"
    other = mcp_server.with_key(new_api_key())
    control(clean_sandbox, "POST", "keys", {"key": other.api_key, "profile": "all"})
    assert cache_status(succeeded(other, "get_contacts", {"size": 2})) == "miss"  # another key's uncached read
    bound = "must be a finite number between 0 and 1000000000, got 1e+308"
    assert texts == [f"Argument 'items[0].quantity' {bound}"] * 10 + [f"Argument 'items[0].price' {bound}"] * 10


def test_a_body_that_cannot_be_encoded_is_the_callers_fault_not_an_outage(
    scripted: PerKeyServer, real_cache: redis.Redis
) -> None:
    key = new_api_key()
    jobnimbus = JobNimbusClient(key, base_url=scripted.base_url)
    for _ in range(10):  # twice what opens the breaker
        with pytest.raises(UnsendableRequestError, match="could not be sent"):
            guard_upstream("demo", lambda: jobnimbus.create("estimates", {"total": math.inf}))
    assert scripted.seen == []
    assert upstream_breaker("demo")[0].state == "CLOSED"


# --- finding 2: one key's 429 --------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_one_keys_429_backs_off_that_key_only(scripted_mcp: McpServer, scripted: PerKeyServer) -> None:
    limited, other = scripted_mcp, scripted_mcp.with_key(new_api_key())
    scripted.by_key[limited.api_key] = Reply(status=429, body={"message": "slow down"}, headers={"Retry-After": "120"})
    # Uncached reads, and a write: after the first 429 they are held back here, without asking JobNimbus.
    texts = [failed(limited, "get_contacts", {"size": size}) for size in range(1, 8)]
    texts.append(failed(limited, "update_estimate", {"jnid": "est1", "status_name": "Sent"}))
    for size in range(1, 11):
        assert cache_status(succeeded(other, "get_contacts", {"size": size})) == "miss"
    assert breaker_state(scripted_mcp) == "CLOSED"
    assert len(scripted.requests_from(limited.api_key)) == 1
    assert texts[0] == "JobNimbus is rate limiting this API key, retry in 120 s."
    waits = [int(text.removeprefix("JobNimbus is rate limiting this API key, retry in ").split()[0]) for text in texts]
    assert all(110 <= wait <= 120 for wait in waits), texts


def test_a_429_back_off_is_shared_through_redis_and_stale_entries_still_serve(
    scripted: PerKeyServer, real_cache: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = new_api_key()
    fetch = counting_list(key, scripted)
    assert read_through(contacts_read(key), fetch).status == "miss"
    scripted.by_key[key] = Reply(status=429, headers={"Retry-After": "60"})
    engine.engine().l1.clear()
    monkeypatch.setattr(engine, "wall_clock", lambda: time.time() + 2 * 3600)  # past fresh and SWR: ask JobNimbus
    assert read_through(contacts_read(key), fetch).status == "stale"  # the key's own entry answers while it waits
    engine.reset_engine()  # another process: it knows only what Redis holds
    with pytest.raises(KeyBackoffError, match=r"retry in (59|60) s"):
        read_through(contacts_read(key, size=9), fetch)
    assert len(scripted.requests_from(key)) == 2


# --- finding 5c: an absurd Retry-After -------------------------------------------------------------------------------


@pytest.mark.e2e
def test_a_retry_after_of_400_nines_is_a_clean_error(scripted_mcp: McpServer, scripted: PerKeyServer) -> None:
    limited, broken = scripted_mcp, scripted_mcp.with_key(new_api_key())
    scripted.by_key[limited.api_key] = Reply(status=429, headers={"Retry-After": NINES})
    # The wait named is the one this server holds the key back for: KEY_BACKOFF_MAX_S (300 s).
    assert "JobNimbus is rate limiting this API key, retry in 300 s" in failed(limited, "get_contacts", {"size": 1})
    scripted.by_key[broken.api_key] = Reply(status=503, headers={"Retry-After": NINES})
    assert "JobNimbus is unavailable, retry in 86400 s" in failed(broken, "get_contacts", {"size": 1})


@pytest.mark.parametrize("header", [NINES, "9" * 5000, "1" + "0" * 12, "Fri, 31 Dec 9999 23:59:59 GMT"])
def test_retry_after_is_always_a_finite_bounded_wait(header: str) -> None:
    assert parse_retry_after(header, now=time.time()) == MAX_RETRY_AFTER_S
    assert parse_retry_after("²", now=0) is None  # a digit to str.isdigit, not to float()


@pytest.mark.parametrize(("value", "shown"), [(math.inf, 86_400), (math.nan, 30), (None, 30), (0, 30), (2.2, 3)])
def test_waits_are_shown_as_whole_seconds_whatever_the_value(value: float | None, shown: int) -> None:
    assert whole_seconds(value, 30) == shown


# --- finding 11: refused keys ------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_a_refused_key_costs_one_upstream_call(
    mcp_server: McpServer, clean_sandbox: SandboxHandle, real_cache: redis.Redis
) -> None:
    refused = mcp_server.with_key(new_api_key())  # well formed, unknown to JobNimbus
    assert "JobNimbus refused the API key" in failed(refused, "get_contacts", {"size": 1})
    assert sandbox_requests(clean_sandbox) == 1
    for tool, arguments in [("get_contacts", {"size": 2}), ("get_jobs", {}), ("get_account_settings", {})]:
        text = failed(refused, tool, arguments)
        assert "JobNimbus refused the API key" in text
        assert "not sent again" in text
    assert "JobNimbus refused the API key" in failed(refused, "update_estimate", {"jnid": "e1", "status_name": "x"})
    assert sandbox_requests(clean_sandbox) == 1
    assert breaker_state(mcp_server) == "CLOSED"  # a 401 says JobNimbus is up
    assert not succeeded(mcp_server, "get_contacts", {"size": 1}).is_error  # other keys are served


@pytest.mark.e2e
def test_a_key_refused_on_a_miss_stops_getting_its_cached_answers(
    mcp_server: McpServer, clean_sandbox: SandboxHandle, real_cache: redis.Redis, settings: Any
) -> None:
    tune(settings, REFUSED_KEY_TTL_S=1.0)
    assert cache_status(succeeded(mcp_server, "get_contacts", {"size": 3})) == "miss"
    assert cache_status(succeeded(mcp_server, "get_contacts", {"size": 3})) == "hit_l1"
    control(clean_sandbox, "POST", "faults", {"status": 401})  # the key is revoked
    assert "JobNimbus refused the API key" in failed(mcp_server, "get_jobs", {})
    asked = sandbox_requests(clean_sandbox)
    assert "JobNimbus refused the API key" in failed(mcp_server, "get_contacts", {"size": 3})  # cached, withheld
    assert sandbox_requests(clean_sandbox) == asked
    time.sleep(1.1)  # the refusal period ends: the key is asked about again before any cached answer
    assert "JobNimbus refused the API key" in failed(mcp_server, "get_contacts", {"size": 3})
    assert sandbox_requests(clean_sandbox) == asked + 1
    control(clean_sandbox, "DELETE", "faults")  # the key is reinstated
    time.sleep(1.1)
    assert cache_status(succeeded(mcp_server, "get_contacts", {"size": 3})) == "miss"
    assert cache_status(succeeded(mcp_server, "get_contacts", {"size": 3})) == "hit_l1"


@pytest.mark.e2e
def test_a_revoked_key_that_only_hits_cache_is_served_at_most_key_revalidate_s(
    mcp_server: McpServer, clean_sandbox: SandboxHandle, real_cache: redis.Redis, settings: Any
) -> None:
    tune(settings, KEY_REVALIDATE_S=1.0)
    assert cache_status(succeeded(mcp_server, "get_contacts", {"size": 3})) == "miss"
    control(clean_sandbox, "POST", "faults", {"status": 401})  # revoked; the key only ever hits cache
    assert cache_status(succeeded(mcp_server, "get_contacts", {"size": 3})) == "hit_l1"  # within the bound
    time.sleep(1.1)
    asked = sandbox_requests(clean_sandbox)
    assert "JobNimbus refused the API key" in failed(mcp_server, "get_contacts", {"size": 3})
    assert sandbox_requests(clean_sandbox) == asked + 1  # asked JobNimbus before serving the cached answer


def test_a_refusal_is_shared_through_redis_and_kept_in_process_when_redis_is_away(
    scripted: PerKeyServer, real_cache: redis.Redis, settings: Any
) -> None:
    key = new_api_key()
    scripted.by_key[key] = Reply(status=401, body={"message": "Unauthorized"})
    fetch = counting_list(key, scripted)
    with pytest.raises(AuthError):
        read_through(contacts_read(key), fetch)
    assert real_cache.get(keys.caller_key("demo", tenant_id(key))) == b"refused"  # namespaced like every key
    engine.reset_engine()  # another process
    with pytest.raises(KeyRefusedError):
        read_through(contacts_read(key, size=2), fetch)
    assert len(scripted.requests_from(key)) == 1

    other = new_api_key()
    scripted.by_key[other] = scripted.by_key[key]
    tune(settings, REDIS_BREAKER={"FAILURES": 1, "WINDOW_S": 60.0, "OPEN_S": 60.0})
    redis_breaker().record_failure()  # Redis away: the process's own memory answers
    with pytest.raises(AuthError):
        read_through(contacts_read(other), counting_list(other, scripted))
    with pytest.raises(KeyRefusedError):
        read_through(contacts_read(other, size=2), counting_list(other, scripted))
    assert len(scripted.requests_from(other)) == 1


def test_a_late_acceptance_never_lifts_a_refusal_before_it_ends(real_cache: redis.Redis, settings: Any) -> None:
    tune(settings, KEY_REVALIDATE_S=60.0)
    tenant = tenant_id(new_api_key())
    engine.engine().callers.refuse("demo", tenant)  # one process hears 401
    elsewhere = callers.CallerMemory()  # another, whose call sent before the revocation came back 200
    elsewhere.accept("demo", tenant)
    assert real_cache.get(keys.caller_key("demo", tenant)) == b"refused"
    assert engine.engine().callers.shared("demo", tenant).refused_s > 0
    with pytest.raises(KeyRefusedError):
        engine.engine().check_key("demo", tenant)


def contacts_read(key: str, size: int = 5) -> ReadRequest:
    return ReadRequest(
        scope=CacheScope("demo", tenant_id(key)),
        entity="contact",
        op="list",
        policy="contacts",
        args={"size": size},
        tool="get_contacts",
        tags=(list_tag("contact"),),
    )


def counting_list(key: str, server: ScriptedServer) -> Any:
    jobnimbus = JobNimbusClient(key, base_url=server.base_url)
    return lambda: jobnimbus.list("contacts", size=5).records
