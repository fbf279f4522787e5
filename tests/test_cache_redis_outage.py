"""Redis outage: a Redis this test starts on its own port is killed mid-run and brought back."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from cacheops import engine
from cacheops.breakers import redis_breaker
from tests.fixtures.redis import IDENTITY, CacheEnv, caches_setting, engine_setting_for

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
OPEN_S = 0.3


class OwnRedis:
    """A redis-server child on a free loopback port, without persistence."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen([REDIS_SERVER, *args], stdout=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(5)
            self.process = None


@pytest.fixture
def own_redis(settings: Any) -> Iterator[OwnRedis]:
    if not os.path.exists(REDIS_SERVER):
        pytest.skip("redis-server binary not installed")
    server = OwnRedis()
    server.start()
    settings.CACHES = caches_setting(server.url, IDENTITY)
    settings.CACHEOPS_ENGINE = engine_setting_for(
        f"outage-{uuid.uuid4().hex[:8]}:",
        L1_TTL_S=0.0,
        # No prober (it would close the breaker within its interval): these tests follow the half-open path.
        REDIS_BREAKER={"FAILURES": 5, "WINDOW_S": 120.0, "OPEN_S": OPEN_S, "PROBE_INTERVAL_S": 0.0},
    )
    engine.reset_engine()
    yield server
    engine.reset_engine()
    server.kill()


def test_calls_survive_a_redis_outage_and_hits_resume(own_redis: OwnRedis, settings: Any) -> None:
    env = CacheEnv("own", False, "", redis.Redis.from_url(own_redis.url), settings)

    def read(size: int) -> str:
        return env.read(env.request(args={"size": size})).status

    before = [read(size) for size in (1, 2, 1, 2)]
    assert before == ["miss", "miss", "hit_l2", "hit_l2"]  # L1 off (TTL 0): every hit is Redis's

    own_redis.kill()
    during = [read(size % 3) for size in range(20)]  # none raises: L2 is skipped, JobNimbus answers
    assert set(during) == {"miss"}
    assert redis_breaker().state == "OPEN"
    calls_while_down = len(env.calls)

    own_redis.start()
    time.sleep(OPEN_S + 0.05)  # the breaker's cool-down; then half-open lets calls through
    assert redis_breaker().state == "HALF_OPEN"
    after = [read(7) for _ in range(3)]
    assert after[0] == "miss"
    assert "hit_l2" in after
    assert redis_breaker().state == "CLOSED"
    assert calls_while_down == 2 + 20


def test_an_invalidation_missed_during_the_outage_is_replayed_when_redis_returns(
    own_redis: OwnRedis, settings: Any
) -> None:
    from cacheops.api import invalidate_tags, list_tag
    from cacheops.errors import CacheBackendError

    env = CacheEnv("own", False, "", redis.Redis.from_url(own_redis.url), settings)
    assert env.read().status == "miss"
    # Stop Redis without losing its data: the entry is still there when it comes back.
    assert own_redis.process is not None
    own_redis.process.send_signal(signal.SIGSTOP)
    try:
        with pytest.raises(CacheBackendError):
            invalidate_tags("demo", [list_tag("contact")])
    finally:
        own_redis.process.send_signal(signal.SIGCONT)
    assert env.raw.exists(engine.plan(env.request()).key)  # Redis still holds the entry the write made stale
    assert env.read().status == "miss"  # replayed before the read looked at Redis
    assert env.calls == ["fetch", "fetch"]
