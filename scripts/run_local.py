"""Start the whole stack on embedded defaults: `make run`. Run a management command beside it: `make manage`.

SQLite, the sandbox JobNimbus on 127.0.0.1:8090 (its automation webhooks pointed at this server), the web
server on 127.0.0.1:8000, a Celery worker and beat, and Redis from REDIS_URL — or, when none answers there,
an embedded stand-in (fakeredis's TCP server) that every process shares. Every key the stack writes to Redis
(cache, history, throttle, Celery's queues) lives under one namespace of its own, so another program on the same
Redis never sees its keys and its dashboard never counts another program's traffic.

Two modes (docs/managed-mode.md):
- header mode, `make run` (`scripts/run_local.py`): every caller sends its own JobNimbus key in headers.
- managed mode, `make run-managed` (`scripts/run_local.py --managed`; MANAGED_MODE=on in the environment chooses it
  too): header mode plus OAuth 2.1, so a client connects by URL alone and signs in in the browser. It generates a
  MANAGED_KEY_ENCRYPTION_KEYS key unless one is set (kept in RUN_DIR, so the keys it encrypted still decrypt after a
  restart) and sets up a demo (`manage.py managed_demo`): the sandbox's full key mapped to the login `demo`, its
  sales rep's key mapped to `rep`, their passwords in the READY banner.

The run's files live in RUN_DIR (default `.venv/run`): `env` (what `make manage` needs to reach this stack; it is
removed when the stack stops), `admin-password`, and `logs/<process>.log`; in managed mode also
`managed-encryption-key` and `managed-demo-passwords`. Ctrl-C stops all of it.
"""

from __future__ import annotations

import argparse
import base64
import ctypes
import hashlib
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
WEB_PORT = int(os.environ.get("PORT", "8000"))
SANDBOX_PORT = int(os.environ.get("SANDBOX_PORT", "8090"))
RUN_DIR = Path(os.environ.get("RUN_DIR", str(ROOT / ".venv" / "run"))).resolve()
INSTANCE = "demo"
SANDBOX_KEY = "sandboxadminkey0001"
# Every Redis key and channel of the stack starts with this (CACHE_KEY_NAMESPACE overrides it). It names the checkout
# and port, so two checkouts' stacks on one Redis never share a key, while a restart finds its own cache and history.
_CHECKOUT_ID = hashlib.sha256(f"{ROOT}:{WEB_PORT}".encode()).hexdigest()[:8]
NAMESPACE = os.environ.get("CACHE_KEY_NAMESPACE") or f"jobnimbus-mcp-local-{_CHECKOUT_ID}:"
READY_TIMEOUT_S = float(os.environ.get("RUN_READY_TIMEOUT_S", "180"))
LOG_TAIL_LINES = 30
# Variables `make manage` copies from the running stack (what a management command needs to reach the same
# Redis, database and sandbox). The webhook secret is not among them: no command needs it.
SHARED_VARIABLES = (
    "DJANGO_DEBUG",
    "DJANGO_SECRET_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "CACHE_KEY_NAMESPACE",
    "JOBNIMBUS_INSTANCES",
    "JOBNIMBUS_BASE_URL",
    f"JOBNIMBUS_API_KEY_{INSTANCE.upper()}",
    "PUBLIC_BASE_URL",
    "LOG_FORMAT",
    "MANAGED_MODE",
    "MANAGED_KEY_ENCRYPTION_KEYS",
)
# Managed mode's demo logins (manage.py managed_demo) and the key labels they are mapped to.
DEMO_LOGINS = (("demo", "Office (full access)"), ("rep", "Sales rep (Dana Reyes)"))


# --- Redis -------------------------------------------------------------------------------------------------------
def redis_answers(url: str) -> bool:
    """Return True when a Redis server answers PING at url (a cluster's or Sentinel's URL: through its client)."""
    if "+" in url.partition("://")[0]:
        return topology_answers(url)
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def topology_answers(url: str) -> bool:
    """Return True when the Redis Cluster or Sentinel master a `redis+cluster://` or `redis+sentinel://` URL names
    answers PING (the project's one URL parser, cacheops.redis_topology, imported only for these URLs)."""
    sys.path.insert(0, str(ROOT))
    import redis

    from cacheops.redis_topology import raw_client  # a malformed URL raises, naming REDIS_URL

    try:
        return bool(raw_client(url, socket_connect_timeout=0.5, socket_timeout=0.5).ping())
    except (redis.RedisError, OSError):
        return False


def start_embedded_redis() -> str:
    """Serve fakeredis over TCP on a free local port from a daemon thread; return its URL."""
    from fakeredis import TcpFakeServer

    server = TcpFakeServer(("127.0.0.1", 0), server_type="redis")
    # A connection's thread must not keep the supervisor alive at exit waiting for a client that will never hang up.
    server.daemon_threads = True
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, name="embedded-redis", daemon=True).start()
    return f"redis://127.0.0.1:{port}/0"


def choose_redis() -> tuple[str, str]:
    """Return the Redis URL to use and a phrase saying which Redis it is."""
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    if redis_answers(url):
        return url, f"{url}, keys under {NAMESPACE!r}"
    return start_embedded_redis(), f"embedded Redis stand-in (fakeredis; no Redis answered at {url})"


# --- Environment and commands --------------------------------------------------------------------------------------
def managed_requested() -> bool:
    """Return True when the environment asks for managed mode (MANAGED_MODE=on, as settings read it)."""
    return os.environ.get("MANAGED_MODE", "").strip().lower() in {"1", "true", "yes", "on"}


def stack_environment(redis_url: str, webhook_secret: str, managed: bool = False) -> dict[str, str]:
    """Return the environment every process of the stack shares."""
    env = dict(os.environ)
    env["MANAGED_MODE"] = "on" if managed else "off"
    if managed and not env.get("MANAGED_KEY_ENCRYPTION_KEYS"):
        env["MANAGED_KEY_ENCRYPTION_KEYS"] = managed_encryption_key()
    env.setdefault("DJANGO_DEBUG", "true")
    env.setdefault("LOG_FORMAT", "text")
    env["CACHE_KEY_NAMESPACE"] = NAMESPACE
    env.setdefault("JOBNIMBUS_INSTANCES", INSTANCE)
    env.setdefault("JOBNIMBUS_BASE_URL", f"http://127.0.0.1:{SANDBOX_PORT}/api1")
    env.setdefault(f"JOBNIMBUS_API_KEY_{INSTANCE.upper()}", SANDBOX_KEY)
    env.setdefault(f"JOBNIMBUS_WEBHOOK_SECRET_{INSTANCE.upper()}", webhook_secret)
    # The sandbox reads its webhook token from here, not from its command line, which every user can list.
    env["SANDBOX_WEBHOOK_TOKEN"] = env[f"JOBNIMBUS_WEBHOOK_SECRET_{INSTANCE.upper()}"]
    env.setdefault("PUBLIC_BASE_URL", f"http://127.0.0.1:{WEB_PORT}")
    env["REDIS_URL"] = redis_url
    if "+" not in redis_url.partition("://")[0]:  # Sentinel: settings derive the broker; a cluster needs its own
        env.setdefault("CELERY_BROKER_URL", redis_url)
    env["JOBNIMBUS_READY_DIR"] = str(RUN_DIR / "ready")
    return env


def process_commands(env: dict[str, str], scratch: Path) -> dict[str, list[str]]:
    """Return the command of each process, named as in the Procfile, each quiet but for warnings and errors."""
    webhook_url = f"http://127.0.0.1:{WEB_PORT}/webhooks/jobnimbus/{INSTANCE}"
    celery = [PYTHON, "-m", "celery", "-A", "jobnimbus_site", "--quiet"]
    return {
        "sandbox": [
            PYTHON,
            "manage.py",
            "run_sandbox",
            "--port",
            str(SANDBOX_PORT),
            "--webhook-url",
            webhook_url,
            "--quiet",
        ],
        "web": [  # the Procfile's web line, on loopback, quiet, its access log in a file
            *(PYTHON, "-m", "granian", "--interface", "wsgi", "jobnimbus_site.web:application"),
            *("--host", "127.0.0.1", "--port", str(WEB_PORT), "--workers", "2"),
            *("--blocking-threads", "64", "--respawn-failed-workers"),
            *("--workers-kill-timeout", "30", "--access-log", "--log-level", "warning"),
            *("--log-config", str(web_log_config(scratch))),
        ],
        "worker": [*celery, "worker", "--loglevel", "warning", "--concurrency", "2", "--pool", "threads"],
        # Per run: a schedule file shared with an earlier run that was killed mid-write is corrupt, and beat
        # prints a page of traceback before it recreates it.
        "beat": [*celery, "beat", "--loglevel", "warning", "--schedule", str(scratch / "celerybeat-schedule")],
    }


def managed_encryption_key() -> str:
    """Return this checkout's Fernet key for stored JobNimbus keys, made the first time and kept in RUN_DIR.

    Kept, like the admin password and the SQLite database: a new key at each start would leave the keys stored
    under the previous one undecryptable.
    """
    path = RUN_DIR / "managed-encryption-key"
    if not path.exists():
        write_private(path, base64.urlsafe_b64encode(os.urandom(32)).decode("ascii"))  # = Fernet.generate_key()
    return path.read_text().strip()


def web_log_config(scratch: Path) -> Path:
    """Write the Procfile's logging config (access lines without credentials) with its access log in logs/access.log.

    The console shows warnings and errors only; an access line per request would drown them.
    """
    config = json.loads((ROOT / "jobnimbus_site" / "granian_logging.json").read_text())
    access = {k: v for k, v in config["handlers"]["access"].items() if k != "stream"}
    config["handlers"]["access"] = {
        **access,
        "class": "logging.FileHandler",
        "filename": str(RUN_DIR / "logs" / "access.log"),
    }
    path = scratch / "granian_logging.json"
    path.write_text(json.dumps(config))
    return path


class SetupFailed(Exception):
    """A set-up step failed; the message says which and shows its output."""


def run_setup_step(what: str, cmd: list[str], env: dict[str, str]) -> str:
    """Run one set-up command; return its output, or raise SetupFailed with its last lines."""
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-LOG_TAIL_LINES:])
        raise SetupFailed(f"{what} failed (exit {result.returncode}):\n{tail}")
    return result.stdout


def prepare_database(env: dict[str, str]) -> str:
    """Migrate, and create a staff login `admin` with a fresh password the first time; return the login hint."""
    run_setup_step("migrating the database", [PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], env)
    password = secrets.token_urlsafe(12)
    script = (
        "from django.contrib.auth import get_user_model; User = get_user_model()\n"
        "if not User.objects.filter(username='admin').exists():\n"
        f"    User.objects.create_superuser('admin', 'admin@example.com', '{password}'); print('created')\n"
    )
    created = run_setup_step("creating the staff login", [PYTHON, "manage.py", "shell", "-c", script], env)
    marker = RUN_DIR / "admin-password"
    if "created" in created:
        write_private(marker, password)
    if marker.exists():
        return f"admin / {marker.read_text().strip()}   (kept in {display(marker)})"
    return 'admin (password set earlier; `make manage ARGS="changepassword admin"` resets it)'


def prepare_managed_demo(env: dict[str, str]) -> list[tuple[str, str, str]]:
    """Set up managed mode's demo (`manage.py managed_demo`, idempotent); return (login, password, key label) rows.

    The passwords are made the first time and kept in RUN_DIR, like the admin's; each start sets them again, so the
    banner's are always the ones that work.
    """
    path = RUN_DIR / "managed-demo-passwords"
    saved = json.loads(path.read_text()) if path.exists() else {}
    passwords = {login: saved.get(login) or secrets.token_urlsafe(12) for login, _ in DEMO_LOGINS}
    if passwords != saved:
        write_private(path, json.dumps(passwords))
    command = [PYTHON, "manage.py", "managed_demo", "--instance", INSTANCE]
    command += [f"--{login}-password={passwords[login]}" for login in ("demo", "rep")]
    run_setup_step("setting up the managed-mode demo", command, env)
    return [(login, passwords[login], label) for login, label in DEMO_LOGINS]


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def display(path: Path) -> str:
    """Return path relative to the checkout when it lies inside it (shorter to read and to paste)."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def save_environment(env: dict[str, str]) -> Path:
    """Record what `make manage` needs to reach this stack."""
    path = RUN_DIR / "env"
    lines = [f"{name}={shlex.quote(env[name])}" for name in SHARED_VARIABLES if name in env]
    write_private(path, "\n".join(lines) + "\n")
    return path


# --- Processes -----------------------------------------------------------------------------------------------------
def _parent_death_signal() -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to SIGTERM the child when the supervisor dies, however it dies (even SIGKILL).

    libc is loaded here, before any fork: the hook runs in the child between fork and exec, where importing or
    loading anything could deadlock on a lock another thread of the supervisor held (the embedded Redis runs in one).
    """
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None  # not Linux: a supervisor killed outright leaves its children running
    return lambda: prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


@dataclass
class Child:
    """One process of the stack: its output goes to the console (prefixed with its name) and to its log file."""

    name: str
    proc: subprocess.Popen[str]
    log_path: Path
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_TAIL_LINES))

    def pump(self, console: IO[str]) -> None:
        """Copy the child's output until it closes it."""
        assert self.proc.stdout is not None
        with self.log_path.open("a") as log:
            for line in self.proc.stdout:
                self.tail.append(line.rstrip("\n"))
                log.write(line)
                log.flush()
                console.write(f"{self.name:>7} | {line}")
                console.flush()

    def last_lines(self) -> str:
        return "\n".join(f"{self.name:>7} | {line}" for line in self.tail) or f"{self.name:>7} | (no output)"


def start_children(commands: dict[str, list[str]], env: dict[str, str]) -> dict[str, Child]:
    """Start every process, each leading its own process group (so a Ctrl-C reaches the supervisor alone)."""
    on_exec = _parent_death_signal()
    logs = RUN_DIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    children = {}
    for name, cmd in commands.items():
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            start_new_session=True,
            preexec_fn=on_exec,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        child = Child(name, proc, logs / f"{name}.log")
        threading.Thread(target=child.pump, args=(sys.stdout,), name=f"pump-{name}", daemon=True).start()
        children[name] = child
    return children


def stop_children(children: Iterable[Child]) -> None:
    """Stop the stack's own processes first and the sandbox last (a poll in flight would log its absence)."""
    children = list(children)
    stop_group([child.proc for child in children if child.name != "sandbox"])
    stop_group([child.proc for child in children if child.name == "sandbox"])


def stop_group(procs: list[subprocess.Popen[str]]) -> None:
    """Stop processes the graceful way, with SIGTERM to each one's whole group; SIGKILL what outlives 10 s.

    SIGTERM is every server's graceful stop (granian finishes the requests in flight; Celery its tasks).
    """
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# --- Readiness -----------------------------------------------------------------------------------------------------
def http_ok(url: str) -> bool:
    """Return True when url answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - a fixed local http URL
            return bool(response.status == 200)
    except OSError:
        return False


def readiness_probes() -> dict[str, Callable[[], bool]]:
    """How to tell that each process answers: HTTP for the servers, the marker Celery's ready signals write."""
    ready_dir = RUN_DIR / "ready"
    return {
        "sandbox": lambda: http_ok(f"http://127.0.0.1:{SANDBOX_PORT}/__sandbox/health"),
        "web": lambda: http_ok(f"http://127.0.0.1:{WEB_PORT}/health"),
        "worker": lambda: (ready_dir / "worker").exists(),
        "beat": lambda: (ready_dir / "beat").exists(),
    }


def first_exited(children: dict[str, Child]) -> Child | None:
    return next((child for child in children.values() if child.proc.poll() is not None), None)


def wait_until_ready(children: dict[str, Child], stop: threading.Event) -> Child | None:
    """Wait until every process answers; return the child that exited first if one did (None when all are ready).

    Raises TimeoutError when the stack is not ready in READY_TIMEOUT_S.
    """
    pending = readiness_probes()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while pending and not stop.is_set():
        dead = first_exited(children)
        if dead is not None:
            return dead
        pending = {name: probe for name, probe in pending.items() if not probe()}
        if time.monotonic() > deadline:
            raise TimeoutError(", ".join(pending))
        time.sleep(0.3)
    return None


def report_exit(child: Child) -> None:
    print(
        f"\n{child.name} exited with {child.proc.returncode}; stopping the rest. Its last lines "
        f"(all of it in {display(child.log_path)}):\n{child.last_lines()}",
        file=sys.stderr,
        flush=True,
    )


def ready_banner(
    redis_source: str, login: str, database: str, demo_logins: list[tuple[str, str, str]] | None = None
) -> str:
    """The block printed once every process answers: where things are, how to connect, how to stop.

    demo_logins (login, password, key label) are managed mode's demo people; None: header mode.
    """
    url = f"http://127.0.0.1:{WEB_PORT}/mcp"
    web = f"http://127.0.0.1:{WEB_PORT}"
    rule = "=" * 100
    if demo_logins is None:
        ready = "READY"
        headers = "Connect an MCP client:"
        managed = "Managed mode (connect by URL alone, sign in in the browser): make run-managed\n"
    else:
        ready = "READY (managed mode)"
        headers = "Connect an MCP client with a JobNimbus key in headers (header mode):"
        width = max(len(f"{name} / {password}") for name, password, _ in demo_logins)
        logins = "\n".join(
            f"{'  Demo logins:' if i == 0 else '':<18}{f'{name} / {password}':<{width}}   runs with the key {label!r}"
            for i, (name, password, label) in enumerate(demo_logins)
        )
        managed = f"""
Connect by URL alone (managed mode: the client opens the browser to sign in, then runs with that login's key):
  Claude Code:    claude mcp add --transport http jobnimbus {url}
                  then in Claude Code: /mcp -> jobnimbus -> Authenticate, and sign in as below
  Any client:     add {url}; it opens the sign-in page ({web}/accounts/login/) itself
{logins}
                  (kept in {display(RUN_DIR / "managed-demo-passwords")}; keys and mappings: {web}/admin/managed/)

"""
    return f"""
{rule}
JobNimbus MCP server is {ready}: sandbox, web, worker and beat all answer.
  MCP endpoint       {url}
  API key            {SANDBOX_KEY}   (the sandbox's admin key; instance: {INSTANCE})
  Staff login        {web}/admin/   {login}
  Cache dashboard    {web}/staff/cache-dashboard
  Sandbox JobNimbus  http://127.0.0.1:{SANDBOX_PORT}/api1
  Redis              {redis_source}
  Database           {database}
  Logs               {display(RUN_DIR / "logs")}/  (the console shows warnings and errors only)

{headers}
  Claude Code:    claude mcp add --transport http jobnimbus {url} \\
                    --header "X-JobNimbus-Api-Key: {SANDBOX_KEY}" --header "X-JobNimbus-Instance: {INSTANCE}"
  Any client:     POST {url} with the headers X-JobNimbus-Api-Key and X-JobNimbus-Instance
                  (more clients in docs/mcp-clients.md)
{managed}Management commands against this stack (another terminal): make manage ARGS="warm_cache"
Stop everything: press Ctrl-C.
{rule}
"""


def database_label(env: dict[str, str]) -> str:
    url = env.get("DATABASE_URL", "")
    if not url:
        return "SQLite db.sqlite3"
    return f"{urlparse(url).scheme} (DATABASE_URL)"


# --- Supervisor ----------------------------------------------------------------------------------------------------
def supervise(children: dict[str, Child], banner: str) -> int:
    """Wait for readiness, then until a process exits or Ctrl-C/SIGTERM arrives; stop everything; return a code."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    code = 0
    try:
        dead = wait_until_ready(children, stop)
        if dead is None and not stop.is_set():
            print(banner, flush=True)
        while dead is None and not stop.is_set():
            dead = first_exited(children)
            stop.wait(0.5)
        if dead is not None:
            report_exit(dead)
            code = dead.proc.returncode or 1
    except TimeoutError as exc:
        print(f"\nnot ready after {READY_TIMEOUT_S:.0f} s: {exc} did not answer; stopping.", file=sys.stderr)
        for child in children.values():
            print(child.last_lines(), file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        pass
    print("stopping ...", flush=True)
    stop_children(children.values())
    print("stopped.", flush=True)
    return code


def run(managed: bool = False) -> int:
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    redis_url, redis_source = choose_redis()
    env = stack_environment(redis_url, secrets.token_urlsafe(24), managed)
    mode = "managed mode" if managed else "header mode"
    print(f"Starting the JobNimbus MCP server in {mode} (Redis: {redis_source}) ...", flush=True)
    try:
        login = prepare_database(env)
        demo_logins = prepare_managed_demo(env) if managed else None
    except SetupFailed as exc:
        print(f"make run could not start: {exc}", file=sys.stderr)
        return 1
    env_file = save_environment(env)
    clear_ready_markers()
    try:
        with tempfile.TemporaryDirectory(prefix="jobnimbus-mcp-run-") as scratch:
            children = start_children(process_commands(env, Path(scratch)), env)
            banner = ready_banner(redis_source, login, database_label(env), demo_logins)
            return supervise(children, banner)
    finally:
        env_file.unlink(missing_ok=True)
        clear_ready_markers()


def clear_ready_markers() -> None:
    for marker in (RUN_DIR / "ready").glob("*"):
        marker.unlink(missing_ok=True)


# --- make manage ---------------------------------------------------------------------------------------------------
def read_saved_environment(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        name, _, quoted = line.partition("=")
        values[name] = " ".join(shlex.split(quoted))
    return values


def manage(args: list[str]) -> int:
    """Run `manage.py ARGS` with the environment of the running `make run` (its Redis, database and sandbox)."""
    path = RUN_DIR / "env"
    if not path.exists():
        print(
            "make run is not running here: start it first (management commands act on its Redis, database and "
            "sandbox).",
            file=sys.stderr,
        )
        return 2
    env = {**os.environ, **read_saved_environment(path)}
    return subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, check=False).returncode


def main(argv: list[str]) -> int:
    if argv[:1] == ["manage"]:
        return manage(argv[1:])
    parser = argparse.ArgumentParser(
        prog="scripts/run_local.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="`scripts/run_local.py manage ARGS...` (make manage) runs manage.py ARGS against the running stack.",
    )
    parser.add_argument(
        "--managed",
        action="store_true",
        help="managed mode (make run-managed): OAuth sign-in beside header mode, with demo logins",
    )
    options = parser.parse_args(argv)
    return run(managed=options.managed or managed_requested())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
