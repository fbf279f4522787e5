"""A separate process for the cache engine's cross-process tests (run as `python -m tests.cache_worker MODE ...`).

Configured by the environment like production (REDIS_URL, CACHE_KEY_NAMESPACE, ...). Coordinates with the test
through Redis lists under the test's namespace, and prints one JSON line with what it saw.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

import django
import orjson
import redis

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobnimbus_site.settings")
django.setup()

from cacheops import engine  # noqa: E402
from cacheops.api import read_through  # noqa: E402
from cacheops.redis_topology import raw_client  # noqa: E402
from tests.cache_helpers import contacts_request, sandbox_fetch  # noqa: E402


def burst(control: redis.Redis, ns: str, base_url: str, api_key: str, threads: int) -> dict[str, Any]:
    """Wait for the go signal in `threads` threads at once, then make the same cold read in each."""
    statuses: list[str] = []
    lock = threading.Lock()
    request = contacts_request(api_key)

    def worker() -> None:
        control.blpop([f"{ns}go"], timeout=30)
        outcome = read_through(request, lambda: sandbox_fetch(base_url, api_key))
        with lock:
            statuses.append(outcome.status)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    control.rpush(f"{ns}ready", os.getpid())
    for thread in pool:
        thread.join(60)
    return {"statuses": statuses}


def l1_watch(control: redis.Redis, ns: str, base_url: str, api_key: str) -> dict[str, Any]:
    """Cache a read in this process's L1, then report whether another process's invalidation removed it."""
    request = contacts_request(api_key)
    first = read_through(request, lambda: sandbox_fetch(base_url, api_key))
    eng = engine.engine()
    key = engine.plan(request).key
    in_l1 = eng.l1.get(key) is not None
    ready = eng.subscriber.ready.wait(10)
    control.rpush(f"{ns}ready", os.getpid())
    control.blpop([f"{ns}invalidated"], timeout=30)
    deadline = time.monotonic() + 5
    while eng.l1.get(key) is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    return {"first": first.status, "in_l1": in_l1, "subscribed": ready, "dropped": eng.l1.get(key) is None}


def main() -> None:
    """Run the mode named on the command line and print its report."""
    mode, base_url, api_key = sys.argv[1], sys.argv[2], sys.argv[3]
    ns = os.environ["CACHE_KEY_NAMESPACE"]
    control = raw_client(os.environ["REDIS_URL"])  # a Redis, a cluster or a Sentinel master, as REDIS_URL names
    if mode == "burst":
        report = burst(control, ns, base_url, api_key, int(sys.argv[4]))
    else:
        report = l1_watch(control, ns, base_url, api_key)
    sys.stdout.write(orjson.dumps(report).decode() + "\n")
    engine.reset_engine()


if __name__ == "__main__":
    main()
