"""Failover under load: the primary of a real Sentinel set (or of a real Redis Cluster's slot) is killed while
threads read through the cache; every call must still succeed, and a write made after the failover is never
followed by a read of older data.

While the killed primary's keys cannot be read, L1 (until its TTL) and JobNimbus (the fetch) answer; once the
replica is promoted, Redis serves again: fresh hits, and stale-while-revalidate reads (stale lives in Redis only).

The topologies are scripts/redis_topologies.py's (ports 6390/6391 + sentinels 26390-26392; cluster 7000-7005):
these tests kill and restart their nodes, so they only ever use those. They run when TEST_REAL_REDIS_URL is that
script's URL (`make test-sentinel`, `make test-cluster`, `make test-topologies`, .ci/run), or standalone with
TEST_FAILOVER=1 (each starts the topology it needs, and stops it afterwards if it started it). The killed node is
started back as a replica before the test ends, so later tests find the topology whole.

What is asserted is behaviour, never timing: the waits are bounded (a failure says what did not happen), and the
counts (served from L1, from Redis, stale, from JobNimbus) are printed (`-s`) and kept as the test's properties.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from cacheops import engine as engine_module
from cacheops.api import invalidate_tags, list_tag, record_tag
from cacheops.breakers import reset_breakers
from cacheops.errors import CacheBackendError
from tests.fixtures.redis import (
    IDENTITY,
    REAL_REDIS_URL,
    CacheEnv,
    caches_setting,
    delete_keys,
    engine_setting_for,
    raw_client,
    real_redis_kind,
    scan_keys,
)

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.failover]

ROOT = Path(__file__).resolve().parents[1]
READERS = 4
KEYS = 12  # distinct cached reads (contacts lists of sizes 1..KEYS), read key i tagged with record c<i>
WAIT_S = 60.0  # every bounded wait: failover, recovery, restore
WRITE_EVERY_S = 0.25  # the writer changes one key's data per round, in turn
FRESH_S = 2  # contacts' fresh TTL here (its stale-while-revalidate window is half that): stale reads happen


def _load_topologies() -> ModuleType:
    spec = importlib.util.spec_from_file_location("redis_topologies", ROOT / "scripts" / "redis_topologies.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


topologies = _load_topologies()


@dataclass
class Topology:
    """The running topology under test: its kind, URL, and the script driving it."""

    kind: str
    url: str
    script: ModuleType = field(repr=False)


def _topology(kind: str) -> Iterator[Topology]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    url = topologies.url(kind)
    if real_redis_kind(REAL_REDIS_URL) == kind:
        if url != REAL_REDIS_URL:
            pytest.skip(f"TEST_REAL_REDIS_URL is a {kind} other than scripts/redis_topologies.py's ({url}): "
                        "a failover test kills nodes of that script's topology only")  # fmt: skip
        started_here = False
    elif os.environ.get("TEST_FAILOVER") == "1":
        started_here = not topologies.serving(kind)
    else:
        pytest.skip(f"needs the local {kind}: TEST_REAL_REDIS_URL={url} (make test-{kind}), or TEST_FAILOVER=1")
    topologies.start(kind)  # idempotent: makes sure it is whole before the test kills part of it
    try:
        yield Topology(kind, url, topologies)
    finally:
        ports = topologies.CLUSTER_PORTS if kind == "cluster" else topologies.SENTINEL_DATA_PORTS
        for port in ports:
            if not topologies.is_up(port):
                topologies.restart(port)  # back as a replica of the promoted node
        topologies.wait_healthy(kind, WAIT_S)
        if started_here:
            topologies.stop(kind)


@pytest.fixture
def sentinel_set() -> Iterator[Topology]:
    """Yield the script's Sentinel set, whole; make it whole again afterwards."""
    yield from _topology("sentinel")


@pytest.fixture
def redis_cluster() -> Iterator[Topology]:
    """Yield the script's Redis Cluster, whole; make it whole again afterwards."""
    yield from _topology("cluster")


def _engine_on(topology: Topology, settings: Any) -> CacheEnv:
    """Point the engine at `topology` with production's breaker (its prober closes it once Redis answers)."""
    namespace = f"test-failover-{uuid.uuid4().hex[:8]}:"
    settings.CACHES = caches_setting(topology.url, IDENTITY)
    # L1 for one second: it carries the first part of the gap, and Redis is read again soon after. Entries are fresh
    # for FRESH_S, then served stale while a background fetch refreshes them.
    settings.CACHEOPS_ENGINE = engine_setting_for(namespace, L1_TTL_S=1.0, TTL_OVERRIDES={"contacts": FRESH_S})
    engine_module.reset_engine()
    reset_breakers()
    return CacheEnv(topology.kind, False, namespace, raw_client(topology.url, socket_timeout=1.0), settings)


class Load:
    """Reader threads reading through the cache without pause, and a writer changing the data and invalidating.

    The upstream (the fetch) answers the current version of key i's data; a write of key i bumps its version, then
    invalidates its record tag. A read of key i that starts after that invalidation returned must answer that version
    or a newer one: `outdated` lists the reads that did not (each read checks against the version of the last write of
    its key whose invalidation returned). A write whose invalidation Redis refused (away) sets no floor: a write tool
    records such a change for the sweep, which applies it once Redis is back.
    """

    def __init__(self, env: CacheEnv) -> None:
        self.env = env
        self.lock = threading.Lock()
        self.phase = "before"
        self.version = [0] * KEYS  # what JobNimbus would answer now, per key
        self.committed = [0] * KEYS  # per key, the version of the last write whose invalidation returned
        self.next_write = 0
        self.statuses: dict[str, Counter[str]] = {}
        self.upstream: Counter[str] = Counter()
        self.failures: list[str] = []
        self.outdated: list[str] = []
        self.writes: Counter[str] = Counter()
        self.stop = threading.Event()
        self.writing = threading.Event()
        self.writing.set()
        self.threads = [threading.Thread(target=self._reader, args=(i,), daemon=True) for i in range(READERS)]
        self.threads.append(threading.Thread(target=self._writer, daemon=True))

    def request(self, i: int) -> Any:
        i %= KEYS
        return self.env.request(args={"size": 1 + i}, tags=(list_tag("contact"), record_tag(f"c{i}")))

    def fetch(self, i: int) -> Callable[[], Any]:
        def fetch() -> Any:
            with self.lock:
                self.upstream[self.phase] += 1
                return {"v": self.version[i]}

        return fetch

    def read(self, i: int) -> str:
        i %= KEYS
        with self.lock:
            floor, phase = self.committed[i], self.phase
        try:
            outcome = self.env.read(self.request(i), self.fetch(i))
        except Exception as exc:  # every failure is the test's failure: count it, keep reading
            with self.lock:
                self.failures.append(f"{phase}: {exc.__class__.__name__}: {exc}")
            return "failed"
        with self.lock:
            self.statuses.setdefault(phase, Counter())[outcome.status] += 1
            if outcome.value["v"] < floor:
                self.outdated.append(f"{phase}: key {i} {outcome.status} answered v{outcome.value['v']} after v{floor}")
        return str(outcome.status)

    def _reader(self, n: int) -> None:
        i = n
        while not self.stop.is_set():
            self.read(i)
            i += 1
            time.sleep(0.001)

    def _writer(self) -> None:
        while not self.stop.wait(WRITE_EVERY_S):
            if self.writing.is_set():
                self.write()

    def write(self, key: int | None = None) -> bool:
        """Change one key's data (the next in turn) and invalidate it; return whether the invalidation was applied."""
        with self.lock:
            i = self.next_write if key is None else key
            self.next_write = (i + 1) % KEYS
            self.version[i] += 1
            version, phase = self.version[i], self.phase
        try:
            invalidate_tags("demo", [record_tag(f"c{i}")])
        except CacheBackendError:  # Redis away: a write tool records the event for the sweep; reads are not checked
            with self.lock:
                self.writes[f"{phase}: refused"] += 1
            return False
        with self.lock:
            self.committed[i] = max(self.committed[i], version)
            self.writes[f"{phase}: applied"] += 1
        return True

    def enter(self, phase: str) -> None:
        with self.lock:
            self.phase = phase

    def seen(self, phase: str, status: str) -> int:
        with self.lock:
            return self.statuses.get(phase, Counter())[status]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=WAIT_S)

    def report(self) -> dict[str, Any]:
        with self.lock:
            return {
                "reads": {phase: dict(c) for phase, c in self.statuses.items()},
                "upstream_calls": dict(self.upstream),
                "writes": dict(self.writes),
                "failed_calls": len(self.failures),
                "reads_older_than_a_write": len(self.outdated),
            }


def _until(what: str, check: Callable[[], bool], load: Load) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    pytest.fail(f"{what} did not happen within {WAIT_S:.0f} s; so far: {load.report()}")


def _drive_failover(load: Load, topology: Topology, victim: int, record: Callable[[str, Any], None]) -> None:
    """Warm, kill `victim` under load, wait for the failover and for Redis to serve again, write, check."""
    script = topology.script
    for i in range(KEYS):  # warm: every entry in Redis (and L1)
        assert load.read(i) == "miss"
    assert {load.read(i) for i in range(KEYS)} <= {"hit_l1", "hit_l2"}
    with load:
        _until("reads served from Redis before the kill", lambda: load.seen("before", "hit_l2") > 0, load)
        load.enter("outage")
        assert script.kill(victim), f"nothing ran on {victim}"
        script.wait_serving(topology.kind, WAIT_S)  # the replica promoted
        load.enter("after")
        # Served from Redis again (the breaker closed, the client found the new primary), and invalidations apply.
        _until("a read served from Redis after the failover", lambda: load.seen("after", "hit_l2") > 0, load)
        _until("an invalidation applied after the failover", lambda: load.writes["after: applied"] > 0, load)
        # A few more rounds of writes and reads on the new primary, every read checked against the last write.
        target = load.writes["after: applied"] + 4
        _until("four more writes applied", lambda: load.writes["after: applied"] >= target, load)
        # Without writes, entries age past their fresh TTL: the new primary serves them stale while they refresh.
        load.writing.clear()
        _until("a stale read served from Redis after the failover", lambda: load.seen("after", "stale") > 0, load)
    report = load.report()
    print(f"\n{topology.kind} failover of {victim}: {report}")
    for key, value in report.items():
        record(key, value)
    assert load.failures == [], load.failures[:10]
    assert load.outdated == [], load.outdated[:10]
    assert sum(report["reads"].get("outage", {}).values()) > 0  # reads went on while the primary was away
    # A write after the failover reaches the new primary: the next read misses, stores there, and Redis serves it.
    assert load.write(0)
    assert load.read(0) == "miss"
    assert load.env.raw.exists(engine_module.plan(load.request(0)).key)


def test_sentinel_failover_under_load_loses_no_call_and_serves_no_stale_read(
    sentinel_set: Topology, settings: Any, record_property: Callable[[str, Any], None]
) -> None:
    script = sentinel_set.script
    env = _engine_on(sentinel_set, settings)
    old = script.sentinel_primary()
    assert old in script.SENTINEL_DATA_PORTS
    try:
        _drive_failover(Load(env), sentinel_set, old, record_property)
        new = script.sentinel_primary()
        assert new is not None
        assert new != old  # the sentinels promoted the replica
        assert script.info(new, "replication")["role"] == "master"
    finally:
        engine_module.reset_engine()
        reset_breakers()
        script.restart(old)  # back as a replica of the new primary
        assert script.info(old, "replication")["role"] == "slave"
        delete_keys(env.raw, scan_keys(env.raw, f"{env.namespace}*"))
        env.raw.close()


def test_cluster_failover_under_load_loses_no_call_and_serves_no_stale_read(
    redis_cluster: Topology, settings: Any, record_property: Callable[[str, Any], None]
) -> None:
    script = redis_cluster.script
    env = _engine_on(redis_cluster, settings)
    # Every key of instance `demo` shares its hash tag, hence one slot: kill the primary serving it.
    key = engine_module.plan(env.request()).key
    old = int(env.raw.get_node_from_key(key).port)
    assert old in script.cluster_primaries()
    try:
        _drive_failover(Load(env), redis_cluster, old, record_property)
        env.raw.nodes_manager.initialize()  # the slot map as the cluster now has it
        new = int(env.raw.get_node_from_key(key).port)
        assert new != old  # the replica took the slot over
        assert script.info(new, "replication")["role"] == "master"
    finally:
        engine_module.reset_engine()
        reset_breakers()
        script.restart(old)  # rejoins as a replica of the node that took over
        assert script.info(old, "replication")["role"] == "slave"
        delete_keys(env.raw, scan_keys(env.raw, f"{env.namespace}*"))
        env.raw.close()
