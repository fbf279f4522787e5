"""Shared pieces of the benchmarks: the stack they run against, load and latency tools, and the report table.

Everything starts on 127.0.0.1 on free ports and is stopped by `Stack.close()` (also on Ctrl-C, SIGTERM or an
exception, through the `stack()` context manager). Redis is the real server at BENCH_REDIS_URL (default
redis://127.0.0.1:6379/0) under a namespace of this run only (`bench<timestamp>-<pid>:`), whose keys are
deleted at the end; the database is a temporary SQLite file. A run that kills or pauses Redis starts private
redis-servers of its own instead (`Stack.start_redis`), stopped with everything else.
"""

from __future__ import annotations

import http.client
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlparse

import orjson

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
INSTANCE = "bench"
SANDBOX_KEY = "sandboxadminkey0001"  # the sandbox's built-in admin key (sandbox.access.ADMIN_KEY)
WEBHOOK_SECRET = "bench-webhook-secret-0001"
READY_TIMEOUT_S = 60.0


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout_s: float = READY_TIMEOUT_S, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until GET url answers (any status); raise RuntimeError when it does not in time or proc exits."""
    parsed = urlparse(url)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=2)
            conn.request("GET", parsed.path or "/")
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout_s:.0f} s")


# --- the Procfile's web process ----------------------------------------------------------------------------


def procfile_web_command(port: int, access_log: Path, environ: dict[str, str]) -> list[str]:
    """Return the Procfile's `web:` command with variables expanded, bound to 127.0.0.1:port, logging to a file."""
    line = next(ln for ln in (ROOT / "Procfile").read_text().splitlines() if ln.startswith("web:"))
    expanded = re.sub(
        r"\$\{(\w+):-([^}]*)\}|\$(\w+)",
        lambda m: environ.get(m.group(1) or m.group(3), m.group(2) or ""),
        line[len("web:") :].strip(),
    )
    argv = expanded.split()
    if argv[0] == "granian":  # it writes its access log to stdout, which the stack sends to the process's log
        argv = _replace_option(_replace_option(argv, "--host", "127.0.0.1"), "--port", str(port))
        return [PYTHON, "-m", "granian", *argv[1:]]  # the venv's, whatever PATH says
    argv = _replace_option(argv, "--bind", f"127.0.0.1:{port}")
    argv = _replace_option(argv, "--access-logfile", str(access_log))
    if argv[0] == "gunicorn":  # the venv's gunicorn, whatever PATH says
        argv = [PYTHON, "-m", "gunicorn", *argv[1:]]
    return argv


def _replace_option(argv: list[str], option: str, value: str) -> list[str]:
    if option in argv:
        i = argv.index(option)
        return [*argv[: i + 1], value, *argv[i + 2 :]]
    return [*argv, option, value]


def procfile_web_summary(environ: dict[str, str]) -> str:
    """Return the workers/threads/class the Procfile's web line resolves to, for the report header."""
    argv = procfile_web_command(0, Path("-"), environ)

    def opt(name: str) -> str:
        return argv[argv.index(name) + 1] if name in argv else "?"

    if "granian" in argv[:3]:
        return f"granian {opt('--interface')} workers={opt('--workers')} blocking-threads={opt('--blocking-threads')}"
    return f"gunicorn {opt('--worker-class')} workers={opt('--workers')} threads={opt('--threads')}"


# --- the stack -------------------------------------------------------------------------------------------


@dataclass
class Stack:
    """The running pieces of one bench run and how to reach them."""

    tmp: Path
    namespace: str
    redis_url: str
    queue: str
    env: dict[str, str]
    sandbox_url: str = ""
    web_url: str = ""
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    private_redis: list[RedisServer] = field(default_factory=list)

    @property
    def mcp_url(self) -> str:
        return self.web_url + "/mcp"

    def start_sandbox(self, latency_ms: int = 0, webhooks: bool = False) -> None:
        """Start the sandbox JobNimbus (its own process); point its webhooks at the web server when asked."""
        port = free_port()
        self.sandbox_url = f"http://127.0.0.1:{port}"
        self.env["JOBNIMBUS_BASE_URL"] = self.sandbox_url + "/api1"
        cmd = [PYTHON, "manage.py", "run_sandbox", "--port", str(port), "--quiet"]
        cmd += ["--latency-ms", str(latency_ms), "--jitter-ms", "0"]
        if webhooks:
            cmd += ["--webhook-url", self.webhook_url(), "--webhook-token", WEBHOOK_SECRET]
        proc = self._spawn(cmd, "sandbox.log")
        wait_http(self.sandbox_url + "/__sandbox/health", proc=proc)

    def webhook_url(self) -> str:
        if not self.web_url:
            self.web_url = f"http://127.0.0.1:{free_port()}"
        return f"{self.web_url}/webhooks/jobnimbus/{INSTANCE}"

    def migrate(self) -> None:
        """Create the temporary database's tables."""
        subprocess.run(
            [PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=self.env, check=True, timeout=300
        )

    def start_web(self) -> None:
        """Start the web server with the Procfile's configuration on a free port; wait for /health."""
        if not self.web_url:
            self.web_url = f"http://127.0.0.1:{free_port()}"
        port = int(urlparse(self.web_url).port or 0)
        cmd = procfile_web_command(port, self.tmp / "access.log", self.env)
        proc = self._spawn(cmd, "web.log")
        wait_http(self.web_url + "/health", proc=proc)

    def start_worker(self, extra_queues: Sequence[str] = (), log_name: str = "worker.log") -> subprocess.Popen[bytes]:
        """Start a Celery worker consuming this run's queue (and `extra_queues`); wait until it says ready."""
        cmd = [PYTHON, "-m", "celery", "-A", "jobnimbus_site", "worker", "--loglevel", "info"]
        queues = ",".join([self.queue, *extra_queues])
        cmd += ["--concurrency", "2", "--pool", "threads", "-Q", queues, "--without-gossip", "--without-mingle"]
        cmd += ["--without-heartbeat", "-n", f"{self.queue}@%h"]
        proc = self._spawn(cmd, log_name)
        log = self.tmp / log_name
        deadline = time.monotonic() + READY_TIMEOUT_S
        while " ready." not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the celery worker did not start:\n" + log.read_text(errors="replace")[-2000:])
            time.sleep(0.1)
        return proc

    def start_beat(self) -> subprocess.Popen[bytes]:
        """Start Celery beat (the Procfile's `beat:`), its schedule file in this run's directory.

        It queues to Celery's default queue: only for a broker of this run (a private Redis), whose default queue
        no other worker reads; give the worker that queue too (`start_worker(extra_queues=["celery"])`).
        """
        cmd = [PYTHON, "-m", "celery", "-A", "jobnimbus_site", "beat", "--loglevel", "info"]
        cmd += ["--schedule", str(self.tmp / "celerybeat-schedule")]
        return self._spawn(cmd, "beat.log")

    def start_redis(self, name: str) -> RedisServer:
        """Start a private redis-server of this run on a free port (no persistence): a server the run may kill."""
        server = RedisServer(self, name, free_port())
        server.start()
        self.private_redis.append(server)
        return server

    def _spawn(self, cmd: list[str], log_name: str) -> subprocess.Popen[bytes]:
        log = open(self.tmp / log_name, "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        """Stop every process, delete this run's Redis keys and the temporary directory."""
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                with suppress(ProcessLookupError):  # a process the run paused (SIGSTOP) must see the SIGTERM
                    os.killpg(proc.pid, signal.SIGCONT)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        if self.redis_url not in {server.url for server in self.private_redis}:  # a private one died with the run
            delete_namespace(self.redis_url, self.namespace, self.queue)
        shutil.rmtree(self.tmp, ignore_errors=True)


@dataclass
class RedisServer:
    """A private redis-server of one run: it may be killed, paused and restarted (never the shared Redis)."""

    stack: Stack
    name: str
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server on its port (again after a kill: empty, nothing is persisted); wait for PING."""
        import redis

        cmd = [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        cmd += ["--save", "", "--appendonly", "no", "--dir", str(self.stack.tmp), "--protected-mode", "yes"]
        self.proc = self.stack._spawn(cmd, f"{self.name}.log")
        client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server {self.name} did not start") from None
                time.sleep(0.05)
        client.close()

    def signal(self, signum: int) -> None:
        """Send a signal to this server's process (SIGKILL, SIGSTOP, SIGCONT): the pid this run started."""
        assert self.proc is not None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signum)

    def kill(self) -> None:
        """SIGKILL the server and reap it."""
        self.signal(signal.SIGKILL)
        assert self.proc is not None
        self.proc.wait(timeout=10)


def delete_namespace(redis_url: str, namespace: str, queue: str) -> int:
    """Delete this run's keys (SCAN MATCH on the run's own prefix and queue names; never FLUSH)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    deleted = 0
    for pattern in (f"{namespace}*", f"{queue}*", f"*{queue}*"):
        batch = list(client.scan_iter(match=pattern, count=1000))
        for i in range(0, len(batch), 500):
            deleted += int(client.unlink(*batch[i : i + 500]))
    client.close()
    return deleted


def base_environment(tmp: Path, namespace: str, redis_url: str, queue: str, **extra: str) -> dict[str, str]:
    """Return the environment every process of the run shares (the web server's and this process's)."""
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "DJANGO_SECRET_KEY": env.get("DJANGO_SECRET_KEY") or "bench-only-secret",
            "DJANGO_DEBUG": "false",
            "LOG_FORMAT": "text",
            "LOG_LEVEL": "WARNING",
            "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{tmp / 'bench.sqlite3'}",
            "REDIS_URL": redis_url,
            "CELERY_BROKER_URL": redis_url,
            "CACHE_KEY_NAMESPACE": namespace,
            "BENCH_CELERY_QUEUE": queue,
            "JOBNIMBUS_INSTANCES": INSTANCE,
            f"JOBNIMBUS_API_KEY_{INSTANCE.upper()}": SANDBOX_KEY,
            f"JOBNIMBUS_WEBHOOK_SECRET_{INSTANCE.upper()}": WEBHOOK_SECRET,
            # The throttle's code path runs on every call, but never refuses a benchmark request.
            "MCP_THROTTLE_RATE": "100000000/second",
            "PYTHONPATH": str(ROOT),
        }
    )
    env.update(extra)
    return env


@contextmanager
def stack(**extra_env: str) -> Iterator[Stack]:
    """Yield a fresh Stack (nothing started yet); stop everything it started on the way out, however it ends."""
    namespace = f"bench{int(time.time())}-{os.getpid()}:"
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    queue = f"bench-q-{int(time.time())}-{os.getpid()}"
    tmp = Path(tempfile.mkdtemp(prefix="jn-bench-"))
    run = Stack(tmp, namespace, redis_url, queue, base_environment(tmp, namespace, redis_url, queue, **extra_env))
    previous = signal.signal(signal.SIGTERM, _raise_exit)
    try:
        yield run
    finally:
        run.close()
        signal.signal(signal.SIGTERM, previous)


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def setup_django(env: dict[str, str]) -> None:
    """Configure this process like the stack's processes and set Django up."""
    os.environ.update(env)
    import django

    django.setup()


# --- load, latency, distributions -------------------------------------------------------------------------


def mcp_call_body(name: str, arguments: dict[str, Any], rpc_id: int = 1) -> bytes:
    """Return a JSON-RPC tools/call body."""
    params = {"name": name, "arguments": arguments}
    return orjson.dumps({"jsonrpc": "2.0", "id": rpc_id, "method": "tools/call", "params": params})


MCP_HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
    "X-JobNimbus-Api-Key": SANDBOX_KEY,
    "X-JobNimbus-Instance": INSTANCE,
}


class Client:
    """One keep-alive HTTP/1.1 connection to a loopback server."""

    def __init__(self, base_url: str) -> None:
        parsed = urlparse(base_url)
        self.conn = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=30)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
        """Send one request; return (status, parsed JSON body or raw bytes)."""
        self.conn.request(method, path, body=body, headers=headers or {})
        response = self.conn.getresponse()
        data = response.read()
        try:
            return response.status, orjson.loads(data)
        except orjson.JSONDecodeError:
            return response.status, data

    def close(self) -> None:
        self.conn.close()


def sandbox_total(sandbox_url: str) -> int:
    """Return how many /api1 requests the sandbox has served (GET /__sandbox/stats)."""
    client = Client(sandbox_url)
    try:
        _, body = client.request("GET", "/__sandbox/stats")
        return int(body["total"])
    finally:
        client.close()


def percentile(values: Sequence[float], q: float) -> float:
    """Return the q-th percentile (0-100) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def zipf_sequence(n_items: int, count: int, s: float, seed: int) -> list[int]:
    """Return `count` indices in [0, n_items) drawn from a Zipf(s) law (index 0 most popular), seeded."""
    weights = [1.0 / (rank**s) for rank in range(1, n_items + 1)]
    cumulative = list(accumulate(weights))
    total = cumulative[-1]
    rng = random.Random(seed)
    return [min(n_items - 1, bisect_left(cumulative, rng.random() * total)) for _ in range(count)]


def wrk_path() -> str | None:
    """Return the wrk binary, installing Debian's package when missing and allowed; None when unavailable."""
    found = shutil.which("wrk")
    if found or os.environ.get("BENCH_NO_INSTALL") or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    print("wrk not found: installing Debian's wrk package (apt-get install -y wrk) ...", flush=True)
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], capture_output=True, check=False, timeout=300)
    return shutil.which("wrk")


@dataclass(frozen=True)
class LoadResult:
    """What a load run measured."""

    requests_per_s: float
    requests: int
    errors: int
    detail: str = ""  # what the errors were (wrk's own words)


def wrk_post(url: str, body: bytes, headers: dict[str, str], seconds: float, connections: int, tmp: Path) -> LoadResult:
    """POST `body` to url from `connections` keep-alive connections for `seconds` with wrk; return throughput.

    Non-2xx answers and socket errors are counted as errors (a figure built on refusals would be a fake).
    """
    wrk = wrk_path()
    if wrk is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    script = tmp / "post.lua"
    lua_headers = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
    script.write_text(f'wrk.method = "POST"\nwrk.body = {_lua_string(body)}\n{lua_headers}\n')
    threads = max(1, min(2, connections))
    cmd = [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s", "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(int(g) for g in sock.groups()) if sock else 0)
    detail = "; ".join(m.group(0) for m in (non2xx, sock) if m)
    return LoadResult(rps, total, errors, detail)


def _lua_string(data: bytes) -> str:
    return '"' + "".join(c if c.isalnum() or c in " {}[]:,._-" else f"\\{ord(c):03d}" for c in data.decode()) + '"'


def python_load(url: str, body: bytes, headers: dict[str, str], seconds: float, connections: int) -> LoadResult:
    """The fallback when wrk is missing: threads with keep-alive connections (much weaker than wrk: the GIL)."""
    import threading

    parsed = urlparse(url)
    stop_at = time.monotonic() + seconds
    counts = [0] * connections
    errors = [0] * connections

    def worker(i: int) -> None:
        client = Client(f"{parsed.scheme}://{parsed.netloc}")
        while time.monotonic() < stop_at:
            status, _ = client.request("POST", parsed.path, body, headers)
            counts[i] += 1
            errors[i] += status >= 300
        client.close()

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    return LoadResult(sum(counts) / elapsed, sum(counts), sum(errors))


# --- the report ----------------------------------------------------------------------------------------


@dataclass
class Report:
    """Rows of figure, value, target and verdict, printed as one table."""

    title: str
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, figure: str, value: str, target: str = "", ok: bool | None = None) -> None:
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        self.rows.append((figure, value, target, verdict))
        print(f"  measured: {figure}: {value}", flush=True)

    def render(self) -> str:
        header = ("figure", "measured", "target", "result")
        widths = [max(len(r[i]) for r in [header, *self.rows]) for i in range(4)]
        line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"
        rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
        body = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in self.rows]
        notes = [f"- {n}" for n in self.notes]
        return "\n".join([f"### {self.title}", "", line, rule, *body, "", *notes])


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} µs"
