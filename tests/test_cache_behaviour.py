"""The cache engine's behaviour, run against fakeredis and the real Redis, compression on and off."""

from __future__ import annotations

import threading
import time
from typing import Any

import orjson
import pytest

from cacheops import api, broadcast, engine, keys, metrics
from cacheops.api import invalidate_tags, list_tag, read_through, record_tag
from cacheops.engine import refresh
from cacheops.errors import UpstreamUnavailableError
from cacheops.policies import set_ttl_override_source
from tests.fixtures.redis import CacheEnv, engine_setting_for

HOUR = 3600


def drop_l1() -> None:
    engine.engine().l1.clear()


def entry_keys(env: CacheEnv) -> list[bytes]:
    prefix = keys.app_key_pattern("demo")[:-1].encode()  # the test namespace is set: the pattern is its own
    return [k for k in env.app_keys() if k.startswith(prefix)]


def unavailable() -> Any:
    raise UpstreamUnavailableError("JobNimbus answered 503", retry_after_s=7)


def test_miss_then_l1_then_l2(cache_backend: CacheEnv) -> None:
    first = cache_backend.read()
    second = cache_backend.read()
    drop_l1()
    third = cache_backend.read()
    assert [first.status, second.status, third.status] == ["miss", "hit_l1", "hit_l2"]
    assert first.value == second.value == third.value == {"n": 1}
    assert cache_backend.calls == ["fetch"]
    assert third.meta()["ttl_s"] == HOUR


def test_equivalent_calls_share_an_entry(cache_backend: CacheEnv) -> None:
    cache_backend.read(cache_backend.request(args={"size": 10, "from": 0, "q": None}))
    again = cache_backend.read(cache_backend.request(args={"from": 0, "size": 10}))
    other = cache_backend.read(cache_backend.request(args={"size": 11, "from": 0}))
    assert (again.status, other.status) == ("hit_l1", "miss")
    assert len(cache_backend.calls) == 2


def test_tenants_never_share_entries(cache_backend: CacheEnv) -> None:
    a = cache_backend.read(cache_backend.request(tenant=api.tenant_id("key-a")), cache_backend.counting("A"))
    b = cache_backend.read(cache_backend.request(tenant=api.tenant_id("key-b")), cache_backend.counting("B"))
    assert (a.status, a.value, b.status, b.value) == ("miss", "A", "miss", "B")
    keys_seen = entry_keys(cache_backend)
    assert len(keys_seen) == 2
    assert not any(b"key-a" in k or b"key-b" in k for k in keys_seen)  # the HMAC, never the key


def test_rejected_key_is_never_answered_from_cache(cache_backend: CacheEnv) -> None:
    cache_backend.read(cache_backend.request(tenant=api.tenant_id("good-key")))

    def rejected() -> Any:
        cache_backend.calls.append("rejected")
        raise PermissionError("401 Unauthorized")

    bad = cache_backend.request(tenant=api.tenant_id("wrong-key"))
    for _ in range(2):
        with pytest.raises(PermissionError):
            cache_backend.read(bad, rejected)
    assert cache_backend.calls == ["fetch", "rejected", "rejected"]


def test_other_errors_propagate_and_are_never_cached(cache_backend: CacheEnv) -> None:
    def broken() -> Any:
        cache_backend.calls.append("broken")
        raise ValueError("bad filter")

    for _ in range(2):
        with pytest.raises(ValueError, match="bad filter"):
            cache_backend.read(fetch=broken)
    assert cache_backend.calls == ["broken", "broken"]
    assert entry_keys(cache_backend) == []


def test_values_over_the_cap_are_served_not_cached(cache_backend: CacheEnv) -> None:
    cache_backend.settings.CACHEOPS_ENGINE = engine_setting_for(cache_backend.namespace, MAX_ITEM_SIZE_KB=1)
    engine.reset_engine()
    big = {"blob": [f"{i:08x}{i * 7919 % 65521:08x}" for i in range(400)]}
    before = metrics.UNCACHEABLE.labels("get_contacts", "too_big")._value.get()
    statuses = [cache_backend.read(fetch=cache_backend.counting(big)).status for _ in range(2)]
    assert statuses == ["miss", "miss"]
    assert entry_keys(cache_backend) == []
    assert metrics.UNCACHEABLE.labels("get_contacts", "too_big")._value.get() == before + 2


def test_compression_applies_above_one_kilobyte(cache_backend: CacheEnv) -> None:
    page = {"results": [{"jnid": f"job{i}", "status_name": "Lead", "description": "roof " * 20} for i in range(50)]}
    cache_backend.read(cache_backend.request(args={"size": 50}), cache_backend.counting(page))
    cache_backend.read(cache_backend.request(args={"size": 1}), cache_backend.counting({"small": True}))
    values: list[bytes] = [cache_backend.raw.get(k) for k in entry_keys(cache_backend)]
    stored = {len(v): v for v in values}
    large, small = stored[max(stored)], stored[min(stored)]
    assert small.startswith(b"{")  # under 1 KB: plain JSON either way
    if cache_backend.compressed:
        assert large.startswith(b"\x28\xb5\x2f\xfd")  # zstd frame
        assert len(large) * 4 < len(orjson.dumps(page))
    else:
        assert orjson.loads(large)["v"] == page


def test_stale_if_error_serves_the_stored_value(cache_backend: CacheEnv, cache_clock: list[float]) -> None:
    cache_backend.read()
    cache_clock[0] += HOUR * 1.6  # past fresh (1 h) and stale-while-revalidate (30 min): only servable on error
    drop_l1()
    outcome = cache_backend.read(fetch=unavailable)
    assert (outcome.status, outcome.value) == ("stale", {"n": 1})
    assert outcome.age_s is not None
    assert outcome.age_s >= HOUR * 1.6


def test_past_the_stale_if_error_window_the_error_is_raised(cache_backend: CacheEnv, cache_clock: list[float]) -> None:
    cache_backend.read()
    cache_clock[0] += HOUR * 26
    drop_l1()
    with pytest.raises(UpstreamUnavailableError):
        cache_backend.read(fetch=unavailable)


def test_fail_fast_with_nothing_cached(cache_backend: CacheEnv) -> None:
    with pytest.raises(UpstreamUnavailableError) as caught:
        cache_backend.read(fetch=unavailable)
    assert caught.value.retry_after_s == 7


def test_open_upstream_breaker_serves_stale_and_fails_fast(cache_backend: CacheEnv, cache_clock: list[float]) -> None:
    cache_backend.settings.CACHEOPS_ENGINE = engine_setting_for(
        cache_backend.namespace, UPSTREAM_BREAKER={"FAILURES": 2, "OPEN_S": 30.0}
    )
    engine.reset_engine()
    cache_backend.read()
    for size in (1, 2):
        with pytest.raises(UpstreamUnavailableError):
            cache_backend.read(cache_backend.request(args={"size": size}), unavailable)
    cache_backend.calls.clear()
    with pytest.raises(UpstreamUnavailableError, match="retry in"):
        cache_backend.read(cache_backend.request(args={"size": 3}))
    cache_clock[0] += HOUR * 1.6
    drop_l1()
    stale = cache_backend.read()
    assert stale.status == "stale"
    assert cache_backend.calls == []  # the breaker kept both calls away from JobNimbus
    with pytest.raises(UpstreamUnavailableError):
        api.guard_upstream("demo", lambda: cache_backend.calls.append("write"))
    assert cache_backend.calls == []


def test_burst_on_soft_expired_key_refreshes_once(cache_backend: CacheEnv, cache_clock: list[float]) -> None:
    cache_backend.read()
    cache_clock[0] += HOUR + 60  # inside stale-while-revalidate
    drop_l1()
    release = threading.Event()

    def slow_refresh() -> Any:
        cache_backend.calls.append("refresh")
        release.wait(5)
        return {"n": "refreshed"}

    outcomes = run_threads(20, lambda: cache_backend.read(fetch=slow_refresh))
    release.set()
    assert engine.engine().wait_idle()
    assert {o.status for o in outcomes} == {"stale"}
    assert {str(o.value) for o in outcomes} == {"{'n': 1}"}
    assert cache_backend.calls == ["fetch", "refresh"]
    drop_l1()
    assert cache_backend.read(fetch=slow_refresh).value == {"n": "refreshed"}
    assert cache_backend.calls == ["fetch", "refresh"]


def test_concurrent_cold_calls_fetch_once_in_process(cache_backend: CacheEnv) -> None:
    started = threading.Event()
    release = threading.Event()

    def slow() -> Any:
        cache_backend.calls.append("fetch")
        started.set()
        release.wait(5)
        return {"n": 1}

    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(cache_backend.read(fetch=slow))) for _ in range(20)]
    for t in threads:
        t.start()
    assert started.wait(5)
    time.sleep(0.05)  # let the other 19 reach the flight; a late one would see the stored value anyway
    release.set()
    for t in threads:
        t.join(10)
    assert cache_backend.calls == ["fetch"]
    statuses = sorted(o.status for o in results)
    assert statuses.count("miss") == 1
    assert set(statuses) <= {"miss", "coalesced", "hit_l1", "hit_l2"}


def test_generation_guard_refuses_a_fetch_that_overlapped_an_invalidation(cache_backend: CacheEnv) -> None:
    in_fetch = threading.Event()
    release = threading.Event()

    def slow_old_value() -> Any:
        cache_backend.calls.append("slow")
        in_fetch.set()
        release.wait(5)
        return {"version": "before the webhook"}

    result: list[Any] = []
    reader = threading.Thread(target=lambda: result.append(cache_backend.read(fetch=slow_old_value)))
    reader.start()
    assert in_fetch.wait(5)
    invalidate_tags("demo", [record_tag("c1")])
    release.set()
    reader.join(10)
    assert result[0].value == {"version": "before the webhook"}  # its caller still gets it
    assert entry_keys(cache_backend) == []  # but it was not stored in Redis...
    after = cache_backend.read(fetch=cache_backend.counting({"version": "after"}))
    assert (after.status, after.value) == ("miss", {"version": "after"})  # ...nor in L1


def test_tag_invalidation_drops_every_tenant_and_only_tagged_entries(cache_backend: CacheEnv) -> None:
    for tenant in ("t1", "t2"):
        cache_backend.read(cache_backend.request(tenant=tenant))
    job = cache_backend.request(entity="job", policy="jobs", tool="get_jobs", tags=(list_tag("job"),))
    cache_backend.read(job)
    elsewhere = cache_backend.request(instance="other", tenant="t1")
    cache_backend.read(elsewhere)
    assert invalidate_tags("demo", [record_tag("c1"), list_tag("contact")]) == 2
    assert not cache_backend.raw.exists(keys.tag_index_key("demo", record_tag("c1")))
    assert cache_backend.raw.get(keys.generation_key("demo", list_tag("contact"))) == b"1"
    assert cache_backend.read(cache_backend.request(tenant="t1")).status == "miss"
    assert cache_backend.read(job).status == "hit_l1"
    assert cache_backend.read(elsewhere).status == "hit_l1"
    assert invalidate_tags("demo", [record_tag("nobody")]) == 0


def test_entity_tag_reaches_details_and_lists(cache_backend: CacheEnv) -> None:
    cache_backend.read(cache_backend.request(op="get", policy="contact_detail", tags=(record_tag("c9"),)))
    cache_backend.read()
    assert invalidate_tags("demo", [keys.entity_tag("contact")]) == 2


def test_invalidation_broadcast_drops_l1_entries(cache_backend: CacheEnv) -> None:
    cache_backend.read()
    eng = engine.engine()
    assert eng.subscriber.ready.wait(5)
    plan = engine.plan(cache_backend.request())
    assert eng.l1.get(plan.key) is not None
    message = orjson.dumps({"o": "another-process", "i": "demo", "t": [list_tag("contact")]})
    cache_backend.raw.publish(keys.invalidation_channel(), message)
    assert wait_until(lambda: eng.l1.get(plan.key) is None)
    assert broadcast.origin() != "another-process"


def test_open_redis_breaker_skips_l2(cache_backend: CacheEnv) -> None:
    cache_backend.settings.CACHEOPS_ENGINE = engine_setting_for(
        cache_backend.namespace, REDIS_BREAKER={"FAILURES": 1, "OPEN_S": 60.0, "PROBE_INTERVAL_S": 0.0}
    )
    engine.reset_engine()
    from cacheops.breakers import redis_breaker

    redis_breaker().record_failure()
    assert redis_breaker().state == "OPEN"
    statuses = [cache_backend.read().status for _ in range(2)]
    assert statuses == ["miss", "hit_l1"]
    assert entry_keys(cache_backend) == []


def test_cache_disabled_is_a_pure_bypass(cache_backend: CacheEnv) -> None:
    cache_backend.settings.CACHEOPS_ENGINE = {**cache_backend.settings.CACHEOPS_ENGINE, "ENABLED": False}
    statuses = [cache_backend.read().status for _ in range(2)]
    assert statuses == ["bypass", "bypass"]
    assert cache_backend.calls == ["fetch", "fetch"]
    assert invalidate_tags("demo", [list_tag("contact")]) == 0
    assert cache_backend.app_keys() == []


def test_ttl_overrides_from_settings_and_the_tuner_hook(cache_backend: CacheEnv) -> None:
    cache_backend.settings.CACHEOPS_ENGINE = engine_setting_for(cache_backend.namespace, TTL_OVERRIDES={"contacts": 60})
    assert cache_backend.read().ttl_s == 60
    set_ttl_override_source(lambda name: 42 if name == "contacts" else None)
    try:
        assert cache_backend.read(cache_backend.request(args={"size": 2})).ttl_s == 42
    finally:
        set_ttl_override_source(None)


def run_threads(n: int, call: Any) -> list[Any]:
    results: list[Any] = []
    lock = threading.Lock()

    def worker() -> None:
        value = call()
        with lock:
            results.append(value)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(results) == n
    return results


def wait_until(condition: Any, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_read_through_is_the_facade(cache_backend: CacheEnv) -> None:
    outcome = read_through(cache_backend.request(), lambda: [1, 2])
    assert outcome.meta() == {"status": "miss", "age_s": 0.0, "ttl_s": HOUR}


def test_xfetch_refreshes_a_hot_key_early_in_the_background(
    cache_backend: CacheEnv, cache_clock: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache_backend.settings.CACHEOPS_ENGINE = engine_setting_for(cache_backend.namespace, XFETCH_BETA=1.0)
    engine.reset_engine()
    monkeypatch.setattr(refresh.random, "random", lambda: 0.9)  # -ln(0.1) = 2.3 fetch durations of lead

    def costly() -> Any:
        cache_backend.calls.append("fetch")
        time.sleep(0.05)
        return {"n": len(cache_backend.calls)}

    cache_backend.read(fetch=costly)
    cache_clock[0] += HOUR - 100  # 100 s before expiry: far more than 2.3 x 50 ms, no early refresh
    drop_l1()
    assert cache_backend.read(fetch=costly).status == "hit_l2"
    assert engine.engine().wait_idle()
    assert cache_backend.calls == ["fetch"]
    cache_clock[0] += 100 - 0.02  # 20 ms before expiry: inside the lead, refreshed in the background
    drop_l1()
    assert cache_backend.read(fetch=costly).status == "hit_l2"
    assert engine.engine().wait_idle()
    assert cache_backend.calls == ["fetch", "fetch"]
