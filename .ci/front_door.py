"""CI front-door smoke test: a fresh clone, `make run` as a new user runs it, the official MCP client, the staff
dashboard, and Ctrl-C — on every CI run.

Why it exists: the test suite runs in the dev virtualenv, where requirements-dev.txt can hide a runtime dependency
that requirements.txt lacks, and nothing else drives `make run` itself (its venv set-up, its READY block, its Ctrl-C).
This script does exactly what a new user does on a clean checkout and fails loudly, with the failing process's last
log lines, when any of it breaks.

Steps: preflight (ports 8000/8090 free) · clone the committed HEAD into a temp dir · `make run` in its own process
group until the READY line · MCP: initialize, tools/list, a read twice (miss, then hit), a write read back · staff
login and the cache dashboard · SIGINT to make's group and nothing left behind. Whatever happens: leftovers killed,
the Redis keys this run created under the stack's namespace deleted (never a FLUSH), the clone removed.

Run it with the dev virtualenv (it needs requests, redis, mcp, httpx2): `.venv/bin/python .ci/front_door.py`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import anyio
import httpx2
import redis
import requests
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, TextContent

ROOT = Path(__file__).resolve().parent.parent
PORTS = {"web": 8000, "sandbox": 8090}
BASE_URL = f"http://127.0.0.1:{PORTS['web']}"
READY_LINE = "JobNimbus MCP server is READY"
API_KEY = "sandboxadminkey0001"
INSTANCE = "demo"
SERVER_NAME = "jobnimbus-mcp"
REQUIRED_TOOLS = ("get_jobs", "search_contacts", "create_contact")
MIN_TOOLS = 30
HITS = ("hit_l1", "hit_l2")
# make run's namespaces all start so (it adds an id of the checkout and port): a prefix of this run's keys.
NAMESPACE = "jobnimbus-mcp-local"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
STOP_TIMEOUT_S = 60.0
TAIL_LINES = 40
# The stack's own settings and the suite's: a user's shell has none of them, while CI's does (.ci/run exports
# DATABASE_URL and REDIS_URL for `make test`). Left in, `make run` would migrate CI's PostgreSQL test database instead
# of its embedded SQLite, and it would not be the front door a new user walks through.
STACK_VARIABLE_PREFIXES = (
    *("DJANGO_", "DATABASE_URL", "REDIS_", "CELERY_", "CACHE_", "JOBNIMBUS_", "SANDBOX_", "MCP_", "ALERT_"),
    *("DASHBOARD_", "TTL_", "LOG_", "PUBLIC_BASE_URL", "SLACK_", "RUN_DIR", "RUN_READY_", "PORT", "WEB_CONCURRENCY"),
    *(
        "GUNICORN_",
        "GRANIAN_",
        "WEB_THREADS",
        "WEB_KEEPALIVE_",
        "TEST_",
        "PYTEST_",
        "VIRTUAL_ENV",
        "PYTHONPATH",
        "MAKE",
        "MFLAGS",
    ),
)


class StepFailed(Exception):
    """A check failed; the message says what was expected and what came instead."""


@dataclass
class Run:
    """Everything one run owns, so that cleanup can undo it whichever step failed."""

    args: argparse.Namespace
    workdir: Path
    make: subprocess.Popen[bytes] | None = None
    redis_before: set[str] | None = None  # None: no Redis answered, so make run used its embedded stand-in
    summary: list[str] = field(default_factory=list)

    @property
    def clone(self) -> Path:
        return self.workdir / "jobnimbus-mcp"

    @property
    def console(self) -> Path:
        return self.workdir / "console.log"

    @property
    def redis_url(self) -> str:
        return str(self.args.redis_url or DEFAULT_REDIS_URL)

    @property
    def namespace(self) -> str:
        """The stack's Redis namespace: make run's default unless --env CACHE_KEY_NAMESPACE=... changes it."""
        chosen = [item.partition("=")[2] for item in self.args.env if item.startswith("CACHE_KEY_NAMESPACE=")]
        return chosen[-1] if chosen and chosen[-1] else NAMESPACE


# --- Steps -----------------------------------------------------------------------------------------------------------
def preflight(run: Run) -> str:
    """Refuse to start when 8000 or 8090 is taken: the checks would talk to someone else's server."""
    for name, port in PORTS.items():
        if port_answers(port):
            raise StepFailed(
                f"port {port} ({name}) is already in use on 127.0.0.1 — stop whatever listens there "
                f"(`ss -ltnp 'sport = :{port}'` names it) and run again; nothing was started or killed"
            )
    run.redis_before = redis_keys(run.redis_url, run.namespace)
    if run.redis_before is None:
        return f"ports 8000 and 8090 free; no Redis at {run.redis_url} (make run will use its embedded stand-in)"
    return (
        f"ports 8000 and 8090 free; {len(run.redis_before)} keys already under {run.namespace!r} in {run.redis_url} "
        "(not this run's; left alone)"
    )


def clone(run: Run) -> str:
    """Clone the checkout's committed HEAD: CI runs on a clean clone, so committed state is what matters."""
    head = git(ROOT, "rev-parse", "HEAD")
    git(run.workdir, "clone", "--quiet", "--no-checkout", str(ROOT), str(run.clone))
    git(run.clone, "checkout", "--quiet", "--detach", head)
    return f"{head[:12]} {git(run.clone, 'log', '-1', '--format=%s')[:70]} -> {run.clone}"


def start_and_wait_ready(run: Run) -> str:
    """Start `make run` as a terminal would (own process group, no stdin) and wait for its READY block."""
    env, dropped = user_environment(run.args)
    with run.console.open("wb") as console:  # the child keeps its own copy of the descriptor
        run.make = subprocess.Popen(
            ["make", "run"],
            cwd=run.clone,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    print(f"     make run started (pid {run.make.pid}, PYTHON={env['PYTHON']}); console: {run.console}", flush=True)
    waited = wait_for_ready(run)
    unset = f"; not passed on from this environment: {', '.join(dropped)}" if dropped else ""
    return f"READY after {waited:.0f} s (fresh .venv from requirements.txt, migrate, 4 processes){unset}"


def mcp_client(run: Run) -> str:
    """Drive the server with the official MCP client over HTTP, as any MCP host would."""
    try:
        return anyio.run(mcp_checks)
    except BaseExceptionGroup as group:
        # The client's task groups wrap the one real cause in nested groups; name it, not the wrapping.
        raise first_leaf(group) from group


def dashboard(run: Run) -> str:
    """Log in as staff the way a browser does and fetch the admin index and the cache dashboard."""
    password = (run.clone / ".venv" / "run" / "admin-password").read_text().strip()
    with requests.Session() as session:
        staff_login(session, password)
        index = session.get(f"{BASE_URL}/admin/", timeout=30)
        expect(index.status_code == 200, f"GET /admin/ answered {index.status_code}")
        expect('id="cache-dashboard-link"' in index.text, "/admin/ has no element id=cache-dashboard-link")
        expect('href="/staff/cache-dashboard"' in index.text, "/admin/ does not link /staff/cache-dashboard")
        page = session.get(f"{BASE_URL}/staff/cache-dashboard", timeout=30, allow_redirects=False)
        expect(page.status_code == 200, f"GET /staff/cache-dashboard answered {page.status_code}, not 200")
        expect('id="cache-dashboard"' in page.text, "the dashboard page lacks its id=cache-dashboard block")
        expect("Per tool" in page.text, "the dashboard page lacks its 'Per tool' table")
    return f"staff login ok; /admin/ links the dashboard; /staff/cache-dashboard 200 ({len(page.text)} bytes)"


def stop_with_ctrl_c(run: Run) -> str:
    """SIGINT to make's process group, as Ctrl-C in a terminal sends it; then nothing may be left behind."""
    assert run.make is not None
    started = time.monotonic()
    os.killpg(run.make.pid, signal.SIGINT)
    try:
        code = run.make.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise StepFailed(f"make run was still running {STOP_TIMEOUT_S:.0f} s after Ctrl-C (SIGINT)") from None
    took = time.monotonic() - started
    left = poll_until(lambda: processes_inside(run.clone), timeout=5.0)
    expect(not left, "left behind after make exited: " + "; ".join(f"pid {p}: {c[:150]}" for p, c in left.items()))
    still_open = [port for port in PORTS.values() if port_answers(port)]
    expect(not still_open, f"port(s) {still_open} still accept connections after make exited")
    return f"make exited ({exit_label(code)}) {took:.1f} s after SIGINT; no process left; 8000 and 8090 refuse"


STEPS: tuple[tuple[str, Callable[[Run], str]], ...] = (
    ("preflight", preflight),
    ("fresh clone", clone),
    ("make run -> READY", start_and_wait_ready),
    ("MCP client", mcp_client),
    ("dashboard", dashboard),
    ("Ctrl-C", stop_with_ctrl_c),
)


# --- make run --------------------------------------------------------------------------------------------------------
def user_environment(args: argparse.Namespace) -> tuple[dict[str, str], list[str]]:
    """Return the environment a new user's shell would give `make run`, and the names left out of ours."""
    dropped = sorted(name for name in os.environ if name.startswith(STACK_VARIABLE_PREFIXES))
    env = {name: value for name, value in os.environ.items() if name not in dropped}
    # This script runs in the dev venv; `python3` must not resolve into it, or its packages would leak in.
    dev_venv = str(ROOT / ".venv")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(dev_venv))
    env["PYTHON"] = os.environ.get("PYTHON") or "python3"
    if args.redis_url:
        env["REDIS_URL"] = args.redis_url
    for item in args.env:
        name, _, value = item.partition("=")
        env[name] = value
    return env, dropped


def wait_for_ready(run: Run) -> float:
    """Wait for the READY line; fail if make exits first or after --ready-timeout. Return the seconds waited."""
    assert run.make is not None
    started = time.monotonic()
    next_note = started + 60
    while READY_LINE not in run.console.read_text(errors="replace"):
        code = run.make.poll()
        if code is not None:
            raise StepFailed(f"make run exited ({exit_label(code)}) before READY{run_local_verdict(run)}")
        now = time.monotonic()
        if now - started > run.args.ready_timeout:
            raise StepFailed(f"no READY line after {run.args.ready_timeout:.0f} s{run_local_verdict(run)}")
        if now >= next_note:  # CI logs show progress through the long pip install
            print(f"     ... still waiting for READY ({now - started:.0f} s)", flush=True)
            next_note += 60
        time.sleep(1)
    return time.monotonic() - started


def run_local_verdict(run: Run) -> str:
    """Return what make run's supervisor said about a failure (which process exited or did not answer), if it did."""
    text = run.console.read_text(errors="replace")
    found = re.findall(r"^(\S+ exited with -?\d+; stopping the rest\.|not ready after .*)$", text, re.MULTILINE)
    if found:
        return f" — make run says: {found[-1]}"
    if "stopping ..." in text:  # its supervisor stopped with no process exiting: a SIGINT/SIGTERM reached it
        return " — make run's supervisor was stopped by a signal (SIGINT or SIGTERM from outside), not by a process"
    return ""


# --- MCP -------------------------------------------------------------------------------------------------------------
async def mcp_checks() -> str:
    """initialize, tools/list (every page), a read twice (miss then hit), a write read back; return what was seen."""
    headers = {"X-JobNimbus-Api-Key": API_KEY, "X-JobNimbus-Instance": INSTANCE}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(f"{BASE_URL}/mcp", http_client=http)) as client,
    ):
        name = client.server_info.name if client.server_info else None
        expect(name == SERVER_NAME, f"initialize: server name {name!r}, expected {SERVER_NAME!r}")
        parts = [f"initialize ok ({name}, protocol {client.protocol_version})"]
        parts.append(await check_tools(client))
        parts.append(await read_twice(client))
        parts.append(await write_then_read(client))
    return "; ".join(parts)


async def check_tools(client: Client) -> str:
    """List every page of tools: the catalog must be whole, not just its first page."""
    names: list[str] = []
    cursor: str | None = None
    pages = 0
    while pages == 0 or cursor:
        pages += 1
        expect(pages <= 100, "tools/list: still a next cursor after 100 pages")  # a cursor loop must not hang CI
        listing = await client.list_tools(cursor=cursor)
        names += [tool.name for tool in listing.tools]
        cursor = listing.next_cursor
    missing = [tool for tool in REQUIRED_TOOLS if tool not in names]
    expect(not missing, f"tools/list lacks {missing} ({len(names)} tools listed)")
    expect(len(names) >= MIN_TOOLS, f"tools/list gave {len(names)} tools, expected at least {MIN_TOOLS}")
    return f"tools/list {len(names)} tools in {pages} page(s)"


async def read_twice(client: Client) -> str:
    """The same read twice: the first must go to JobNimbus (miss), the second come from the cache."""
    # A date bound no earlier run used, so no earlier entry (this run's namespace is shared on the machine's Redis)
    # can answer the first call.
    arguments = {"size": 5, "date_to": str(int(time.time()) + secrets.randbelow(10**6)), "verbosity": "summary"}
    first, first_ms = await call(client, "get_jobs", arguments)
    second, second_ms = await call(client, "get_jobs", arguments)
    statuses = (cache_status(first), cache_status(second))
    expect(statuses[0] == "miss", f"get_jobs{arguments} first call: cache status {statuses[0]!r}, expected 'miss'")
    expect(statuses[1] in HITS, f"get_jobs second call: cache status {statuses[1]!r}, expected one of {HITS}")
    return f"get_jobs {statuses[0]} {first_ms:.0f} ms then {statuses[1]} {second_ms:.0f} ms"


async def write_then_read(client: Client) -> str:
    """Create a contact, then find it by jnid and by search: the write reached JobNimbus and reads see it."""
    marker = f"Frontdoor{secrets.token_hex(4)}"
    created, _ = await call(client, "create_contact", {"first_name": "CI", "last_name": marker})
    jnid = ((created.structured_content or {}).get("record") or {}).get("jnid")
    expect(isinstance(jnid, str) and bool(jnid), f"create_contact gave no record jnid: {created.structured_content}")
    detail, _ = await call(client, "get_contact", {"jnid": jnid})
    expect(marker in json.dumps(detail.structured_content), f"get_contact {jnid} does not show {marker}")
    found, _ = await call(client, "search_contacts", {"query": marker})
    records = (found.structured_content or {}).get("records") or []
    expect(any(r.get("jnid") == jnid for r in records), f"search_contacts {marker!r} does not find {jnid}")
    return f"create_contact {jnid} read back by get_contact and search_contacts"


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> tuple[CallToolResult, float]:
    """Call a tool; fail on isError with the tool's own message. Return the result and its milliseconds."""
    started = time.perf_counter()
    result = await client.call_tool(tool, arguments)
    elapsed_ms = (time.perf_counter() - started) * 1000
    if result.is_error:
        text = " ".join(block.text for block in result.content if isinstance(block, TextContent))
        raise StepFailed(f"{tool}({arguments}) answered isError: {text[:300]}")
    return result, elapsed_ms


def cache_status(result: CallToolResult) -> str | None:
    cache = (result.meta or {}).get("jobnimbus-mcp/cache") or {}
    return cache.get("status")


def first_leaf(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


# --- Dashboard -------------------------------------------------------------------------------------------------------
def staff_login(session: requests.Session, password: str) -> None:
    """Post the admin login form with its CSRF token, as the browser does; fail if the form comes back."""
    form = session.get(f"{BASE_URL}/admin/login/", timeout=30)
    expect(form.status_code == 200, f"GET /admin/login/ answered {form.status_code}")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
    expect(token is not None and "csrftoken" in session.cookies, "GET /admin/login/ gave no CSRF token/cookie")
    assert token is not None
    data = {"username": "admin", "password": password, "csrfmiddlewaretoken": token.group(1), "next": "/admin/"}
    answer = session.post(f"{BASE_URL}/admin/login/", data=data, headers={"Referer": form.url}, timeout=30)
    expect(answer.status_code == 200, f"POST /admin/login/ answered {answer.status_code}")
    expect("sessionid" in session.cookies, "staff login refused (admin / the clone's .venv/run/admin-password)")


# --- Processes, ports, Redis -----------------------------------------------------------------------------------------
def processes_inside(directory: Path) -> dict[int, str]:
    """Return pid -> command line of every process whose command line or working directory is inside directory."""
    inside = str(directory)
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue  # it exited meanwhile
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            cwd = ""
        if inside in cmdline or cwd == inside or cwd.startswith(inside + "/"):
            found[int(entry.name)] = cmdline or f"(cwd {cwd})"
    return found


def port_answers(port: int) -> bool:
    """Return True unless 127.0.0.1:port refuses a connection (a timeout counts as taken: something is there)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except ConnectionRefusedError:
        return False
    except OSError:
        return True


def redis_keys(url: str, namespace: str) -> set[str] | None:
    """Return the keys under namespace (SCAN, never KEYS: Redis is shared), or None when no Redis answers at url."""
    try:
        with redis.Redis.from_url(url, socket_timeout=5, decode_responses=True) as client:
            return set(client.scan_iter(match=f"{namespace}*", count=1000))
    except redis.RedisError:
        return None


def delete_new_keys(run: Run) -> str:
    """Delete the keys this run created: present now, absent before it started (never FLUSH: Redis is shared).

    Another `make run` on the same Redis and namespace writes keys that cannot be told from this run's; on CI
    nothing else runs, and elsewhere --redis-url or --env CACHE_KEY_NAMESPACE=... keeps the two apart.
    """
    if run.make is None:
        return ""  # make run never started: it wrote nothing
    if run.redis_before is None:
        return "Redis: nothing to delete (no Redis answered before the run)"
    now = redis_keys(run.redis_url, run.namespace)
    if now is None:
        return f"Redis: could not reach {run.redis_url} to delete this run's keys"
    new = sorted(now - run.redis_before)
    with redis.Redis.from_url(run.redis_url, socket_timeout=5) as client:
        for start in range(0, len(new), 500):
            client.delete(*new[start : start + 500])
    return f"Redis: deleted {len(new)} keys this run created under {run.namespace!r}"


# --- Failure and cleanup ---------------------------------------------------------------------------------------------
def report_failure(run: Run, step: str, reason: str) -> None:
    """Say loudly which step failed and why, then the last lines of the console and of each process's log."""
    rule = "!" * 100
    print(f"\n{rule}\nFRONT DOOR FAILED at step '{step}':\n  {reason}\n{rule}", file=sys.stderr, flush=True)
    logs = run.clone / ".venv" / "run" / "logs"
    paths = [run.console, *sorted(logs.glob("*.log"))] if run.make is not None else []  # none before make starts
    for path in paths:
        print(f"\n--- {path} (last {TAIL_LINES} lines) ---\n{tail(path)}", file=sys.stderr, flush=True)
    if paths:  # said again below the logs, where a reader of a long CI log lands
        print(f"\n{rule}\nFRONT DOOR FAILED at step '{step}': {reason}\n{rule}", file=sys.stderr, flush=True)


def tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"(unreadable: {exc})"
    return "\n".join(lines[-TAIL_LINES:]) or "(empty)"


def cleanup(run: Run) -> list[str]:
    """Undo whatever the run left: make's group, stray processes in the clone, the run's Redis keys, the clone."""
    notes = [stop_make(run), sweep_processes(run.clone)]
    try:
        notes.append(delete_new_keys(run))
    except redis.RedisError as exc:
        notes.append(f"Redis: deleting this run's keys failed: {exc}")
    if run.args.keep_clone:
        notes.append(f"kept {run.workdir} (--keep-clone)")
    else:
        shutil.rmtree(run.workdir, ignore_errors=True)
        notes.append(f"removed {run.workdir}")
    return [note for note in notes if note]


def stop_make(run: Run) -> str:
    """Stop make's process group if it still runs: Ctrl-C first (so make run stops its children), then SIGKILL."""
    if run.make is None:
        return ""
    note = ""
    if run.make.poll() is None:
        signal_group(run.make.pid, signal.SIGINT)
        note = "stopped make run with Ctrl-C (SIGINT to its process group)"
        try:
            run.make.wait(timeout=30)
        except subprocess.TimeoutExpired:
            note = "make run ignored Ctrl-C for 30 s: killed its process group"
    signal_group(run.make.pid, signal.SIGKILL)  # whatever of the group outlived make
    run.make.wait()
    return note


def sweep_processes(directory: Path) -> str:
    """Kill what still runs inside the clone (make run's children lead their own groups, out of make's reach)."""
    left = processes_inside(directory)
    if not left:
        return ""
    for pid in left:
        signal_pid(pid, signal.SIGTERM)
    survivors = poll_until(lambda: processes_inside(directory), timeout=5.0)
    for pid in survivors:
        signal_pid(pid, signal.SIGKILL)
    return f"killed {len(left)} leftover process(es) in the clone: {sorted(left)}"


def signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group is already empty
        os.killpg(pgid, sig)


def signal_pid(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
        os.kill(pid, sig)


# --- Helpers ---------------------------------------------------------------------------------------------------------
def expect(condition: bool, message: str) -> None:
    if not condition:
        raise StepFailed(message)


def poll_until(probe: Callable[[], dict[int, str]], timeout: float) -> dict[int, str]:
    """Call probe until it returns nothing or timeout passes (a process may still be exiting); return the last."""
    deadline = time.monotonic() + timeout
    found = probe()
    while found and time.monotonic() < deadline:
        time.sleep(0.25)
        found = probe()
    return found


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def exit_label(code: int) -> str:
    """Say how a process ended: Popen reports death by signal N as -N."""
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


def on_sigterm(*_: object) -> NoReturn:
    """A cancelled CI job sends SIGTERM: leave as Ctrl-C does, through the failure report and the cleanup."""
    raise KeyboardInterrupt


def run_steps(run: Run) -> tuple[str, str] | None:
    """Run each step in order, printing progress; return (step, reason) for the first that fails, else None."""
    for name, action in STEPS:
        print(f"== {name} ...", flush=True)
        started = time.monotonic()
        try:
            detail = action(run)
        except StepFailed as exc:
            return name, str(exc)
        except Exception as exc:  # noqa: BLE001 - any error is this step's failure, reported with the logs
            return name, f"{type(exc).__name__}: {exc}"
        line = f"ok  {name:<18} {time.monotonic() - started:6.1f} s  {detail}"
        run.summary.append(line)
        print(line, flush=True)
    return None


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--redis-url", help="REDIS_URL for make run (default: none set; it finds the machine's Redis)")
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="extra variable for make run (e.g. drills)"
    )
    parser.add_argument("--ready-timeout", type=float, default=600.0, help="seconds to wait for READY (pip included)")
    parser.add_argument("--keep-clone", action="store_true", help="keep the temp clone and its logs for inspection")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    # make and make run must get Ctrl-C's default disposition even if this script was started with SIGINT ignored
    # (a background job of a non-interactive shell): an ignored disposition would survive exec and the SIGINT
    # check would hang. A Python handler, unlike SIG_IGN, is reset to the default in the children.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, on_sigterm)
    run = Run(args, Path(tempfile.mkdtemp(prefix="front-door-")).resolve())
    started = time.monotonic()
    try:
        try:
            failure = run_steps(run)
        except KeyboardInterrupt:
            failure = ("interrupted", "this script got SIGINT or SIGTERM before it finished")
        if failure is not None:
            report_failure(run, *failure)
    finally:
        notes = cleanup(run)  # even when a second signal cuts the report short
    print("\n== front door " + ("FAILED" if failure else f"passed in {time.monotonic() - started:.0f} s"))
    for line in [*run.summary, *(f"    cleanup: {note}" for note in notes)]:
        print(line)
    if failure:
        print(f"FAILED at step '{failure[0]}': {failure[1]}", file=sys.stderr)
    return 1 if failure else 0


if __name__ == "__main__":
    sys.exit(main())
