"""Per-tenant throttling: a real Redis counts, a dead Redis lets requests through."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from django.core.cache import cache as django_cache
from django.test import Client
from django_redis.cache import RedisCache

from cacheops.api import tenant_id
from cacheops.breakers import redis_breaker, reset_breakers
from cacheops.errors import CacheBackendError
from mcp_tools.throttling import FixedWindowThrottle, LeaseStore, TenantRateThrottle
from tests.fixtures.servers import new_api_key

pytestmark = pytest.mark.usefixtures("fake_catalog")

CALL = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {}}})


@pytest.fixture(autouse=True)
def _throttle_not_paused(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    reset_breakers()  # the throttles stand aside while the process's Redis breaker is not closed
    monkeypatch.setattr(FixedWindowThrottle, "_leases", LeaseStore())
    yield
    reset_breakers()


def post(client: Client, key: str | None) -> Any:
    headers = {"X-JobNimbus-Api-Key": key} if key else {}
    return client.post("/mcp", data=CALL, content_type="application/json", headers=headers)


@pytest.mark.redis
def test_tenant_over_its_rate_gets_429_with_retry_after(client: Client, settings: Any) -> None:
    settings.MCP = {**settings.MCP, "THROTTLE_RATE": "2/min"}
    key = new_api_key()
    assert [post(client, key).status_code for _ in range(2)] == [200, 200]
    refused = post(client, key)
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused.json()["error"]["data"]["retry_after_s"] == int(refused["Retry-After"])
    assert post(client, new_api_key()).status_code == 200  # another tenant has its own budget


@pytest.mark.redis
def test_compat_endpoint_shares_the_budget(client: Client, settings: Any) -> None:
    settings.MCP = {**settings.MCP, "THROTTLE_RATE": "1/min"}
    key = new_api_key()
    assert post(client, key).status_code == 200
    body = orjson.dumps({"name": "echo", "arguments": {"text": "x"}})
    refused = client.post(
        "/mcp/tools/call", data=body, content_type="application/json", headers={"X-JobNimbus-Api-Key": key}
    )
    assert refused.status_code == 429
    assert refused.json()["success"] is False
    assert "Retry-After" in refused


def test_callers_without_key_are_not_counted(client: Client, settings: Any) -> None:
    settings.MCP = {**settings.MCP, "THROTTLE_RATE": "1/min"}
    ping = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"})
    statuses = {client.post("/mcp", data=ping, content_type="application/json").status_code for _ in range(3)}
    assert statuses == {200}


def test_dead_redis_fails_open_and_stands_aside_once_the_breaker_opens(
    client: Client, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The throttle's failures count on the process's one Redis breaker; once it opens, the throttle asks Redis no
    # more (before issue 12 the throttle paused itself after its first failure).
    settings.CACHEOPS_ENGINE = {**settings.CACHEOPS_ENGINE, "REDIS_BREAKER": {"FAILURES": 2, "PROBE_INTERVAL_S": 0}}
    reset_breakers()
    dead = RedisCache("redis://127.0.0.1:1/0", {"OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2}})
    monkeypatch.setattr(TenantRateThrottle, "cache", dead)
    attempts: list[str] = []
    real_count = TenantRateThrottle._count

    def counting(self: TenantRateThrottle, key: str, amount: int) -> int:
        attempts.append(key)
        return real_count(self, key, amount)

    monkeypatch.setattr(TenantRateThrottle, "_count", counting)
    settings.MCP = {**settings.MCP, "THROTTLE_RATE": "1/min"}
    key = new_api_key()
    assert [post(client, key).status_code for _ in range(4)] == [200, 200, 200, 200]
    assert len(attempts) == 2  # each failure counted; once the breaker opened the throttle stopped asking Redis
    assert redis_breaker().state == "OPEN"


@pytest.mark.redis
def test_unreadable_counter_is_dropped_not_fatal(client: Client, settings: Any) -> None:
    settings.MCP = {**settings.MCP, "THROTTLE_RATE": "5/min"}
    key = new_api_key()
    throttle = TenantRateThrottle(tenant_id(key))
    throttle.allow_request(None, None)  # learns this window's key (and counts one request)
    raw = django_cache.client.get_client(write=True)  # type: ignore[attr-defined]
    raw.set(django_cache.make_key(throttle.key), b"\x80not-a-counter", ex=60)
    assert post(client, key).status_code == 200
    assert post(client, key).status_code == 200
    assert int(raw.get(django_cache.make_key(throttle.key))) == 1  # a fresh window holding the second request


@pytest.mark.redis
def test_counter_key_expires_with_its_window(client: Client, settings: Any) -> None:
    settings.MCP = {**settings.MCP, "THROTTLE_RATE": "5/min"}
    key = new_api_key()
    assert post(client, key).status_code == 200
    throttle = TenantRateThrottle(tenant_id(key))
    throttle.allow_request(None, None)
    raw = django_cache.client.get_client(write=True)  # type: ignore[attr-defined]
    assert int(raw.get(django_cache.make_key(throttle.key))) == 2
    assert 0 < raw.ttl(django_cache.make_key(throttle.key)) <= 61


@pytest.mark.redis
def test_processes_share_the_budget_and_most_requests_skip_redis(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.MCP = {**settings.MCP, "THROTTLE_RATE": "100/hour"}  # blocks of 2
    tenant = tenant_id(new_api_key())
    trips: list[int] = []
    real_count = TenantRateThrottle._count

    def counting(self: TenantRateThrottle, key: str, amount: int) -> int:
        trips.append(amount)
        return real_count(self, key, amount)

    monkeypatch.setattr(TenantRateThrottle, "_count", counting)
    allowed = 0
    for n in range(130):
        if n % 2:  # every other request lands in "another process": its own, empty set of leases
            monkeypatch.setattr(FixedWindowThrottle, "_leases", LeaseStore())
        allowed += TenantRateThrottle(tenant).allow_request(None, None)
    assert allowed <= 100  # never more than the rate across processes
    monkeypatch.setattr(FixedWindowThrottle, "_leases", LeaseStore())
    single = tenant_id(new_api_key())
    trips.clear()
    results = [TenantRateThrottle(single).allow_request(None, None) for _ in range(110)]
    assert results.count(True) == 100  # one process spends every token it reserved
    assert len(trips) == 51  # and asked Redis once per block of 2, plus once to learn the budget was gone


def test_threads_queued_behind_a_failed_reservation_fail_open_without_asking_redis_again(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Redis that hangs: the reservation in flight waits out its timeout; the threads queued behind it take its
    # failure as their answer, so no request waits on more than one timeout (the breaker counts that one failure).
    settings.MCP = {**settings.MCP, "THROTTLE_RATE": "5/min"}
    calls: list[int] = []

    def hanging(self: TenantRateThrottle, key: str, amount: int) -> int:
        calls.append(amount)
        time.sleep(0.3)
        raise CacheBackendError("Redis is unreachable: TimeoutError")

    monkeypatch.setattr(TenantRateThrottle, "_count", hanging)
    tenant = tenant_id(new_api_key())
    start = threading.Barrier(8)
    verdicts: list[bool] = []

    def ask() -> None:
        start.wait()
        verdicts.append(TenantRateThrottle(tenant).allow_request(None, None))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert verdicts == [True] * 8
    assert calls == [1]
    assert time.monotonic() - began < 0.6  # one timeout, not eight in a row
