"""Start the whole stack on embedded defaults: `make run`.

SQLite, the sandbox JobNimbus on 127.0.0.1:8090 (its automation webhooks pointed at this server), the web
server on 127.0.0.1:8000, a Celery worker and beat, and Redis from REDIS_URL — or, when none answers there,
an embedded stand-in (fakeredis's TCP server) that every process shares. Ctrl-C stops all of it.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
WEB_PORT = int(os.environ.get("PORT", "8000"))
SANDBOX_PORT = int(os.environ.get("SANDBOX_PORT", "8090"))
INSTANCE = "demo"
SANDBOX_KEY = "sandboxadminkey0001"


def redis_answers(url: str) -> bool:
    """Return True when a Redis server answers PING at url."""
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
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
    """Return the Redis URL to use and a phrase saying where it came from."""
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    if redis_answers(url):
        return url, f"Redis at {url}"
    return start_embedded_redis(), "embedded Redis stand-in (fakeredis; no Redis answered at " + url + ")"


def stack_environment(redis_url: str, webhook_secret: str) -> dict[str, str]:
    """Return the environment every process of the stack shares."""
    env = dict(os.environ)
    env.setdefault("DJANGO_DEBUG", "true")
    env.setdefault("LOG_FORMAT", "text")
    env.setdefault("JOBNIMBUS_INSTANCES", INSTANCE)
    env.setdefault("JOBNIMBUS_BASE_URL", f"http://127.0.0.1:{SANDBOX_PORT}/api1")
    env.setdefault(f"JOBNIMBUS_API_KEY_{INSTANCE.upper()}", SANDBOX_KEY)
    env.setdefault(f"JOBNIMBUS_WEBHOOK_SECRET_{INSTANCE.upper()}", webhook_secret)
    env.setdefault("PUBLIC_BASE_URL", f"http://127.0.0.1:{WEB_PORT}")
    env["REDIS_URL"] = redis_url
    env.setdefault("CELERY_BROKER_URL", redis_url)
    return env


def process_commands(env: dict[str, str], run_dir: Path) -> dict[str, list[str]]:
    """Return the command of each process, named as in the Procfile; `run_dir` holds this run's scratch files."""
    webhook_url = f"http://127.0.0.1:{WEB_PORT}/webhooks/jobnimbus/{INSTANCE}"
    secret = env[f"JOBNIMBUS_WEBHOOK_SECRET_{INSTANCE.upper()}"]
    return {
        "sandbox": [
            PYTHON,
            "manage.py",
            "run_sandbox",
            "--port",
            str(SANDBOX_PORT),
            "--webhook-url",
            webhook_url,
            "--webhook-token",
            secret,
        ],
        "web": [
            PYTHON,
            "-m",
            "gunicorn",
            "jobnimbus_site.wsgi:application",
            "--bind",
            f"127.0.0.1:{WEB_PORT}",
            "--workers",
            "2",
            "--threads",
            "4",
            "--worker-class",
            "gthread",
            "--timeout",
            "60",
        ],
        "worker": [
            PYTHON,
            "-m",
            "celery",
            "-A",
            "jobnimbus_site",
            "worker",
            "--loglevel",
            "info",
            "--concurrency",
            "2",
            "--pool",
            "threads",
        ],
        "beat": [
            PYTHON,
            "-m",
            "celery",
            "-A",
            "jobnimbus_site",
            "beat",
            "--loglevel",
            "info",
            "--schedule",
            # Per run: a schedule file shared with an earlier run that was killed mid-write is corrupt, and beat
            # prints a page of traceback before it recreates it.
            str(run_dir / "celerybeat-schedule"),
        ],
    }


def prepare_database(env: dict[str, str]) -> str:
    """Migrate, and create a staff login `admin` with a fresh password the first time; return the login hint."""
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    password = secrets.token_urlsafe(12)
    script = (
        "from django.contrib.auth import get_user_model; User = get_user_model()\n"
        "if not User.objects.filter(username='admin').exists():\n"
        f"    User.objects.create_superuser('admin', 'admin@example.com', '{password}'); print('created')\n"
    )
    result = subprocess.run(
        [PYTHON, "manage.py", "shell", "-c", script], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    marker = ROOT / ".venv" / "admin-password"
    if "created" in result.stdout:
        marker.write_text(password)
    if marker.exists():
        return f"admin / {marker.read_text().strip()}  (saved in .venv/admin-password)"
    return "admin (password set earlier; `python manage.py changepassword admin` to reset)"


def print_banner(redis_source: str, login: str) -> None:
    """Tell the user what runs where and how to connect an MCP client."""
    url = f"http://127.0.0.1:{WEB_PORT}/mcp"
    key = SANDBOX_KEY
    print(
        f"""
JobNimbus MCP server is starting.
  MCP endpoint     {url}
  Sandbox JobNimbus http://127.0.0.1:{SANDBOX_PORT}/api1   (API key: {key}; instance: {INSTANCE})
  Redis            {redis_source}
  Admin            http://127.0.0.1:{WEB_PORT}/admin/   login {login}
  Health           http://127.0.0.1:{WEB_PORT}/health

Connect an MCP client:
  Claude Code:    claude mcp add --transport http --header "X-JobNimbus-Api-Key: {key}" \\
                    --header "X-JobNimbus-Instance: {INSTANCE}" jobnimbus {url}
  Claude Desktop: npx mcp-remote {url} --header "X-JobNimbus-Api-Key:{key}" --header "X-JobNimbus-Instance:{INSTANCE}"
  Inspector CLI:  npx @modelcontextprotocol/inspector --cli {url} --transport http \\
                    --header "X-JobNimbus-Api-Key: {key}" --method tools/list
Press Ctrl-C to stop everything.
""",
        flush=True,
    )


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


def supervise(commands: dict[str, list[str]], env: dict[str, str]) -> int:
    """Run every process; when one exits or Ctrl-C arrives, stop them all and return an exit code.

    Each child leads its own process group, so a Ctrl-C reaches the supervisor alone and every process is stopped
    the graceful way, with SIGTERM to its whole group: gunicorn's threaded workers can deadlock on a SIGINT that
    lands mid-request. If the supervisor itself dies, Linux sends each child SIGTERM (see _parent_death_signal).
    """
    on_exec = _parent_death_signal()
    procs = {
        name: subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True, preexec_fn=on_exec)
        for name, cmd in commands.items()
    }
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    code = 0
    try:
        while not stop.is_set():
            for name, proc in procs.items():
                if proc.poll() is not None:
                    print(f"{name} exited with {proc.returncode}; stopping the rest", file=sys.stderr)
                    code = proc.returncode or 1
                    stop.set()
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    for proc in procs.values():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs.values():
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    return code


def main() -> int:
    redis_url, redis_source = choose_redis()
    env = stack_environment(redis_url, secrets.token_urlsafe(24))
    login = prepare_database(env)
    print_banner(redis_source, login)
    with tempfile.TemporaryDirectory(prefix="jobnimbus-mcp-run-") as run_dir:
        return supervise(process_commands(env, Path(run_dir)), env)


if __name__ == "__main__":
    sys.exit(main())
