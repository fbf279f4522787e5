"""`make run`'s supervisor brings up the whole stack on embedded defaults, says when it is ready, keeps its Redis
keys apart, hides the webhook secret from the process list, and Ctrl-C stops all of it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
SECRET = "webhook-secret-that-must-not-be-listed"
NAMESPACE = "jobnimbus-mcp-local-"

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Stack:
    proc: subprocess.Popen[str]
    web: str
    sandbox: str
    run_dir: Path
    lines: list[str] = field(default_factory=list)

    def read_output(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:  # drained all along: a full pipe would block the supervisor
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_ready(self, deadline_s: float = 150.0) -> None:
        end = time.monotonic() + deadline_s
        while "is READY" not in self.output:
            assert self.proc.poll() is None, f"make run exited early:\n{self.output}"
            assert time.monotonic() < end, f"make run not ready in {deadline_s} s:\n{self.output}"
            time.sleep(0.2)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    web, sandbox, dead_redis = _free_port(), _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBNIMBUS_", "REDIS_", "CELERY_", "DJANGO_"))}
    env.pop("CACHE_KEY_NAMESPACE", None)
    env.update(
        PORT=str(web),
        SANDBOX_PORT=str(sandbox),
        REDIS_URL=f"redis://127.0.0.1:{dead_redis}/0",  # nothing answers there: the embedded stand-in must serve
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        RUN_DIR=str(tmp_path / "run"),
        JOBNIMBUS_WEBHOOK_SECRET_DEMO=SECRET,
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
    running = Stack(proc, f"http://127.0.0.1:{web}", f"http://127.0.0.1:{sandbox}", tmp_path / "run")
    threading.Thread(target=running.read_output, daemon=True).start()
    try:
        yield running
    finally:
        # SIGTERM: the supervisor stops its children, each in a process group of its own (a SIGKILL to its group
        # would leave them running); SIGKILL only if it does not finish.
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def _call(web: str, name: str) -> dict:
    call = {"jsonrpc": "2.0", "id": 0, "method": "tools/call", "params": {"name": name, "arguments": {}}}
    headers = {"X-JobNimbus-Api-Key": "sandboxadminkey0001", "Content-Type": "application/json"}
    return requests.post(f"{web}/mcp", json=call, headers=headers, timeout=30).json()["result"]


def _command_lines() -> list[str]:
    lines = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            lines.append(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue  # the process ended meanwhile
    return lines


def test_make_run_is_ready_serves_mcp_and_stops_on_ctrl_c(stack: Stack) -> None:
    stack.wait_ready()
    # READY means every process answers: no waiting is needed after it.
    assert requests.get(f"{stack.web}/health", timeout=5).json()["status"] == "ok"
    assert requests.get(f"{stack.sandbox}/__sandbox/health", timeout=5).json() == {"status": "ok"}
    assert sorted(p.name for p in (stack.run_dir / "ready").iterdir()) == ["beat", "worker"]

    first = _call(stack.web, "get_users")
    assert not first["isError"]
    assert first["structuredContent"]["count"] > 0
    assert first["_meta"]["jobnimbus-mcp/cache"]["status"] == "miss"
    # The embedded Redis is a thread of the supervisor, slow while four processes boot and poll: a fill can time out
    # and be skipped, which answers the next call with a miss again (correct: nothing stale, nothing lost). Once it
    # keeps up, the answer must come from the cache.
    statuses = []
    for _ in range(10):
        statuses.append(_call(stack.web, "get_users")["_meta"]["jobnimbus-mcp/cache"]["status"])
        if statuses[-1] in {"hit_l1", "hit_l2"}:
            break
        time.sleep(0.5)
    assert statuses[-1] in {"hit_l1", "hit_l2"}, statuses

    os.killpg(stack.proc.pid, signal.SIGINT)
    stack.proc.wait(timeout=30)
    assert "embedded Redis stand-in" in stack.output
    assert "claude mcp add --transport http" in stack.output
    assert "celery@" not in stack.output, "Celery's start-up banner should be quiet"
    assert not (stack.run_dir / "env").exists(), "make manage must not find a stack that has stopped"
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{stack.web}/health", timeout=2)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{stack.sandbox}/__sandbox/health", timeout=2)


def test_keys_stay_in_the_namespace_and_the_secret_is_not_listed(stack: Stack) -> None:
    stack.wait_ready()
    saved = dict(line.split("=", 1) for line in (stack.run_dir / "env").read_text().splitlines())
    raw = redis.Redis.from_url(saved["REDIS_URL"])
    # Right after READY the embedded Redis (a thread of the supervisor) can be slow enough that a read skips its
    # fill; what this test asks is where keys go once one is stored, so it reads until an entry is there.
    for _ in range(20):
        _call(stack.web, "get_users")
        keys = [key.decode() for key in raw.scan_iter(count=1000)]
        if any(":jn:v1:" in key for key in keys):
            break
        time.sleep(0.5)
    raw.close()
    assert any(":jn:v1:" in key for key in keys), keys  # a cache entry ...
    assert any("_kombu" in key for key in keys), keys  # ... and Celery's broker keys, all under the namespace
    assert saved["CACHE_KEY_NAMESPACE"].startswith(NAMESPACE)
    assert [key for key in keys if not key.startswith(saved["CACHE_KEY_NAMESPACE"])] == []

    assert SECRET not in (stack.run_dir / "env").read_text()
    assert [line for line in _command_lines() if SECRET in line] == []
    # ... while the sandbox still got it and signs its automation webhooks with it.
    requests.post(
        f"{stack.sandbox}/api1/contacts",
        json={"first_name": "Ada", "last_name": "Lovelace", "record_type_name": "Customer", "status_name": "Lead"},
        headers={"Authorization": "Bearer sandboxadminkey0001"},
        timeout=30,
    ).raise_for_status()
    end = time.monotonic() + 30
    while not (deliveries := requests.get(f"{stack.sandbox}/__sandbox/webhooks", timeout=5).json()["deliveries"]):
        assert time.monotonic() < end, "the sandbox sent no webhook"
        time.sleep(0.3)
    assert deliveries[0]["status"] == 202, deliveries  # this server accepted the token: the sandbox had it


def test_make_manage_runs_commands_against_the_running_stack(stack: Stack, tmp_path: Path) -> None:
    env = {**os.environ, "RUN_DIR": str(stack.run_dir)}
    absent = subprocess.run(
        [sys.executable, "scripts/run_local.py", "manage", "warm_cache"],
        cwd=ROOT,
        env={**os.environ, "RUN_DIR": str(tmp_path / "nothing-runs-here")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert absent.returncode == 2
    assert "make run is not running" in absent.stderr

    stack.wait_ready()
    _call(stack.web, "get_users")
    done = subprocess.run(
        [sys.executable, "scripts/run_local.py", "manage", "tune_ttls", "--dry-run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "unpinned policies" in done.stdout


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


def test_children_do_not_outlive_a_killed_supervisor(stack: Stack) -> None:
    stack.wait_ready()
    os.kill(stack.proc.pid, signal.SIGKILL)  # the supervisor alone: no chance to stop anything itself
    stack.proc.wait(timeout=10)
    assert _closed(f"{stack.web}/health")
    assert _closed(f"{stack.sandbox}/__sandbox/health")
