"""`make run`'s supervisor brings up the whole stack on embedded defaults and Ctrl-C stops all of it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(url: str, deadline_s: float = 90.0) -> requests.Response:
    end = time.monotonic() + deadline_s
    while True:
        try:
            # A worker's first request imports the whole app; on a busy 2-core machine that takes seconds.
            return requests.get(url, timeout=15)
        except (requests.ConnectionError, requests.Timeout):
            if time.monotonic() > end:
                raise
            time.sleep(0.3)


@pytest.fixture
def stack(tmp_path: Path):
    web, sandbox, dead_redis = _free_port(), _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBNIMBUS_", "REDIS_", "CELERY_", "DJANGO_"))}
    env.update(
        PORT=str(web),
        SANDBOX_PORT=str(sandbox),
        REDIS_URL=f"redis://127.0.0.1:{dead_redis}/0",  # nothing answers there: the embedded stand-in must serve
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )
    proc = subprocess.Popen(
        [sys.executable, "scripts/run_local.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        yield proc, f"http://127.0.0.1:{web}", f"http://127.0.0.1:{sandbox}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_make_run_serves_mcp_on_embedded_defaults_and_stops_on_ctrl_c(stack) -> None:
    proc, web, sandbox = stack
    health = _wait_for(f"{web}/health")
    assert health.json()["status"] == "ok"
    assert _wait_for(f"{sandbox}/__sandbox/health").json() == {"status": "ok"}

    call = {"jsonrpc": "2.0", "id": 0, "method": "tools/call", "params": {"name": "get_users", "arguments": {}}}
    headers = {"X-JobNimbus-Api-Key": "sandboxadminkey0001", "Content-Type": "application/json"}
    first = requests.post(f"{web}/mcp", json=call, headers=headers, timeout=30).json()["result"]
    assert not first["isError"]
    assert first["structuredContent"]["count"] > 0
    assert first["_meta"]["jobnimbus-mcp/cache"]["status"] == "miss"
    # While the worker and beat boot, the embedded Redis (a thread of the supervisor) can be slow enough that a fill
    # times out and is skipped — a miss again, which is correct. Once it keeps up, the answer must come from cache.
    statuses = []
    for _ in range(10):
        again = requests.post(f"{web}/mcp", json=call, headers=headers, timeout=30).json()["result"]
        statuses.append(again["_meta"]["jobnimbus-mcp/cache"]["status"])
        if statuses[-1] in {"hit_l1", "hit_l2"}:
            break
        time.sleep(0.5)
    assert statuses[-1] in {"hit_l1", "hit_l2"}, statuses

    os.killpg(proc.pid, signal.SIGINT)
    output, _ = proc.communicate(timeout=30)
    assert "embedded Redis stand-in" in output
    assert "claude mcp add --transport http" in output
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{web}/health", timeout=2)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{sandbox}/__sandbox/health", timeout=2)


def _closed(url: str, deadline_s: float = 30.0) -> bool:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            requests.get(url, timeout=2)
        except requests.ConnectionError:
            return True
        except requests.Timeout:
            pass
        time.sleep(0.3)
    return False


def test_children_do_not_outlive_a_killed_supervisor(stack) -> None:
    proc, web, sandbox = stack
    assert _wait_for(f"{web}/health").status_code == 200
    os.kill(proc.pid, signal.SIGKILL)  # the supervisor alone: no chance to stop anything itself
    proc.wait(timeout=10)
    assert _closed(f"{web}/health")
    assert _closed(f"{sandbox}/__sandbox/health")
