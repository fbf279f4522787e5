"""Issue 11, findings 3 and 4: no caller can degrade other tenants through the throttle or the instance header.

- Finding 3: the throttle counted per key only (random keys were free: each one an upstream 401), and threads of
  one process overwrote each other's lease, so parallel callers got far less than the rate.
- Finding 4: any key could name any instance; its writes invalidated that instance's cache for every tenant.

Every test counts under a client address and instance names of its own (counters live in the shared real Redis).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from django.core.management import call_command
from django.test import Client, RequestFactory

from cacheops.api import tenant_id
from cacheops.breakers import reset_breakers
from mcp_tools import binding
from mcp_tools.jobnimbus.errors import AuthError
from mcp_tools.tenancy import client_address
from mcp_tools.throttling import (
    AddressKeysThrottle,
    AddressRateThrottle,
    FixedWindowThrottle,
    InstanceRateThrottle,
    LeaseStore,
    TenantRateThrottle,
)
from tests.fixtures.catalog import FakeJobNimbus
from tests.fixtures.redis import CacheEnv, require_real_redis
from tests.fixtures.servers import FakeCatalog, new_api_key

ROOT = Path(__file__).resolve().parent.parent
PING = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"})


@pytest.fixture(autouse=True)
def _fresh_throttle_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    require_real_redis()
    reset_breakers()  # the throttles stand aside while the process's Redis breaker is not closed
    monkeypatch.setattr(FixedWindowThrottle, "_leases", LeaseStore())
    monkeypatch.setattr(AddressKeysThrottle, "_admitted", OrderedDict())
    yield
    reset_breakers()


def new_address() -> str:
    """Return an IPv6 address in a /64 no other test (or run) counts under."""
    block = secrets.token_hex(4)
    return f"2001:db8:{block[:4]}:{block[4:]}::1"


def new_instance() -> str:
    return "inst-" + secrets.token_hex(5)


def call_body(name: str = "echo", **arguments: Any) -> bytes:
    arguments = arguments or {"text": "x"}
    params = {"name": name, "arguments": arguments}
    return orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params})


def post(client: Client, body: bytes, key: str, address: str, **headers: str) -> Any:
    return client.post(
        "/mcp",
        data=body,
        content_type="application/json",
        headers={"X-JobNimbus-Api-Key": key, **headers},
        REMOTE_ADDR=address,
    )


def compat_call(client: Client, key: str, instance: str, tool: str, arguments: dict[str, Any]) -> Any:
    return client.post(
        "/mcp/tools/call",
        data=orjson.dumps({"name": tool, "arguments": arguments}),
        content_type="application/json",
        headers={"X-JobNimbus-Api-Key": key, "X-JobNimbus-Instance": instance},
        REMOTE_ADDR=new_address(),
    )


def two_instances(settings: Any) -> tuple[str, str]:
    a, b = new_instance(), new_instance()
    settings.JOBNIMBUS_INSTANCES = {a: {"api_key": None, "webhook_secret": None}, b: {"api_key": None}}
    return a, b


def in_threads(threads: int, work: Callable[[], int]) -> list[int]:
    """Run `work` in `threads` threads released at once; return what each returned."""
    start = threading.Barrier(threads)
    results: list[int] = []
    lock = threading.Lock()

    def run() -> None:
        start.wait()
        value = work()
        with lock:
            results.append(value)

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(60)
    return results


def window_start(monkeypatch: pytest.MonkeyPatch, seconds: int) -> float:
    """Stop the throttle's clock at the start of the current window of `seconds`."""
    now = float(int(time.time() // seconds) * seconds)
    monkeypatch.setattr(FixedWindowThrottle, "timer", staticmethod(lambda: now))
    return now


# --- Finding 3: random keys, and budgets per address and per instance ------------------------------------------


@pytest.mark.redis
@pytest.mark.parametrize("cache_backend", ["real"], indirect=True)
def test_random_keys_from_one_address_are_refused_after_its_key_budget_without_an_upstream_call(
    client: Client, settings: Any, cache_backend: CacheEnv, fake_jobnimbus: FakeJobNimbus
) -> None:
    settings.MCP = {**settings.MCP, "THROTTLE_ADDRESS_KEYS": "20/min"}
    fake_jobnimbus.fail = AuthError("invalid API key")  # JobNimbus knows none of them
    address = new_address()
    body = call_body("get_contacts", size=1)
    statuses = [post(client, body, new_api_key(), address).status_code for _ in range(400)]
    assert statuses == [200] * 20 + [429] * 380  # 200: the tool's isError result saying JobNimbus refused the key
    assert len(fake_jobnimbus.calls) == 20  # the 380 refused calls never reached JobNimbus
    refused = post(client, body, new_api_key(), address)
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused.json()["error"]["data"]["throttle"] == "address_keys"
    assert "different API keys" in refused.json()["error"]["message"]
    assert post(client, body, new_api_key(), new_address()).status_code == 200  # other addresses are not affected
    assert len(fake_jobnimbus.calls) == 21


@pytest.mark.redis
def test_a_key_already_admitted_keeps_working_when_its_address_tries_new_keys(
    client: Client, settings: Any, fake_catalog: FakeCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.MCP = {**settings.MCP, "THROTTLE_ADDRESS_KEYS": "3/min"}
    address, regular = new_address(), new_api_key()
    assert post(client, call_body(), regular, address).status_code == 200
    assert [post(client, call_body(), new_api_key(), address).status_code for _ in range(4)] == [200, 200, 429, 429]
    monkeypatch.setattr(AddressKeysThrottle, "_admitted", OrderedDict())  # as seen by another process: from Redis
    assert post(client, call_body(), regular, address).status_code == 200


@pytest.mark.redis
def test_the_address_rate_bounds_requests_across_its_keys(
    client: Client, settings: Any, fake_catalog: FakeCatalog
) -> None:
    settings.MCP = {**settings.MCP, "THROTTLE_ADDRESS_RATE": "30/min"}
    address = new_address()
    keys = [new_api_key() for _ in range(3)]
    statuses = [post(client, call_body(), key, address).status_code for _ in range(20) for key in keys]
    assert statuses.count(200) == 30
    refused = post(client, call_body(), keys[0], address)
    assert refused.status_code == 429
    assert refused.json()["error"]["data"]["throttle"] == "address"
    assert "Retry-After" in refused
    assert post(client, call_body(), keys[0], new_address()).status_code == 200  # the key itself has budget left


@pytest.mark.redis
def test_a_key_over_its_own_rate_does_not_spend_its_neighbours_address_budget(
    client: Client, settings: Any, fake_catalog: FakeCatalog
) -> None:
    settings.MCP = {**settings.MCP, "THROTTLE_RATE": "5/min", "THROTTLE_ADDRESS_RATE": "20/min"}
    address = new_address()
    noisy = new_api_key()
    assert [post(client, PING, noisy, address).status_code for _ in range(50)].count(200) == 5
    neighbours = [new_api_key() for _ in range(3)]
    statuses = [post(client, PING, key, address).status_code for key in neighbours for _ in range(5)]
    assert statuses == [200] * 15  # 5 + 15 = the address's 20: the noisy key's 45 refusals cost it nothing


@pytest.mark.redis
def test_the_instance_rate_bounds_tool_calls_across_keys_and_addresses(
    client: Client, settings: Any, fake_catalog: FakeCatalog
) -> None:
    a, b = two_instances(settings)
    settings.MCP = {**settings.MCP, "THROTTLE_INSTANCE_RATE": "20/min"}
    callers = [(new_api_key(), new_address()) for _ in range(5)]
    statuses = [
        post(client, call_body(), key, address, **{"X-JobNimbus-Instance": a}).status_code
        for _ in range(6)
        for key, address in callers
    ]
    assert statuses.count(200) == 20
    refused = post(client, call_body(), new_api_key(), new_address(), **{"X-JobNimbus-Instance": a})
    assert refused.status_code == 429
    assert refused.json()["error"]["data"]["throttle"] == "instance"
    assert a in refused.json()["error"]["message"]
    # Another instance has its own budget, and calls that reach no instance (ping) are not charged to one.
    assert post(client, call_body(), new_api_key(), new_address(), **{"X-JobNimbus-Instance": b}).status_code == 200
    key, address = callers[0]
    assert post(client, PING, key, address, **{"X-JobNimbus-Instance": a}).status_code == 200


@pytest.mark.redis
def test_a_caller_refused_by_its_own_budget_spends_nothing_of_the_instance_budget(
    client: Client, settings: Any, fake_catalog: FakeCatalog
) -> None:
    (instance, _) = two_instances(settings)
    settings.MCP = {**settings.MCP, "THROTTLE_RATE": "5/min", "THROTTLE_INSTANCE_RATE": "20/min"}
    named = {"X-JobNimbus-Instance": instance}
    noisy, noisy_address = new_api_key(), new_address()
    assert [post(client, call_body(), noisy, noisy_address, **named).status_code for _ in range(100)].count(200) == 5
    legit = [(new_api_key(), new_address()) for _ in range(3)]
    statuses = [
        post(client, call_body(), key, address, **named).status_code for key, address in legit for _ in range(5)
    ]
    assert statuses == [200] * 15  # the instance's 20 = the noisy key's 5 admitted calls + the others' 15


@pytest.mark.redis
def test_a_spoofed_forwarded_for_is_ignored_unless_a_proxy_is_trusted(
    client: Client, settings: Any, fake_catalog: FakeCatalog
) -> None:
    settings.MCP = {**settings.MCP, "THROTTLE_ADDRESS_KEYS": "3/min"}
    address = new_address()
    statuses = [
        post(client, call_body(), new_api_key(), address, **{"X-Forwarded-For": new_address()}).status_code
        for _ in range(5)
    ]
    assert statuses == [200, 200, 200, 429, 429]  # the header is the client's word: not believed by default

    settings.TRUSTED_PROXY_COUNT = 1
    proxy, alice, bob = new_address(), new_address(), new_address()

    def via_proxy(client_said: str) -> int:
        forwarded = f"{new_address()}, {client_said}"  # whatever the client sent, then what the proxy appended
        return post(client, call_body(), new_api_key(), proxy, **{"X-Forwarded-For": forwarded}).status_code

    assert [via_proxy(alice) for _ in range(4)] == [200, 200, 200, 429]
    assert [via_proxy(bob) for _ in range(3)] == [200, 200, 200]  # behind the proxy, each client has its budget


@pytest.mark.parametrize(
    ("remote", "forwarded", "hops", "expected"),
    [
        ("203.0.113.7", "198.51.100.1", 0, "203.0.113.7"),
        ("203.0.113.7", "198.51.100.1, 192.0.2.9", 1, "192.0.2.9"),
        ("203.0.113.7", "198.51.100.1, 192.0.2.9, 203.0.113.1", 2, "192.0.2.9"),
        ("203.0.113.7", "192.0.2.9", 2, "203.0.113.7"),  # fewer entries than proxies: not through them
        ("203.0.113.7", "", 1, "203.0.113.7"),
        ("203.0.113.7", "192.0.2.9:51234", 1, "192.0.2.9"),
        ("2001:db8:1:2:3:4:5:6", "", 0, "2001:db8:1:2::/64"),
        ("203.0.113.7", "[2001:db8::9]:443", 1, "2001:db8::/64"),
        ("::ffff:192.0.2.1", "", 0, "192.0.2.1"),
        ("", "", 0, "unknown"),
        ("203.0.113.7", "not-an-address", 1, "203.0.113.7"),
        ("not-an-address", "", 0, "unknown"),
    ],
)
def test_client_address(settings: Any, remote: str, forwarded: str, hops: int, expected: str) -> None:
    settings.TRUSTED_PROXY_COUNT = hops
    request = RequestFactory().post("/mcp", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    assert client_address(request) == expected


# --- Finding 3: parallel callers get exactly the rate -------------------------------------------------------------


@pytest.mark.redis
def test_eight_threads_at_a_window_start_are_admitted_exactly_the_rate(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.MCP = {**settings.MCP, "THROTTLE_RATE": "400/min"}  # blocks of 8: the old lease race lost most of them
    window_start(monkeypatch, 60)
    key, address = new_api_key(), new_address()

    def pings() -> int:
        client = Client()  # one per thread, like one connection each
        return sum(post(client, PING, key, address).status_code == 200 for _ in range(70))

    assert sum(in_threads(8, pings)) == 400


@pytest.mark.redis
@pytest.mark.parametrize("throttle", [TenantRateThrottle, AddressRateThrottle, InstanceRateThrottle])
def test_every_budget_admits_exactly_its_rate_to_parallel_threads(
    settings: Any, monkeypatch: pytest.MonkeyPatch, throttle: type[FixedWindowThrottle]
) -> None:
    rates = ("THROTTLE_RATE", "THROTTLE_ADDRESS_RATE", "THROTTLE_INSTANCE_RATE")
    settings.MCP = {**settings.MCP, **dict.fromkeys(rates, "500/min")}
    window_start(monkeypatch, 60)
    ident = "ident-" + secrets.token_hex(6)
    admitted = in_threads(8, lambda: sum(throttle(ident).allow_request(None, None) for _ in range(100)))
    assert sum(admitted) == 500


WORKER = """
import sys, threading, django
django.setup()
from mcp_tools.throttling import FixedWindowThrottle, TenantRateThrottle
now = float(sys.argv[2])
FixedWindowThrottle.timer = staticmethod(lambda: now)
admitted, lock = [0], threading.Lock()
def run():
    while TenantRateThrottle(sys.argv[1]).allow_request(None, None):  # until this process is refused
        with lock:
            admitted[0] += 1
pool = [threading.Thread(target=run) for _ in range(4)]
[t.start() for t in pool]
[t.join() for t in pool]
print(admitted[0])
"""


@pytest.mark.redis
@pytest.mark.slow
def test_processes_together_are_admitted_exactly_the_rate_never_more(settings: Any) -> None:
    url = require_real_redis()
    tenant = "t-" + secrets.token_hex(8)
    now = str(float(int(time.time() // 3600) * 3600))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "jobnimbus_site.settings",
        "PYTHONPATH": str(ROOT),
        "REDIS_URL": url,
        "MCP_THROTTLE_RATE": "300/hour",
        "DJANGO_SECRET_KEY": "x" * 40,
        "LOG_LEVEL": "ERROR",
    }
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, tenant, now], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    counts = [int(worker.communicate(timeout=120)[0].strip()) for worker in workers]
    assert sum(counts) == 300, counts


# --- Finding 4: a key names one instance -------------------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.parametrize("cache_backend", ["real"], indirect=True)
def test_a_key_bound_to_one_instance_cannot_write_on_another_and_leaves_its_cache_alone(
    client: Client, settings: Any, cache_backend: CacheEnv, fake_jobnimbus: FakeJobNimbus
) -> None:
    a, b = two_instances(settings)
    fake_jobnimbus.data["contacts"] = [{"jnid": "c1", "display_name": "Ada", "is_active": True}]
    tenant_of_b, key = new_api_key(), new_api_key()
    assert compat_call(client, tenant_of_b, b, "get_contacts", {"size": 10})["X-Cache"] == "MISS"
    assert compat_call(client, tenant_of_b, b, "get_contacts", {"size": 10})["X-Cache"].startswith("HIT")
    assert compat_call(client, key, a, "get_contacts", {"size": 10}).json()["success"] is True  # binds key to a

    refused = compat_call(client, key, b, "create_contact", {"first_name": "Eve", "last_name": "Mallory"})
    assert refused.status_code == 403
    body = refused.json()
    assert body["success"] is False
    assert body["header"] == "X-JobNimbus-Instance"
    assert body["bound_instance"] == a
    assert "X-JobNimbus-Instance" in body["error"]
    assert body["key_id"] == tenant_id(key)
    assert [op for op, _, _ in fake_jobnimbus.calls if op == "create"] == []  # JobNimbus never saw the write
    assert compat_call(client, tenant_of_b, b, "get_contacts", {"size": 10})["X-Cache"].startswith("HIT")  # untouched

    assert compat_call(client, key, b, "get_contacts", {"size": 10}).status_code == 403  # reads on b too
    written = compat_call(client, key, a, "create_contact", {"first_name": "Eve", "last_name": "Mallory"})
    assert written.json()["success"] is True  # on its own instance the key writes as before


@pytest.mark.redis
def test_the_refusal_on_the_json_rpc_endpoint_names_the_header(
    client: Client, settings: Any, fake_catalog: FakeCatalog
) -> None:
    a, b = two_instances(settings)
    key, address = new_api_key(), new_address()
    assert post(client, call_body(), key, address, **{"X-JobNimbus-Instance": a}).status_code == 200
    refused = post(client, call_body(), key, address, **{"X-JobNimbus-Instance": b})
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == -32600
    assert error["data"]["header"] == "X-JobNimbus-Instance"
    assert error["data"]["bound_instance"] == a
    assert f"bound to JobNimbus instance {a!r}" in error["message"]
    assert len(fake_catalog.calls) == 1
    # Handshake and list never touch an instance: not refused, and they bind nothing.
    assert post(client, PING, key, address, **{"X-JobNimbus-Instance": b}).status_code == 200
    other = new_api_key()
    assert post(client, PING, other, address, **{"X-JobNimbus-Instance": b}).status_code == 200
    assert post(client, call_body(), other, address, **{"X-JobNimbus-Instance": a}).status_code == 200


@pytest.mark.redis
def test_refused_calls_spend_nothing_of_the_named_instance_budget(
    client: Client, settings: Any, fake_catalog: FakeCatalog
) -> None:
    a, b = two_instances(settings)
    settings.MCP = {**settings.MCP, "THROTTLE_INSTANCE_RATE": "10/min"}
    rogue, address = new_api_key(), new_address()
    assert post(client, call_body(), rogue, address, **{"X-JobNimbus-Instance": a}).status_code == 200
    assert {
        post(client, call_body(), rogue, address, **{"X-JobNimbus-Instance": b}).status_code for _ in range(50)
    } == {403}
    tenant_of_b = new_api_key()
    statuses = [
        post(client, call_body(), tenant_of_b, new_address(), **{"X-JobNimbus-Instance": b}).status_code
        for _ in range(12)
    ]
    assert statuses == [200] * 10 + [429] * 2  # b's whole budget is its own tenants'


@pytest.mark.redis
def test_staff_release_a_binding_and_the_key_binds_again(
    client: Client, settings: Any, fake_catalog: FakeCatalog, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = two_instances(settings)
    key, address = new_api_key(), new_address()
    assert post(client, call_body(), key, address, **{"X-JobNimbus-Instance": a}).status_code == 200
    assert post(client, call_body(), key, address, **{"X-JobNimbus-Instance": b}).status_code == 403
    call_command("release_key_binding", tenant_id(key))
    assert "released" in capsys.readouterr().out
    assert post(client, call_body(), key, address, **{"X-JobNimbus-Instance": b}).status_code == 200
    assert post(client, call_body(), key, address, **{"X-JobNimbus-Instance": a}).status_code == 403


@pytest.mark.redis
def test_a_binding_to_an_instance_no_longer_configured_is_replaced(
    client: Client, settings: Any, fake_catalog: FakeCatalog
) -> None:
    a, b = two_instances(settings)
    key, address = new_api_key(), new_address()
    assert post(client, call_body(), key, address, **{"X-JobNimbus-Instance": a}).status_code == 200
    settings.JOBNIMBUS_INSTANCES = {b: {"api_key": None}, new_instance(): {"api_key": None}}  # a was removed
    binding._memo.clear()  # as after a restart with the new configuration
    assert post(client, call_body(), key, address, **{"X-JobNimbus-Instance": b}).status_code == 200


@pytest.mark.redis
def test_a_first_binding_lasts_an_hour_and_a_key_in_use_thirty_days(
    client: Client, settings: Any, fake_catalog: FakeCatalog
) -> None:
    a, _ = two_instances(settings)
    key, address = new_api_key(), new_address()
    assert post(client, call_body(), key, address, **{"X-JobNimbus-Instance": a}).status_code == 200
    raw = binding.cache.client.get_client(write=True)  # type: ignore[attr-defined]
    stored = binding.redis_key(tenant_id(key))
    assert raw.get(stored) == a.encode()
    assert 3500 < raw.ttl(stored) <= 3600  # a key tried once (a random one) is forgotten within the hour
    binding._memo.clear()  # another process, or this one five minutes later
    assert post(client, call_body(), key, address, **{"X-JobNimbus-Instance": a}).status_code == 200
    assert raw.ttl(stored) > 29 * 86_400


def test_strict_mode_admits_only_keys_registered_for_the_instance(
    client: Client, settings: Any, fake_catalog: FakeCatalog
) -> None:
    a, b = two_instances(settings)
    key, other = new_api_key(), new_api_key()
    digests = {a: frozenset({hashlib.sha256(key.encode()).hexdigest()}), b: frozenset()}
    settings.MCP = {**settings.MCP, "KEY_INSTANCE_BINDING": "strict", "KEY_SHA256": digests}
    address = new_address()
    assert post(client, call_body(), key, address, **{"X-JobNimbus-Instance": a}).status_code == 200
    refused = post(client, call_body(), key, address, **{"X-JobNimbus-Instance": b})
    assert refused.status_code == 403
    assert refused.json()["error"]["data"]["key_sha256"] == hashlib.sha256(key.encode()).hexdigest()
    assert post(client, call_body(), other, address, **{"X-JobNimbus-Instance": a}).status_code == 403
    assert len(fake_catalog.calls) == 1


def test_with_binding_off_any_key_names_any_instance(client: Client, settings: Any, fake_catalog: FakeCatalog) -> None:
    a, b = two_instances(settings)
    settings.MCP = {**settings.MCP, "KEY_INSTANCE_BINDING": "off"}
    key, address = new_api_key(), new_address()
    for instance in (a, b, a):
        assert post(client, call_body(), key, address, **{"X-JobNimbus-Instance": instance}).status_code == 200


# --- Settings --------------------------------------------------------------------------------------------------------


def _settings_check(overrides: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBNIMBUS_", "MCP_", "DJANGO_"))}
    env.update({"DJANGO_SECRET_KEY": "x" * 40, "PYTHONPATH": str(ROOT), **overrides})
    code = (
        "import django; django.setup(); from mcp_tools.conf import mcp_setting as m; "
        "print(m('THROTTLE_ADDRESS_RATE'), m('THROTTLE_INSTANCE_RATE'), m('THROTTLE_ADDRESS_KEYS'))"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "DJANGO_SETTINGS_MODULE": "jobnimbus_site.settings"},
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )


def test_default_budgets_follow_the_key_rate() -> None:
    result = _settings_check({"MCP_THROTTLE_RATE": "100/hour"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["200/hour", "500/hour", "120/min"]


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"MCP_THROTTLE_ADDRESS_RATE": "lots"}, "MCP_THROTTLE_ADDRESS_RATE"),
        ({"MCP_THROTTLE_INSTANCE_RATE": "0/min"}, "MCP_THROTTLE_INSTANCE_RATE"),
        ({"JOBNIMBUS_KEY_INSTANCE_BINDING": "loose"}, "JOBNIMBUS_KEY_INSTANCE_BINDING"),
        ({"JOBNIMBUS_KEY_INSTANCE_BINDING": "strict"}, "JOBNIMBUS_KEY_SHA256_DEMO"),
        ({"JOBNIMBUS_KEY_SHA256_DEMO": "abc"}, "JOBNIMBUS_KEY_SHA256_DEMO"),
    ],
)
def test_malformed_settings_name_the_variable(overrides: dict[str, str], named: str) -> None:
    result = _settings_check(overrides)
    assert result.returncode != 0
    assert named in result.stderr
    assert "ImproperlyConfigured" in result.stderr
