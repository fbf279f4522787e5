"""The load run's stack: web "hosts" on loopback addresses, HAProxy in front, worker+beat, sandbox JobNimbus.

Linux routes all of 127.0.0.0/8 to lo, so each host binds its own address (127.0.0.2-4 web, 127.0.0.5 worker+beat:
it listens on nothing, the address only names it). Every process is started here, in a session of its own, with a
parent-death signal, and stopped by `Stack.close()` however the run ends.

- Web host: the Procfile's `web:` line, read at start (whatever server it names), run by bash with PORT set and
  0.0.0.0 replaced by the host's address.
- Balancer: HAProxy (Debian's), config written here, health check GET /health every 1 s, run in the foreground.
- JobNimbus: one sandbox process per instance (`east`, `west`, same seed), each with two API keys; a second HAProxy
  frontend on SANDBOX_PORT routes /api1 calls to the instance's sandbox by the key in the Authorization header
  (the server has one JOBNIMBUS_BASE_URL). Each sandbox posts its webhooks to the balancer (or the one host).
- Database: PostgreSQL at 127.0.0.1:5432, database `jnload` (created when missing, migrated).
- Redis: LOAD_REDIS_URL (default redis://127.0.0.1:6379/0) under a namespace of this run, deleted at the end.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
PYTHON = sys.executable

LB_ADDR, LB_PORT = "127.0.0.1", 8400
WEB_HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
WEB_PORT = 8401
WORKER_HOST = "127.0.0.5"
SANDBOX_PORT = 8410  # the router in front of the sandboxes (what JOBNIMBUS_BASE_URL names)
HAPROXY_STATS_PORT = 8409
INSTANCES = {"east": 8411, "west": 8412}
# Two keys per instance; the first is also the server-held key (poller, parent look-ups).
KEYS = {name: [f"loadkey-{name}-000{i}" for i in (1, 2)] for name in INSTANCES}
WEBHOOK_SECRETS = {name: f"load-webhook-secret-{name}-0001" for name in INSTANCES}
READY_TIMEOUT_S = 90.0


def _pdeathsig() -> Callable[[], None]:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    prctl = libc.prctl
    return lambda: prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: never outlive the harness


def http_get(url: str, timeout: float = 3.0, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def http_post(url: str, body: Any, timeout: float = 5.0) -> tuple[int, bytes]:
    data = orjson.dumps(body)
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return int(response.status), response.read()


def procfile_line(name: str) -> str:
    """Return the command of the Procfile's `name:` line, as written."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line[len(name) + 1 :].strip()
    raise RuntimeError(f"the Procfile has no {name}: line")


def web_command_for(host: str) -> str:
    """The Procfile's web line bound to `host` (PORT comes from the environment)."""
    line = procfile_line("web")
    if "0.0.0.0" not in line:
        raise RuntimeError(f"the Procfile's web line binds no 0.0.0.0 this harness could move to {host}: {line}")
    return "exec " + line.replace("0.0.0.0", host)


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


@dataclass
class Stack:
    """One run's processes. `mode` is "one" (a single web host, no balancer) or "three" (three behind HAProxy)."""

    mode: str
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="jn-load-")))
    namespace: str = field(default_factory=lambda: f"jnload{int(time.time())}-{os.getpid()}:")
    redis_url: str = field(default_factory=lambda: os.environ.get("LOAD_REDIS_URL", "redis://127.0.0.1:6379/0"))
    database_url: str = field(
        default_factory=lambda: os.environ.get("LOAD_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/jnload")
    )
    sandbox_latency_ms: int = 500
    sandbox_jitter_ms: int = 300
    extra_env: dict[str, str] = field(default_factory=dict)
    procs: dict[str, Proc] = field(default_factory=dict)

    # --- addresses -----------------------------------------------------------------------------------------
    @property
    def web_hosts(self) -> tuple[str, ...]:
        return WEB_HOSTS if self.mode == "three" else WEB_HOSTS[:1]

    @property
    def front_url(self) -> str:
        """Where clients (and webhooks) go: the balancer, or the one host."""
        if self.mode == "three":
            return f"http://{LB_ADDR}:{LB_PORT}"
        return f"http://{WEB_HOSTS[0]}:{WEB_PORT}"

    def sandbox_url(self, instance: str) -> str:
        return f"http://127.0.0.1:{INSTANCES[instance]}"

    # --- environment ---------------------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "PATH": f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}",
                "PYTHONPATH": str(ROOT),
                "DJANGO_SETTINGS_MODULE": "jobnimbus_site.settings",
                "DJANGO_SECRET_KEY": env.get("DJANGO_SECRET_KEY") or "load-only-secret-not-for-production-000",
                "DJANGO_DEBUG": "false",
                "DJANGO_ALLOWED_HOSTS": ",".join(["127.0.0.1", "localhost", *WEB_HOSTS]),
                "LOG_FORMAT": "text",
                "LOG_LEVEL": "WARNING",
                "DATABASE_URL": self.database_url,
                "REDIS_URL": self.redis_url,
                "CACHE_KEY_NAMESPACE": self.namespace,
                "JOBNIMBUS_INSTANCES": ",".join(INSTANCES),
                "JOBNIMBUS_BASE_URL": f"http://127.0.0.1:{SANDBOX_PORT}/api1",
                "PUBLIC_BASE_URL": self.front_url,
                "TRUSTED_PROXY_COUNT": "1" if self.mode == "three" else "0",
                # Load comes from one address with four keys: the per-key/address limits would refuse it by design.
                "MCP_THROTTLE_RATE": "100000000/second",
                "JOBNIMBUS_READY_DIR": str(self.tmp / "ready"),
            }
        )
        # The broker: the same Redis when it is a plain one; for Sentinel the settings derive it from REDIS_URL; a
        # Cluster needs CELERY_BROKER_URL given (extra_env), kombu having no Cluster transport.
        env.pop("CELERY_BROKER_URL", None)
        if self.redis_url.startswith(("redis://", "rediss://")):
            env["CELERY_BROKER_URL"] = self.redis_url
        for name in INSTANCES:
            env[f"JOBNIMBUS_API_KEY_{name.upper()}"] = KEYS[name][0]
            env[f"JOBNIMBUS_WEBHOOK_SECRET_{name.upper()}"] = WEBHOOK_SECRETS[name]
        env.update(self.extra_env)
        return env

    # --- processes -----------------------------------------------------------------------------------------
    def spawn(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> Proc:
        log = self.tmp / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=env or self.env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_pdeathsig(),
            )
        proc = self.procs[name] = Proc(name, popen, log)
        return proc

    def wait_for(self, name: str, probe: Callable[[], bool], timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        proc = self.procs.get(name)
        while not probe():
            if proc is not None and not proc.alive():
                raise RuntimeError(f"{name} exited with {proc.popen.returncode}:\n{proc.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not ready in {timeout:.0f} s:\n{proc.tail() if proc else ''}")
            time.sleep(0.2)

    @staticmethod
    def answers(url: str) -> bool:
        try:
            return http_get(url, timeout=2)[0] == 200
        except OSError:
            return False

    # --- start ---------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Database, sandboxes (+router), web hosts, worker+beat, balancer; each waited for."""
        self.prepare_database()
        self.write_haproxy_config()
        self.spawn("haproxy", [haproxy_binary(), "-db", "-f", str(self.tmp / "haproxy.cfg")])
        for name, port in INSTANCES.items():
            env = {**self.env(), "SANDBOX_WEBHOOK_TOKEN": WEBHOOK_SECRETS[name]}
            cmd = [PYTHON, "manage.py", "run_sandbox", "--port", str(port), "--quiet", "--seed", "1"]
            cmd += ["--latency-ms", str(self.sandbox_latency_ms), "--jitter-ms", str(self.sandbox_jitter_ms)]
            cmd += ["--webhook-url", f"{self.front_url}/webhooks/jobnimbus/{name}"]
            self.spawn(f"sandbox-{name}", cmd, env)
        self.wait_for("haproxy", lambda: self.answers(f"http://127.0.0.1:{SANDBOX_PORT}/__sandbox/health"))
        for name in INSTANCES:
            self.wait_for(f"sandbox-{name}", lambda n=name: self.answers(self.sandbox_url(n) + "/__sandbox/health"))  # type: ignore[misc]
            for key in KEYS[name]:
                http_post(self.sandbox_url(name) + "/__sandbox/keys", {"key": key, "profile": "all"})
        for host in self.web_hosts:
            self.start_web(host)
        self.start_worker_host()
        if self.mode == "three":
            self.wait_for("haproxy", lambda: self.answers(self.front_url + "/health"))

    def start_web(self, host: str) -> Proc:
        env = {**self.env(), "PORT": str(WEB_PORT)}
        proc = self.spawn(f"web-{host}", ["bash", "-c", web_command_for(host)], env)
        self.wait_for(proc.name, lambda: self.answers(f"http://{host}:{WEB_PORT}/health"))
        return proc

    def start_worker_host(self) -> None:
        """The Procfile's worker and beat (beat's schedule file in this run's directory)."""
        (self.tmp / "ready").mkdir(exist_ok=True)
        worker = procfile_line("worker").replace("--loglevel ${LOG_LEVEL:-info}", "--loglevel warning")
        beat = procfile_line("beat").replace("/tmp/celerybeat-schedule", str(self.tmp / "celerybeat-schedule"))  # noqa: S108
        beat = beat.replace("--loglevel ${LOG_LEVEL:-info}", "--loglevel warning")
        self.spawn(f"worker-{WORKER_HOST}", ["bash", "-c", f"exec {worker} --hostname load@{WORKER_HOST}"])
        self.spawn(f"beat-{WORKER_HOST}", ["bash", "-c", "exec " + beat])
        self.wait_for(f"worker-{WORKER_HOST}", lambda: (self.tmp / "ready" / "worker").exists())

    def prepare_database(self) -> None:
        name = self.database_url.rsplit("/", 1)[-1]
        if not re.fullmatch(r"[A-Za-z0-9_]+", name):
            raise RuntimeError(f"database name {name!r}: letters, digits and _ only")
        query = f"select 1 from pg_database where datname = '{name}'"  # noqa: S608 - checked just above
        listed = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-At", "-c", query],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if listed != "1":
            subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", name], check=True)
        subprocess.run(
            [PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=self.env(), check=True, timeout=300
        )

    def write_haproxy_config(self) -> None:
        """The balancer (three-host mode) and the sandbox router (both modes), in one foreground HAProxy."""
        web_servers = "\n".join(
            f"    server web{i + 1} {host}:{WEB_PORT} check inter 1s fall 2 rise 2" for i, host in enumerate(WEB_HOSTS)
        )
        balancer = f"""
frontend mcp
    bind {LB_ADDR}:{LB_PORT}
    default_backend web

backend web
    balance roundrobin
    option httpchk
    http-check send meth GET uri /health ver HTTP/1.1 hdr Host localhost
    http-check expect status 200
    option forwardfor
    # A POST is retried on another host only when it never reached the first one (connection refused/reset
    # before sending): a write is never sent twice.
    retries 2
    retry-on conn-failure
    option redispatch 1
    timeout server 60s
{web_servers}
"""
        sandbox_backends = "\n".join(
            f"backend sb_{name}\n    server {name} 127.0.0.1:{port}\n" for name, port in INSTANCES.items()
        )
        routes = "\n".join(
            f"    use_backend sb_{name} if {{ req.hdr(authorization) -m sub {name} }}" for name in INSTANCES
        )
        config = f"""global
    maxconn 8000

defaults
    mode http
    timeout connect 2s
    timeout client 65s
    timeout server 65s
    timeout http-keep-alive 30s
    option http-keep-alive

listen stats
    bind 127.0.0.1:{HAPROXY_STATS_PORT}
    stats enable
    stats uri /stats

frontend jobnimbus
    bind 127.0.0.1:{SANDBOX_PORT}
{routes}
    default_backend sb_{next(iter(INSTANCES))}

{sandbox_backends}
{balancer if self.mode == "three" else ""}
"""
        (self.tmp / "haproxy.cfg").write_text(config)

    # --- inspection ----------------------------------------------------------------------------------------
    def server_pids(self) -> dict[str, list[int]]:
        """The pids of each server-side process tree (web hosts, worker, beat, haproxy), for CPU accounting."""
        import psutil

        out: dict[str, list[int]] = {}
        for name, proc in self.procs.items():
            if not proc.alive():
                continue
            with suppress(psutil.Error):
                root = psutil.Process(proc.popen.pid)
                out[name] = [root.pid, *(c.pid for c in root.children(recursive=True))]
        return out

    def sandbox_totals(self) -> int:
        total = 0
        for name in INSTANCES:
            _, body = http_get(self.sandbox_url(name) + "/__sandbox/stats")
            total += int(orjson.loads(body)["total"])
        return total

    def sandbox_webhooks(self) -> dict[str, int]:
        """Deliveries the sandboxes report (their last 200 each): ok and failed."""
        ok = failed = 0
        for name in INSTANCES:
            _, body = http_get(self.sandbox_url(name) + "/__sandbox/webhooks")
            for entry in orjson.loads(body).get("deliveries", []):
                status = entry.get("status")
                if status is not None and 200 <= int(status) < 300:
                    ok += 1
                else:
                    failed += 1
        return {"ok": ok, "failed": failed}

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[name]
        if proc.alive():
            with suppress(ProcessLookupError):
                os.killpg(proc.popen.pid, sig)
            proc.popen.wait(timeout=15)

    def close(self, keep_logs: bool = False) -> None:
        procs = list(self.procs.values())
        for group in (
            [p for p in procs if not p.name.startswith(("sandbox", "haproxy"))],
            [p for p in procs if p.name.startswith(("sandbox", "haproxy"))],
        ):
            for proc in group:
                if proc.alive():
                    with suppress(ProcessLookupError):
                        os.killpg(proc.popen.pid, signal.SIGTERM)
            for proc in group:
                try:
                    proc.popen.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    with suppress(ProcessLookupError):
                        os.killpg(proc.popen.pid, signal.SIGKILL)
                    proc.popen.wait(timeout=5)
        with suppress(Exception):
            delete_namespace(self.redis_url, self.namespace)
        if not keep_logs:
            shutil.rmtree(self.tmp, ignore_errors=True)


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if found is None:
        raise RuntimeError("HAProxy is not installed: apt-get install -y haproxy")
    return found


def delete_namespace(redis_url: str, namespace: str) -> int:
    """Delete the run's keys (SCAN MATCH on its own prefix; never FLUSH)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    deleted = 0
    batch = list(client.scan_iter(match=f"{namespace}*", count=1000))
    for i in range(0, len(batch), 500):
        deleted += int(client.unlink(*batch[i : i + 500]))
    client.close()
    return deleted
