"""The web server as the Procfile runs it (its `web:` line, its defaults: granian since issue 15) under faults.

- 13 (issue 11): slow JobNimbus misses never hold up cached hits: with every miss slot of a worker taken by a
  JobNimbus answering in 8 s, hits are answered, and misses beyond the slots are answered at once ("busy, retry").
- 17 (issue 11): after a worker is replaced, keep-alive clients spread over the workers again (a worker's every
  100th answer closes its connection) instead of all staying on the survivor.
- 15: a SIGTERM lets the requests in flight finish, then the server exits; no access line holds a credential.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from cacheops.conf import DEFAULTS as ENGINE_DEFAULTS
from sandbox.server import SandboxHandle
from tests.fixtures.redis import require_real_redis
from tests.fixtures.sandbox import control
from tests.fixtures.servers import new_api_key

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(os.environ.get("VIRTUAL_ENV") or ROOT / ".venv") / "bin"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def procfile_web_command() -> str:
    """Return the Procfile's `web:` command, bound to loopback."""
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    return line.removeprefix("web:").strip().replace("--host 0.0.0.0", "--host 127.0.0.1")


@dataclass
class Web:
    """A running `web:` process: where it answers, its master pid, the namespace of its Redis keys."""

    process: subprocess.Popen[bytes]
    port: int
    namespace: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def workers(self) -> list[int]:
        """Return the pids of the server's worker processes (its children that serve requests)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                    cmdline = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                # granian's workers are multiprocessing children; its resource tracker is a child too, not a worker
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.process.pid and b"resource_tracker" not in cmdline:
                    pids.append(int(entry.name))
        return sorted(pids)

    def connections_of(self, pid: int) -> int:
        """Return how many established client connections on the web port worker `pid` holds."""
        inodes = set()
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            return 0
        held = 0
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].split(":")[1], 16)
            if local_port == self.port and fields[3] == "01" and fields[9] in inodes:
                held += 1
        return held


@pytest.fixture
def start_web(sandbox: SandboxHandle, tmp_path: Path) -> Iterator[Callable[..., Web]]:
    """Return a function starting the Procfile's web line (its own defaults) against the sandbox and real Redis."""
    url = require_real_redis()
    started: list[Web] = []

    def start(**env: str) -> Web:
        port = _free_port()
        namespace = f"hardening-web-{uuid.uuid4().hex[:8]}:"
        environment = {
            **os.environ,
            "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
            "PORT": str(port),
            "DJANGO_SECRET_KEY": "hardening-web",
            "DJANGO_DEBUG": "false",
            "LOG_FORMAT": "text",
            "LOG_LEVEL": "WARNING",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'web.sqlite3'}",
            "REDIS_URL": url,
            "CACHE_KEY_NAMESPACE": namespace,
            "JOBNIMBUS_BASE_URL": sandbox.base_url,
            "JOBNIMBUS_INSTANCES": "demo",
            "MCP_THROTTLE_RATE": "1000000/min",
            **env,
        }
        for name in ("WEB_THREADS", "WEB_KEEPALIVE_MAX_REQUESTS", "CACHE_MISS_CONCURRENCY", "CACHE_MISS_QUEUE"):
            if name not in env:
                environment.pop(name, None)  # the Procfile's and the entry point's defaults are what is under test
        log_path = tmp_path / f"web-{port}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                ["bash", "-c", f"exec {procfile_web_command()}"],
                cwd=ROOT,
                env=environment,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        web = Web(process, port, namespace, log_path)
        started.append(web)
        deadline = time.monotonic() + 60
        while not _answers(port):
            assert process.poll() is None, f"the web process exited:\n{web.log()}"
            assert time.monotonic() < deadline, f"the web process did not answer within 60 s:\n{web.log()}"
            time.sleep(0.2)
        return web

    yield start
    client = redis.Redis.from_url(url)
    for web in started:
        if web.process.poll() is None:
            os.killpg(web.process.pid, signal.SIGTERM)
            try:
                web.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(web.process.pid, signal.SIGKILL)
                web.process.wait(5)
        for key in client.scan_iter(match=f"{web.namespace}*", count=1000):
            client.unlink(key)


def _answers(port: int) -> bool:
    try:
        status, _, _ = ping(http.client.HTTPConnection("127.0.0.1", port, timeout=2))
    except OSError:
        return False
    return status == 200


def ping(conn: http.client.HTTPConnection) -> tuple[int, dict[str, str], bytes]:
    """Send MCP `ping` on `conn` (reconnecting once when the server closed it) and return status, headers, body."""
    body = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"})
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    for attempt in range(2):
        try:
            conn.request("POST", "/mcp", body=body, headers=headers)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        except (http.client.RemoteDisconnected, ConnectionError, http.client.BadStatusLine):
            conn.close()  # a connection to a worker that died: the client opens a new one, as HTTP clients do
            if attempt:
                raise
    raise AssertionError("unreachable")


def call_tool(port: int, api_key: str, name: str, arguments: dict[str, Any], timeout: float = 30) -> tuple[float, Any]:
    """Call a tool through the compat route on a fresh connection; return (seconds, (status, X-Cache, body))."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Content-Type": "application/json", "X-JobNimbus-Instance": "demo", "X-JobNimbus-Api-Key": api_key}
    started = time.perf_counter()
    try:
        conn.request(
            "POST", "/mcp/tools/call", body=orjson.dumps({"name": name, "arguments": arguments}), headers=headers
        )
        response = conn.getresponse()
        body = orjson.loads(response.read())
        return time.perf_counter() - started, (response.status, response.getheader("X-Cache"), body)
    finally:
        conn.close()


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


# --- 13: slow misses do not delay cached hits --------------------------------------------------------------------


def test_13_cached_hits_are_answered_while_every_miss_slot_waits_on_a_slow_jobnimbus(
    start_web: Callable[..., Web], clean_sandbox: SandboxHandle
) -> None:
    # One worker, so every request below lands on the same threads and slots; 8 threads and a gate of 4 + 2 (the
    # Procfile's 64 and 48 + 8 keep the same margin, test_the_procfile_leaves_threads_for_hits) so 10 misses fill it.
    web = start_web(WEB_CONCURRENCY="1", WEB_THREADS="8", CACHE_MISS_CONCURRENCY="4", CACHE_MISS_QUEUE="2")
    api_key = new_api_key()
    control(clean_sandbox, "POST", "keys", {"key": api_key, "profile": "all"})
    hit_args = {"size": 5}
    _, (status, _, body) = call_tool(web.port, api_key, "get_contacts", hit_args)
    assert (status, body["success"]) == (200, True), body
    before = [call_tool(web.port, api_key, "get_contacts", hit_args) for _ in range(40)]
    assert {result[1] for _, result in before} <= {"HIT-L1", "HIT-L2"}

    control(clean_sandbox, "POST", "faults", {"latency_ms": 8000, "path_prefix": "/api1/jobs"})
    misses: list[tuple[float, Any]] = []  # (when it was answered, its answer)
    lock = threading.Lock()

    def slow_miss(size: int) -> None:
        _, outcome = call_tool(web.port, api_key, "get_jobs", {"size": size})
        with lock:
            misses.append((time.monotonic(), outcome))

    threads = [threading.Thread(target=slow_miss, args=(size,)) for size in range(1, 11)]  # 10 > 8 threads
    try:
        for thread in threads:
            thread.start()
        _wait_for_jobs_calls(clean_sandbox, 4)  # the 4 miss slots are held by calls JobNimbus answers in 8 s
        during = [call_tool(web.port, api_key, "get_contacts", hit_args, timeout=20) for _ in range(40)]
        with lock:
            stuck = 10 - len(misses)
    finally:
        for thread in threads:
            thread.join(30)
        control(clean_sandbox, "DELETE", "faults")

    base_p99, during_p99 = _p99([s for s, _ in before]), _p99([s for s, _ in during])
    print(f"cached hits p99: {base_p99 * 1000:.1f} ms alone, {during_p99 * 1000:.1f} ms with every miss slot busy")
    assert all(result[0] == 200 and result[2]["success"] for _, result in during), during
    assert {result[1] for _, result in during} <= {"HIT-L1", "HIT-L2"}
    assert stuck >= 4, "the hits were not all answered while the slots' misses were still waiting on JobNimbus"
    refused = [at for at, (_, _, body) in misses if not body["success"] and "retry" in str(body).lower()]
    slow = [at for at, (_, _, body) in misses if body["success"]]
    assert refused, "no miss was refused: the slots did not fill"
    assert slow, "no miss got through to JobNimbus"
    assert max(refused) < min(slow), "a refused miss waited for JobNimbus instead of being told to retry"
    reached = control(clean_sandbox, "GET", "stats")["requests"]
    jobs_calls = sum(n for name, n in reached.items() if "/api1/jobs" in name)
    assert jobs_calls <= 6, f"{jobs_calls} misses reached JobNimbus at once; the slots are 4 (+2 queued)"


def _wait_for_jobs_calls(sandbox: SandboxHandle, count: int) -> None:
    """Wait until the sandbox has received `count` /api1/jobs calls (a guard of 30 s, not a measured figure)."""
    deadline = time.monotonic() + 30
    while True:
        reached = control(sandbox, "GET", "stats")["requests"]
        if sum(n for name, n in reached.items() if "/api1/jobs" in name) >= count:
            return
        assert time.monotonic() < deadline, f"the misses never reached JobNimbus: {reached}"
        time.sleep(0.05)


# --- 17: keep-alive clients spread over the workers again after one is replaced ----------------------------------


def test_17_keep_alive_clients_return_to_a_replaced_worker(start_web: Callable[..., Web]) -> None:
    web = start_web(WEB_CONCURRENCY="2")
    deadline = time.monotonic() + 30
    while len(web.workers()) < 2:
        assert time.monotonic() < deadline, web.log()
        time.sleep(0.1)
    clients = [http.client.HTTPConnection("127.0.0.1", web.port, timeout=10) for _ in range(12)]

    def round_of_requests() -> None:
        for conn in clients:
            status, _, _ = ping(conn)
            assert status == 200

    round_of_requests()
    held = {pid: web.connections_of(pid) for pid in web.workers()}
    victim = max(held, key=lambda pid: held[pid])
    os.kill(victim, signal.SIGKILL)  # a crash or a timeout kill; the master starts a replacement
    killed_at = time.monotonic()
    # Each granian worker listens on its own SO_REUSEPORT socket: a connection the kernel queued on the victim's
    # while it was dying is reset. Clients meet that at the crash itself (figures_faults' fault 6 counts them);
    # what is tested here is where they go afterwards.
    while _alive(victim):
        assert time.monotonic() - killed_at < 10
        time.sleep(0.01)
    # The victim's clients reconnect: to the survivor, the only worker up. The kernel may still refuse a connect
    # or two while it takes the dead worker's socket out of the SO_REUSEPORT group: a client retries, as here.
    while True:
        try:
            round_of_requests()
            break
        except ConnectionError:
            assert time.monotonic() - killed_at < 10, web.log()
            time.sleep(0.05)
    while len(web.workers()) < 2 or victim in web.workers():
        assert time.monotonic() - killed_at < 30, web.log()
        time.sleep(0.1)
    replacement = next(pid for pid in web.workers() if pid not in held)

    spread_at = None
    while time.monotonic() - killed_at < 40:
        round_of_requests()
        if web.connections_of(replacement) >= 2:
            spread_at = time.monotonic()
            break
    counts = {pid: web.connections_of(pid) for pid in web.workers()}
    for conn in clients:
        conn.close()
    assert spread_at is not None, f"every keep-alive client stayed on the survivor: {counts}"
    print(f"clients reached the replacement worker {spread_at - killed_at:.1f} s after the kill: {counts}")


def _alive(pid: int) -> bool:
    """Return True while `pid` runs (neither gone nor a zombie waiting for its parent)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_17_a_connection_is_closed_after_its_request_bound(start_web: Callable[..., Web]) -> None:
    web = start_web(WEB_CONCURRENCY="1")
    conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=10)
    closes = [
        n
        for n in range(1, 251)
        if {k.lower(): v for k, v in ping(conn)[1].items()}.get("connection", "").lower() == "close"
    ]
    conn.close()
    # Every 100th answer of the worker says close (the server's start-up probe was its first ones); the client
    # reconnects and goes on.
    assert len(closes) == 2, closes
    assert closes[1] - closes[0] == 100, closes
    assert closes[0] <= 100, closes
    assert re.search(r"--blocking-threads \$\{WEB_THREADS:-(\d+)\}", procfile_web_command())


# --- 15: more keep-alive clients than threads, graceful stop -------------------------------------------------------


def test_15_a_worker_serves_more_keep_alive_clients_than_it_has_threads(start_web: Callable[..., Web]) -> None:
    # granian's --backpressure caps the connections a worker holds, not its requests in flight: set to the thread
    # count, the 9th keep-alive client of a worker waited forever. The Procfile leaves it at granian's default.
    web = start_web(WEB_CONCURRENCY="1", WEB_THREADS="8")
    clients = [http.client.HTTPConnection("127.0.0.1", web.port, timeout=10) for _ in range(24)]  # 3x the threads
    try:
        for _ in range(2):
            assert [ping(conn)[0] for conn in clients] == [200] * len(clients)
    finally:
        for conn in clients:
            conn.close()


def test_15_sigterm_lets_requests_in_flight_finish_then_the_server_exits(
    start_web: Callable[..., Web], clean_sandbox: SandboxHandle
) -> None:
    web = start_web(WEB_CONCURRENCY="1")
    api_key = new_api_key()
    control(clean_sandbox, "POST", "keys", {"key": api_key, "profile": "all"})
    control(clean_sandbox, "POST", "faults", {"latency_ms": 2000, "path_prefix": "/api1/jobs"})
    answers: list[Any] = []
    slow = threading.Thread(target=lambda: answers.append(call_tool(web.port, api_key, "get_jobs", {"size": 3})[1]))
    try:
        slow.start()
        _wait_for_jobs_calls(clean_sandbox, 1)  # the call is at JobNimbus, its answer 2 s away
        os.kill(web.process.pid, signal.SIGTERM)
        slow.join(30)
        exit_code = web.process.wait(30)
    finally:
        control(clean_sandbox, "DELETE", "faults")
    status, _, body = answers[0]
    assert (status, body["success"]) == (200, True), body  # answered in full, not cut off by the stop
    assert exit_code == 0, web.log()
    assert not _answers(web.port)  # and nothing listens any more


def test_the_procfile_leaves_threads_for_hits() -> None:
    """The Procfile's request threads per process exceed the default miss slots and queue together, so cached hits
    always find a thread however slow JobNimbus is (test_13 shows the mechanism with a smaller gate)."""
    found = re.search(r"--blocking-threads \$\{WEB_THREADS:-(\d+)\}", procfile_web_command())
    assert found, "the Procfile's web line names no default thread count"
    threads = int(found.group(1))
    assert threads > int(ENGINE_DEFAULTS["MISS_CONCURRENCY"]) + int(ENGINE_DEFAULTS["MISS_QUEUE"]) > 0
