"""`make run`'s supervisor brings up the whole stack on embedded defaults, says when it is ready, keeps its Redis
keys apart, hides the webhook secret from the process list, and Ctrl-C stops all of it. `make run-managed` does the
same in managed mode, with a stable encryption key and a demo (`manage.py managed_demo`) whose logins it prints."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis
import requests
from cryptography.fernet import Fernet
from django.contrib.auth.models import User
from django.core.management import call_command

from managed import vault
from managed.management.commands import managed_demo
from managed.models import JobNimbusKey, KeyAssignment
from sandbox.access import ADMIN_KEY, SALES_KEY

ROOT = Path(__file__).resolve().parent.parent
SECRET = "webhook-secret-that-must-not-be-listed"
NAMESPACE = "jobnimbus-mcp-local-"


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


def _start_stack(tmp_path: Path, *args: str) -> Iterator[Stack]:
    web, sandbox, dead_redis = _free_port(), _free_port(), _free_port()
    prefixes = ("JOBNIMBUS_", "REDIS_", "CELERY_", "DJANGO_", "MANAGED_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
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
        [sys.executable, "scripts/run_local.py", *args],
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


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    yield from _start_stack(tmp_path)


@pytest.fixture
def managed_stack(tmp_path: Path) -> Iterator[Stack]:
    yield from _start_stack(tmp_path, "--managed")


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


@pytest.mark.e2e
@pytest.mark.slow
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
    assert "Managed mode (connect by URL alone, sign in in the browser): make run-managed" in stack.output
    assert "Demo logins" not in stack.output
    assert not (stack.run_dir / "managed-encryption-key").exists(), "header mode makes no managed-mode secrets"
    assert "celery@" not in stack.output, "Celery's start-up banner should be quiet"
    assert not (stack.run_dir / "env").exists(), "make manage must not find a stack that has stopped"
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{stack.web}/health", timeout=2)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{stack.sandbox}/__sandbox/health", timeout=2)


@pytest.mark.e2e
@pytest.mark.slow
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


@pytest.mark.e2e
@pytest.mark.slow
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


@pytest.mark.e2e
@pytest.mark.slow
def test_children_do_not_outlive_a_killed_supervisor(stack: Stack) -> None:
    stack.wait_ready()
    os.kill(stack.proc.pid, signal.SIGKILL)  # the supervisor alone: no chance to stop anything itself
    stack.proc.wait(timeout=10)
    assert _closed(f"{stack.web}/health")
    assert _closed(f"{stack.sandbox}/__sandbox/health")


@pytest.mark.e2e
@pytest.mark.slow
def test_make_run_managed_challenges_a_bare_client_and_still_serves_header_mode(managed_stack: Stack) -> None:
    stack = managed_stack
    stack.wait_ready()
    assert "is READY (managed mode)" in stack.output
    passwords = json.loads((stack.run_dir / "managed-demo-passwords").read_text())
    for login in ("demo", "rep"):
        assert re.search(rf"^(  Demo logins:)? +{login} / {re.escape(passwords[login])} ", stack.output, re.M)
    saved = dict(line.split("=", 1) for line in (stack.run_dir / "env").read_text().splitlines())
    assert saved["MANAGED_MODE"] == "on"  # make manage acts on the same keys, e.g. rotate_key_encryption
    assert saved["MANAGED_KEY_ENCRYPTION_KEYS"] == (stack.run_dir / "managed-encryption-key").read_text().strip()

    # A client with no credentials is told where to sign in ...
    tools_list = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    accept = {"Accept": "application/json, text/event-stream"}
    bare = requests.post(f"{stack.web}/mcp", json=tools_list, headers=accept, timeout=30)
    assert bare.status_code == 401, bare.text
    metadata_url = f"{stack.web}/.well-known/oauth-protected-resource/mcp"
    assert f'resource_metadata="{metadata_url}"' in bare.headers["WWW-Authenticate"]
    metadata = requests.get(metadata_url, timeout=30)
    assert metadata.status_code == 200
    assert metadata.json()["resource"] == f"{stack.web}/mcp"
    # ... a client with a key in headers is served as in header mode ...
    assert not _call(stack.web, "get_users")["isError"]
    # ... and the banner's demo login signs in on the sign-in page.
    session = requests.Session()
    page = session.get(f"{stack.web}/accounts/login/", timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, page.text
    form = {"csrfmiddlewaretoken": token.group(1), "username": "rep", "password": passwords["rep"]}
    session.post(f"{stack.web}/accounts/login/", data=form, headers={"Referer": page.url}, timeout=30)
    assert "sessionid" in session.cookies, "the demo login was refused"

    os.killpg(stack.proc.pid, signal.SIGTERM)
    stack.proc.wait(timeout=60)
    assert not (stack.run_dir / "env").exists()
    assert (stack.run_dir / "managed-encryption-key").exists(), "kept: the stored keys must decrypt after a restart"
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{stack.web}/health", timeout=2)


# --- managed mode's pieces, without a stack ---------------------------------------------------------------------
@pytest.fixture
def run_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """scripts/run_local.py as a module, its RUN_DIR in tmp_path."""
    spec = importlib.util.spec_from_file_location("run_local_under_test", ROOT / "scripts" / "run_local.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "RUN_DIR", tmp_path / "run")
    return module


@pytest.fixture
def encryption(settings: Any) -> Any:
    settings.MANAGED_KEY_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    return settings


DEMO_PASSWORD, REP_PASSWORD = "demo-password-1", "rep-password-1"


def _demo(demo_password: str = DEMO_PASSWORD, rep_password: str = REP_PASSWORD) -> None:
    call_command(
        "managed_demo", "--instance", "demo", f"--demo-password={demo_password}", f"--rep-password={rep_password}"
    )


def test_managed_demo_defaults_to_the_sandbox_keys() -> None:
    assert (managed_demo.SANDBOX_FULL_KEY, managed_demo.SANDBOX_SALES_KEY) == (ADMIN_KEY, SALES_KEY)


@pytest.mark.django_db
def test_managed_demo_maps_demo_and_rep_to_their_encrypted_keys_and_is_idempotent(encryption: Any) -> None:
    _demo()
    first = {key.label: (key.pk, key.ciphertext) for key in JobNimbusKey.objects.all()}
    hashes = dict(User.objects.values_list("username", "password"))
    _demo()  # again, as every start of make run-managed does: nothing changes

    assert {key.label: (key.pk, key.ciphertext) for key in JobNimbusKey.objects.all()} == first
    assert dict(User.objects.values_list("username", "password")) == hashes
    assert sorted(first) == ["Office (full access)", "Sales rep (Dana Reyes)"]
    assert KeyAssignment.objects.count() == 2
    for key in JobNimbusKey.objects.all():
        assert ADMIN_KEY not in key.ciphertext
        assert SALES_KEY not in key.ciphertext
        assert key.instance == "demo"
        assert key.enabled
    demo, rep = User.objects.get(username="demo"), User.objects.get(username="rep")
    assert (vault.key_for_user(demo).label, vault.key_for_user(demo).secret) == ("Office (full access)", ADMIN_KEY)
    assert (vault.key_for_user(rep).label, vault.key_for_user(rep).secret) == ("Sales rep (Dana Reyes)", SALES_KEY)
    assert demo.check_password("demo-password-1")
    assert rep.check_password("rep-password-1")
    assert not demo.is_staff
    assert not rep.is_staff


@pytest.mark.django_db
def test_managed_demo_repairs_what_changed_and_leaves_staff_keys_alone(encryption: Any) -> None:
    _demo()
    staff_key = JobNimbusKey(instance="demo", label="Staff's own")
    vault.store(staff_key, "staffownkey000000001")
    staff_key.save()
    JobNimbusKey.objects.filter(label="Sales rep (Dana Reyes)").update(enabled=False)
    KeyAssignment.objects.filter(user__username="rep").update(key=staff_key)
    User.objects.filter(username="demo").update(is_active=False)
    # A new encryption key (the old file lost): the demo's keys no longer decrypt; the command stores them anew.
    encryption.MANAGED_KEY_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]

    _demo(demo_password="demo-password-2")

    demo, rep = User.objects.get(username="demo"), User.objects.get(username="rep")
    assert demo.is_active
    assert demo.check_password("demo-password-2")
    assert vault.key_for_user(demo).secret == ADMIN_KEY
    assert (vault.key_for_user(rep).label, vault.key_for_user(rep).secret) == ("Sales rep (Dana Reyes)", SALES_KEY)
    assert JobNimbusKey.objects.count() == 3
    assert JobNimbusKey.objects.get(label="Staff's own").ciphertext == staff_key.ciphertext


def test_managed_mode_keeps_one_encryption_key_per_checkout(
    run_local: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MANAGED_KEY_ENCRYPTION_KEYS", raising=False)
    monkeypatch.delenv("MANAGED_MODE", raising=False)
    header = run_local.stack_environment("redis://127.0.0.1:6379/0", "secret")
    assert header["MANAGED_MODE"] == "off"
    assert "MANAGED_KEY_ENCRYPTION_KEYS" not in header

    first = run_local.stack_environment("redis://127.0.0.1:6379/0", "secret", managed=True)
    again = run_local.stack_environment("redis://127.0.0.1:6379/0", "secret", managed=True)
    assert first["MANAGED_MODE"] == "on"
    assert first["MANAGED_KEY_ENCRYPTION_KEYS"] == again["MANAGED_KEY_ENCRYPTION_KEYS"]
    Fernet(first["MANAGED_KEY_ENCRYPTION_KEYS"].encode())  # a valid Fernet key
    saved = run_local.RUN_DIR / "managed-encryption-key"
    assert saved.stat().st_mode & 0o777 == 0o600

    monkeypatch.setenv("MANAGED_KEY_ENCRYPTION_KEYS", "the-operators-own")
    assert run_local.stack_environment("r", "s", managed=True)["MANAGED_KEY_ENCRYPTION_KEYS"] == "the-operators-own"
    monkeypatch.setenv("MANAGED_MODE", "on")
    assert run_local.managed_requested()  # the shell's MANAGED_MODE=on chooses managed mode too


def test_the_banner_says_how_to_connect_in_each_mode(run_local: ModuleType) -> None:
    url = f"http://127.0.0.1:{run_local.WEB_PORT}/mcp"
    header = run_local.ready_banner("Redis", "admin / pw", "SQLite")
    logins = [("demo", "pw-demo", "Office (full access)"), ("rep", "pw-rep", "Sales rep (Dana Reyes)")]
    managed = run_local.ready_banner("Redis", "admin / pw", "SQLite", logins)

    headers_line = f'--header "X-JobNimbus-Api-Key: {run_local.SANDBOX_KEY}"'
    assert "JobNimbus MCP server is READY: " in header
    assert headers_line in header
    assert "make run-managed" in header
    assert "Demo logins" not in header
    assert "/accounts/login/" not in header

    assert "JobNimbus MCP server is READY (managed mode): " in managed
    assert headers_line in managed  # header mode works beside managed mode
    assert f"  Claude Code:    claude mcp add --transport http jobnimbus {url}\n" in managed  # by URL alone
    assert "  Demo logins:    demo / pw-demo   runs with the key 'Office (full access)'" in managed
    assert "                  rep / pw-rep     runs with the key 'Sales rep (Dana Reyes)'" in managed
    assert "make run-managed" not in managed
