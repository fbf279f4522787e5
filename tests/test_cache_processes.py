"""Cross-process behaviour on the real Redis: single flight across processes, and L1 invalidation broadcast."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from cacheops.api import invalidate_tags, list_tag
from sandbox.server import SandboxHandle
from tests.fixtures.redis import (
    caches_setting,
    delete_keys,
    engine_setting_for,
    raw_client,
    require_real_redis,
    scan_keys,
)
from tests.fixtures.sandbox import SANDBOX_ADMIN_KEY, control

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def shared(settings: Any) -> Iterator[tuple[str, str, redis.Redis]]:
    """Yield (redis url, namespace, client) with this process's engine on the same namespace; clean up after."""
    from cacheops import engine

    url = require_real_redis()
    namespace = f"test-{uuid.uuid4().hex[:10]}:"
    default = settings.CACHES["default"]  # on `url`, whatever its topology; the rest as configured
    on_url = caches_setting(url, default["OPTIONS"]["COMPRESSOR"])["default"]
    settings.CACHES = {**settings.CACHES, "default": {**default, **on_url}}
    settings.CACHEOPS_ENGINE = engine_setting_for(namespace)
    engine.reset_engine()
    client = raw_client(url, socket_timeout=90)  # wait_ready blocks up to 60 s in BLPOP
    yield url, namespace, client
    engine.reset_engine()
    delete_keys(client, scan_keys(client, f"{namespace}*"))
    client.close()


def start_worker(url: str, namespace: str, *args: str, **env: str) -> subprocess.Popen[bytes]:
    environment = {
        **os.environ,
        "DJANGO_SECRET_KEY": "t",
        "DJANGO_DEBUG": "false",
        "LOG_FORMAT": "text",
        "LOG_LEVEL": "WARNING",
        "REDIS_URL": url,
        "CACHE_KEY_NAMESPACE": namespace,
        "CACHE_LOCK_WAIT_S": "15",
        "CACHE_XFETCH_BETA": "0",
        # 25 reading threads per process: more than a web worker has, so no miss cap (it would refuse most).
        "CACHE_MISS_CONCURRENCY": "0",
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tests.cache_worker", *args], cwd=ROOT, env=environment, stdout=subprocess.PIPE
    )


def report_of(process: subprocess.Popen[bytes]) -> dict[str, Any]:
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0, out
    return orjson.loads(out.strip().splitlines()[-1])


def wait_ready(client: redis.Redis, namespace: str, count: int) -> None:
    for _ in range(count):
        assert client.blpop([f"{namespace}ready"], timeout=60) is not None, "a worker never became ready"


def test_100_cold_calls_across_4_processes_reach_jobnimbus_once(
    shared: tuple[str, str, redis.Redis], clean_sandbox: SandboxHandle
) -> None:
    url, namespace, client = shared
    # Slow answers make the 100 calls overlap for certain; the count is taken at the sandbox.
    control(clean_sandbox, "POST", "faults", {"latency_ms": 300})
    workers = [start_worker(url, namespace, "burst", clean_sandbox.base_url, SANDBOX_ADMIN_KEY, "25") for _ in range(4)]
    wait_ready(client, namespace, 4)
    client.rpush(f"{namespace}go", *["go"] * 100)
    statuses = [s for w in workers for s in report_of(w)["statuses"]]
    assert len(statuses) == 100
    assert control(clean_sandbox, "GET", "stats")["total"] == 1
    assert statuses.count("miss") == 1
    assert set(statuses) <= {"miss", "coalesced", "hit_l1", "hit_l2"}


def test_invalidation_reaches_another_process_l1(
    shared: tuple[str, str, redis.Redis], clean_sandbox: SandboxHandle
) -> None:
    url, namespace, client = shared
    worker = start_worker(url, namespace, "l1watch", clean_sandbox.base_url, SANDBOX_ADMIN_KEY, CACHE_L1_TTL_S="120")
    wait_ready(client, namespace, 1)
    invalidate_tags("demo", [list_tag("contact")])
    client.rpush(f"{namespace}invalidated", "1")
    report = report_of(worker)
    assert report == {"first": "miss", "in_l1": True, "subscribed": True, "dropped": True}
