"""Units of the cache engine that need no Redis: keys, codec, policies, L1, breakers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from django_redis.exceptions import CompressorError

from cacheops import keys, metrics
from cacheops.breakers import ConsecutiveBreaker, WindowBreaker
from cacheops.l1 import L1Cache, L1Entry
from cacheops.policies import DEFAULT_POLICIES, base_policy, effective_policy, set_ttl_override_source
from cacheops.serializers import OrjsonSerializer, ZstdCompressor


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_normalisation_drops_none_and_sorts() -> None:
    a = keys.normalise_args({"size": 10, "q": None, "from": 0})
    b = keys.normalise_args({"from": 0, "size": 10})
    assert keys.args_hash(a) == keys.args_hash(b)
    assert keys.args_hash({"f": {"x": 1, "y": 2}}) == keys.args_hash({"f": {"y": 2, "x": 1}})


def test_lists_keep_their_order() -> None:
    assert keys.args_hash({"ids": [1, 2]}) != keys.args_hash({"ids": [2, 1]})


def test_entry_key_shape_separates_tenants(settings: object) -> None:
    key_a = keys.entry_key("demo", "tA", "contact", "list", {"size": 1})
    key_b = keys.entry_key("demo", "tB", "contact", "list", {"size": 1})
    assert key_a.startswith("jn:v1:{demo}:tA:contact:list:")  # the instance is the Redis Cluster hash tag
    assert key_a != key_b
    assert keys.tag_index_key("demo", "rec:1") == "jn:v1:tag:{demo}:rec:1"


def test_serializer_is_json_and_compressor_only_above_threshold() -> None:
    serializer, compressor = OrjsonSerializer({}), ZstdCompressor({"COMPRESS_MIN_LENGTH": 1024})
    small = serializer.dumps({"a": 1})
    assert small == b'{"a":1}'
    assert compressor.compress(small) == small
    large = serializer.dumps({"rows": ["same text"] * 500})
    packed = compressor.compress(large)
    assert packed[:4] == b"\x28\xb5\x2f\xfd"
    assert len(packed) < len(large) // 4
    assert serializer.loads(compressor.decompress(packed)) == orjson.loads(large)
    with pytest.raises(CompressorError):
        compressor.decompress(small)


def test_policies_follow_the_plan_and_overrides() -> None:
    minutes = {name: policy.fresh_s // 60 for name, policy in DEFAULT_POLICIES.items()}
    assert minutes["users"] == 120
    assert minutes["webhooks"] == 180
    assert minutes["tasks"] == 10
    assert minutes["contact_search"] == 30
    assert minutes["job_search"] == 15
    with pytest.raises(ValueError, match="unknown cache policy 'nope'"):
        base_policy("nope")
    set_ttl_override_source(lambda name: 90 if name == "tasks" else None)
    try:
        assert effective_policy("tasks").fresh_s == 90
        assert effective_policy("users").fresh_s == 7200
    finally:
        set_ttl_override_source(None)


def entry(size: int = 10, tags: tuple[str, ...] = ("list:contact",), expires: float = 1e12) -> L1Entry:
    return L1Entry({"v": 1, "t": 0.0}, "demo", frozenset(tags), size, expires)


def test_l1_is_bounded_by_entries_and_bytes() -> None:
    l1 = L1Cache(max_entries=3, max_bytes=100)
    for i in range(4):
        l1.put(f"k{i}", entry())
    assert l1.get("k0") is None
    assert l1.stats() == {"entries": 3, "bytes": 30}
    l1.put("big", entry(size=95))
    assert l1.stats()["bytes"] <= 100
    assert l1.put("huge", entry(size=101)) is False


def test_l1_expires_and_drops_by_tag_and_refuses_stores_after_invalidation() -> None:
    l1 = L1Cache(10, 1000)
    l1.put("old", entry(expires=5.0))
    assert l1.get("old", now=6.0) is None
    seen = l1.generations("demo", ["list:contact"])
    l1.put("a", entry())
    assert l1.invalidate("demo", ["list:contact"]) == 1
    assert l1.put("late", entry(), seen) is False
    seen = l1.generations("demo", ["list:contact"])
    l1.clear()
    assert l1.put("after-clear", entry(), seen) is False


def test_l1_tag_index_drops_only_tagged_entries_and_forgets_evicted_ones() -> None:
    l1 = L1Cache(max_entries=3, max_bytes=1000)
    l1.put("a", entry(tags=("list:job", "rel:J1")))
    l1.put("b", entry(tags=("list:job",)))
    l1.put("c", entry(tags=("rec:C1",)))
    l1.put("b", entry(tags=("rec:B1",)))  # replaced: no longer under list:job
    l1.put("d", entry(tags=("list:job",)))  # evicts the least recently used, "a"
    assert l1.get("a") is None
    assert l1.invalidate("demo", ["rel:J1"]) == 0  # the evicted entry left the index with it
    assert l1.invalidate("demo", ["list:job"]) == 1  # only "d"; "b" moved to another tag
    assert l1.get("b") is not None
    assert l1.get("c") is not None
    assert l1.invalidate("other-instance", ["rec:C1"]) == 0
    assert l1.invalidate("demo", ["rec:C1", "rec:B1"]) == 2
    assert l1.stats()["entries"] == 0  # unreadable at once; memory comes back with reap()
    assert l1.reap() == 3
    assert l1.stats() == {"entries": 0, "bytes": 0}
    assert l1._by_tag == {}  # nothing left behind to grow without bound


def test_l1_evicts_invalidated_entries_before_live_ones() -> None:
    l1 = L1Cache(max_entries=2, max_bytes=1000)
    l1.put("live", entry(tags=("rec:A",)))
    l1.put("dead", entry(tags=("rec:B",)))
    assert l1.invalidate("demo", ["rec:B"]) == 1
    l1.put("new", entry(tags=("rec:C",)))  # over the bound: the unreaped "dead" goes, not the older "live"
    assert l1.get("live") is not None
    assert l1.get("new") is not None
    assert l1.has_doomed() is False


def test_l1_invalidated_entries_are_unreadable_before_reaping_and_a_new_value_survives_the_reap() -> None:
    l1 = L1Cache(max_entries=10, max_bytes=1000)
    l1.put("c", entry(tags=("rec:C1",)))
    assert l1.invalidate("demo", ["rec:C1"]) == 1
    assert l1.get("c") is None  # no reap yet
    l1.put("a", entry(tags=("list:job", "rel:J1")))
    l1.put("b", entry(tags=("list:job",)))
    assert l1.invalidate("demo", ["list:job"]) == 2
    assert l1.invalidate("demo", ["rel:J1"]) == 0  # "a" is already gone for readers: not counted twice
    l1.put("a", entry(tags=("list:job",)))  # refilled after the invalidation
    assert l1.reap() == 1  # only "b": the new "a" is not the invalidated one
    assert l1.get("b") is None
    assert l1.get("a") is not None
    assert l1.invalidate("demo", ["list:job"]) == 1


def test_redis_breaker_opens_on_five_failures_in_window_and_closes_after_three() -> None:
    clock = FakeClock()
    breaker = WindowBreaker("redis", failures=5, window_s=120, open_s=60, half_open_successes=3, clock=clock)
    for _ in range(4):
        breaker.record_failure()
        clock.now += 40  # spread over 160 s: never 5 within 120 s
    assert breaker.state == "CLOSED"
    for _ in range(5):
        breaker.record_failure()
    assert (breaker.state, breaker.allow()) == ("OPEN", False)
    clock.now += 60
    assert breaker.state == "HALF_OPEN"
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state == "OPEN"
    clock.now += 60
    for _ in range(3):
        breaker.record_success()
    assert breaker.state == "CLOSED"


def test_upstream_breaker_honours_retry_after() -> None:
    clock = FakeClock()
    breaker = ConsecutiveBreaker(
        "jobnimbus:demo", failures=2, open_s=30, max_open_s=300, half_open_successes=1, clock=clock
    )
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state == "CLOSED"  # not consecutive
    breaker.record_failure(retry_after_s=120)
    assert breaker.state == "OPEN"
    assert breaker.retry_after_s() == 120
    clock.now += 119
    assert breaker.state == "OPEN"
    clock.now += 1
    assert breaker.state == "HALF_OPEN"
    breaker.record_success()
    assert breaker.state == "CLOSED"


def test_metrics_add_up_across_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = "from cacheops import metrics; metrics.READS.labels('get_jobs', 'hit_l2').inc(3)"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "DJANGO_SECRET_KEY": "t"}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", script], env=env, check=True, cwd=Path(__file__).parent.parent)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert metrics.snapshot()["jn_cache_reads"][("hit_l2", "get_jobs")] == 6
    assert b'jn_cache_reads_total{status="hit_l2",tool="get_jobs"} 6.0' in metrics.render()[0]
