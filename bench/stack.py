"""What both benchmarks share: an isolated environment, the sandbox, gunicorn (Procfile `web`), Celery, wrk.

Every server binds 127.0.0.1 on a port the OS picks, and `Stack` stops all of them on exit, also on
Ctrl-C or an exception. The bench uses its own Redis database (BENCH_REDIS_DB, default 13) and a key
namespace unique to the run, and deletes only keys under that namespace at the end — never FLUSHDB.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
INSTANCE = "bench"
WEBHOOK_SECRET = "bench-webhook-secret-" + secrets.token_hex(8)
NAMESPACE = f"bench{os.getpid()}:"
LISTENING = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+)")


def redis_url() -> str:
    """Return the bench's Redis URL: the machine's Redis on a database of its own."""
    db = os.environ.get("BENCH_REDIS_DB", "13")
    return os.environ.get("BENCH_REDIS_URL", f"redis://127.0.0.1:6379/{db}")


def configure_environment(sandbox_base_url: str, api_key: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Set this process's environment for Django (bench settings) and return it for child processes."""
    values = {
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY") or "bench-only-secret",
        "DJANGO_DEBUG": "false",
        "LOG_FORMAT": "text",
        "LOG_LEVEL": "warning",
        "JOBNIMBUS_BASE_URL": sandbox_base_url,
        "JOBNIMBUS_INSTANCES": INSTANCE,
        f"JOBNIMBUS_API_KEY_{INSTANCE.upper()}": api_key,
        f"JOBNIMBUS_WEBHOOK_SECRET_{INSTANCE.upper()}": WEBHOOK_SECRET,
        "REDIS_URL": redis_url(),
        "CELERY_BROKER_URL": redis_url(),
        "CACHE_KEY_NAMESPACE": NAMESPACE,
        # The bench measures the cache, not the per-caller throttle (which has its own tests).
        "MCP_THROTTLE_RATE": "100000000/second",
        **(extra or {}),
    }
    os.environ.update(values)
    return dict(os.environ)


def setup_django() -> None:
    """Configure Django in this process (after `configure_environment`)."""
    import django

    django.setup()


def delete_namespace() -> int:
    """Delete the keys this run wrote (its namespace, its Celery queue's bindings), by SCAN; return how many."""
    import redis

    client = redis.Redis.from_url(redis_url())
    deleted = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"*{NAMESPACE}*", count=1000):  # also kombu's bindings of the queue
        batch.append(key)
        if len(batch) >= 500:
            deleted += int(client.unlink(*batch))
            batch.clear()
    if batch:
        deleted += int(client.unlink(*batch))
    client.close()
    return deleted


def procfile_command(name: str = "web") -> list[str]:
    """Return the Procfile's `name` line as argv, with its ${VAR:-default} forms resolved from the environment."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            text = re.sub(
                r"\$\{(\w+):-([^}]*)\}", lambda m: os.environ.get(m.group(1), m.group(2)), line[len(name) + 1 :]
            )
            return shlex.split(text)
    raise RuntimeError(f"Procfile has no {name!r} line")


def gunicorn_command() -> list[str]:
    """Return the Procfile's web command bound to 127.0.0.1:0, access log dropped (same for both endpoints)."""
    argv = procfile_command("web")
    bind = argv.index("--bind")
    argv[bind + 1] = "127.0.0.1:0"
    return [PYTHON, "-m", *argv]


@dataclass
class Process:
    """A child process of the bench and the file its output goes to (kept for readiness and error messages)."""

    name: str
    popen: subprocess.Popen[bytes]
    log: IO[bytes]

    def stop(self) -> None:
        """Stop the process group politely, then for good."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=5)
        self.log.close()

    def output(self) -> str:
        """Return what the process printed so far."""
        return Path(self.log.name).read_text(errors="replace")

    def tail(self) -> str:
        return "\n".join(self.output().splitlines()[-20:])


def spawn(name: str, argv: list[str], env: dict[str, str]) -> Process:
    """Start `argv` in its own process group, its output to a temporary file (no CPU spent relaying logs)."""
    log = tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log")  # noqa: SIM115 — closed by stop()
    popen = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return Process(name, popen, log)


def wait_for(what: str, ready: Callable[[], bool], process: Process, timeout_s: float = 30.0) -> None:
    """Poll `ready()` until it holds; fail with the process's output when it dies or takes too long."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():
            return
        if process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited while waiting for {what}:\n{process.tail()}")
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}:\n{process.tail()}")


def start_gunicorn(env: dict[str, str]) -> tuple[Process, str]:
    """Start gunicorn with the Procfile's configuration; return it and its base URL once it listens."""
    process = spawn("gunicorn", gunicorn_command(), env)
    wait_for("gunicorn to listen", lambda: LISTENING.search(process.output()) is not None, process)
    url = f"http://127.0.0.1:{LISTENING.search(process.output()).group(1)}"  # type: ignore[union-attr]
    wait_for("gunicorn workers", lambda: _answers(url + "/bench/bare"), process)
    return process, url


def _answers(url: str) -> bool:
    import requests

    try:
        return requests.get(url, timeout=1.0).status_code == 200
    except requests.RequestException:
        return False


def start_celery(env: dict[str, str], queue: str) -> Process:
    """Start a Celery worker (Procfile `worker` line, threads pool) consuming only `queue`; return once ready."""
    argv = [PYTHON, "-m", *procfile_command("worker"), "--pool", "threads", "-Q", queue]
    argv += ["--without-mingle", "--without-gossip", "--hostname", f"bench-{os.getpid()}@%h"]
    argv[argv.index("--loglevel") + 1] = "info"
    process = spawn("celery", argv, env)
    wait_for("the Celery worker", lambda: "ready." in process.output(), process, 60.0)
    return process


@contextmanager
def stopping(process: Process) -> Iterator[Process]:
    """Yield `process` and stop it however the block ends."""
    try:
        yield process
    finally:
        process.stop()


@contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """Turn SIGTERM into SystemExit so `finally` blocks stop every server (Ctrl-C already raises)."""

    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- wrk -----------------------------------------------------------------------------------------------


def find_wrk() -> str | None:
    """Return the wrk binary, installing Debian's package when running as root and it is missing."""
    found = shutil.which("wrk")
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    print("wrk not found: trying `apt-get install -y wrk` ...", flush=True)
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], capture_output=True, check=False, timeout=300)
    return shutil.which("wrk")


@dataclass(frozen=True)
class LoadResult:
    """One load run: requests per second and how many answers were not 2xx."""

    rps: float
    requests: int
    errors: int
    tool: str


def lua_script(method: str, body: str, headers: dict[str, str]) -> str:
    """Return a wrk Lua script sending `method` with `body` and `headers` on every request."""
    lines = [f"wrk.method = {_lua_string(method)}", f"wrk.body = {_lua_string(body)}"]
    lines += [f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items()]
    return "\n".join(lines) + "\n"


def _lua_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def run_wrk(
    wrk: str, url: str, method: str, body: str, headers: dict[str, str], seconds: float, conns: int
) -> LoadResult:
    """Run wrk against `url` and parse its summary."""
    with ExitStack() as stack:
        script = stack.enter_context(tempfile.NamedTemporaryFile("w", suffix=".lua"))
        script.write(lua_script(method, body, headers))
        script.flush()
        threads = str(min(conns, os.cpu_count() or 2))
        argv = [wrk, "-t", threads, "-c", str(conns), "-d", f"{max(1, round(seconds))}s", "-s", script.name, url]
        done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 60)
    if done.stderr.strip():  # a script error makes wrk send plain GETs: never report those as figures
        raise RuntimeError(f"wrk complained: {done.stderr.strip()[:500]}")
    out = done.stdout
    rps = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    return LoadResult(rps, total, errors, "wrk")


def run_python_load(
    url: str, method: str, body: str, headers: dict[str, str], seconds: float, conns: int
) -> LoadResult:
    """Fallback load generator when wrk is missing: `conns` keep-alive threads (client-bound on 2 cores)."""
    import requests

    stop_at = time.monotonic() + seconds
    counts = [0] * conns
    errors = [0] * conns

    def worker(slot: int) -> None:
        with requests.Session() as client:
            while time.monotonic() < stop_at:
                response = client.request(method, url, data=body.encode(), timeout=10, headers=headers)
                counts[slot] += 1
                errors[slot] += response.status_code >= 300

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(slot,), daemon=True) for slot in range(conns)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 30)
    elapsed = time.monotonic() - started
    return LoadResult(sum(counts) / elapsed, sum(counts), sum(errors), "python-threads (wrk missing)")


# --- the table -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One printed figure: what, the value, the target and whether it is met (None: no target)."""

    figure: str
    value: str
    target: str = ""
    passed: bool | None = None


def print_table(title: str, rows: list[Row]) -> str:
    """Print the rows as a Markdown table under `title` and return the text."""
    header = f"### {title}\n\n| figure | value | target | result |\n|---|---|---|---|"
    verdict = {True: "PASS", False: "FAIL", None: "-"}
    body = [f"| {r.figure} | {r.value} | {r.target or '-'} | {verdict[r.passed]} |" for r in rows]
    text = "\n".join([header, *body]) + "\n"
    print(text, flush=True)
    return text


def percentile(values: list[float], q: float) -> float:
    """Return the q-quantile (0..1) of `values` by nearest rank."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]
