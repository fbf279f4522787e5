"""Assistant-session figures (issue 13): the same 20 tasks through the official client, before and after.

    .venv/bin/python bench/figures_assistant.py            # both stacks, the report (about a minute)
    .venv/bin/python bench/figures_assistant.py --quick    # the same (20 tasks are already quick); for make bench
    .venv/bin/python bench/figures_assistant.py --before-only --dump   # debug a playbook: print every answer

BEFORE is the catalog at commit 8534a84 (the tool surface issue 13 started from), checked out with
`git worktree add --detach <tmp>/assistant-base 8534a84` (made when missing; removed at the end when this run
made it) and served from there: same .venv python, cwd and PYTHONPATH at the worktree. AFTER is this working tree.
Each gets a stack of its own, one after the other: its own sandbox JobNimbus (seed 1, the data built at the fixed
instant ANCHOR, so both hold byte-identical records and created records get the same jnids; latency 0 unless
--latency-ms: the figures are counts, not times), a migrated temporary SQLite database, gunicorn from the Procfile's
web line with bench.settings, and a Redis namespace of its own (cold cache at the start of each session).

A session is one connection of the official `mcp` client (ClientSession over streamable HTTP with
httpx2, as tests/test_mcp_clients.py does): initialize, tools/list once (its bytes are what every conversation
pays), then 20 tasks a roofing contractor asks an assistant for, each a small playbook of tool calls that finds
its ids in earlier answers (a contact found by name, then their job, ...; no jnid is written here). There are two
playbooks for the same tasks: BEFORE uses the 8534a84 surface (get_job, then get_tasks/get_activities/... with
related_to); AFTER reads the served tools/list and uses what it offers (`include` on get_job/get_contact when the
input schema has it, for the parts its enum names; the old separate calls for parts it does not; the first of a
few names for a tool) and fails with a message naming the missing tool when a task cannot be done. Both are
equally economical otherwise (same page sizes, default verbosity): the only difference is what the surface allows.
"This week" is the calendar week of ANCHOR (never today's date).

Counted per task and session: MCP calls (tools/list + tools/call; the handshake is shown apart), response bytes
(the HTTP bodies of the JSON-RPC answers as received, counted by a wrapper around the client's httpx2
transport), JobNimbus calls (the sandbox's /__sandbox/stats delta) and errors (isError answers). Each task also
prints a short outcome (ids and counts it found); a task whose outcome differs between the stacks is flagged.
Exits 0 whatever the figures (they are a report), 1 when a stack cannot start.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness as h

BASE_COMMIT = "8534a84"
BASE_TREE = Path(tempfile.gettempdir()) / "assistant-base"
# The sandbox builds its records around this instant (the tests' frozen clock, tests/fixtures/clock.py BASE).
ANCHOR = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
WEEK_START = datetime(2026, 11, 23, tzinfo=UTC)  # the Monday of ANCHOR's week
WEEK_END = WEEK_START + timedelta(days=7, seconds=-1)
CONTACT_NAME = "Aisha Thomas"  # what the user types; the session finds the rest
NEW_LEAD = {"first_name": "Jordan", "last_name": "Blake", "mobile_phone": "(214) 555-0134"}
INVOICE_OVER = 5_000.0
RELATED_PARTS = ("tasks", "activities", "estimates", "invoices", "attachments")


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the stacks --------------------------------------------------------------------------------------------


@dataclass
class TreeStack(h.Stack):
    """harness.Stack run from another source tree (cwd, PYTHONPATH, manage.py and Procfile of `root`)."""

    root: Path = h.ROOT

    def start_anchored_sandbox(self, latency_ms: int) -> None:
        """Start the tree's sandbox with its data built at ANCHOR (run_sandbox always builds at time.time())."""
        port = h.free_port()
        self.sandbox_url = f"http://127.0.0.1:{port}"
        self.env["JOBNIMBUS_BASE_URL"] = self.sandbox_url + "/api1"
        script = textwrap.dedent(
            f"""
            import threading
            import sandbox.server as server
            generate = server.generate
            server.generate = lambda seed, scale, _now: generate(seed, scale, {int(ANCHOR.timestamp())})
            server.start_sandbox(port={port}, latency_ms={latency_ms}, seed=1)
            threading.Event().wait()
            """
        )
        proc = self._spawn([h.PYTHON, "-c", script], "sandbox.log")
        h.wait_http(self.sandbox_url + "/__sandbox/health", proc=proc)

    def migrate(self) -> None:
        cmd = [h.PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"]
        subprocess.run(cmd, cwd=self.root, env=self.env, check=True, timeout=300, capture_output=True)

    def start_web(self) -> None:
        if not self.web_url:
            self.web_url = f"http://127.0.0.1:{h.free_port()}"
        port = int(self.web_url.rsplit(":", 1)[1])
        cmd = h.procfile_web_command(port, self.tmp / "access.log", self.env)
        proc = self._spawn(cmd, "web.log")
        try:
            h.wait_http(self.web_url + "/health", proc=proc)
        except RuntimeError as exc:
            log = (self.tmp / "web.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{exc}; the web server's log ends:\n{log}") from exc

    def _spawn(self, cmd: list[str], log_name: str) -> subprocess.Popen[bytes]:
        log = open(self.tmp / log_name, "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            cmd, cwd=self.root, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.procs.append(proc)
        return proc


@contextmanager
def tree_stack(label: str, root: Path, latency_ms: int) -> Iterator[TreeStack]:
    """Start sandbox, database and web server from `root`; stop them and delete the run's keys on the way out."""
    stamp = f"{int(time.time())}-{os.getpid()}-{label}"
    namespace, queue = f"bench{stamp}:", f"bench-q-{stamp}"
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    tmp = Path(tempfile.mkdtemp(prefix=f"jn-bench-{label}-"))
    env = h.base_environment(tmp, namespace, redis_url, queue, PYTHONPATH=str(root))
    run = TreeStack(tmp, namespace, redis_url, queue, env, root=root)
    try:
        run.start_anchored_sandbox(latency_ms)
        run.migrate()
        run.start_web()
        yield run
    finally:
        run.close()


@contextmanager
def base_worktree() -> Iterator[Path]:
    """Yield a checkout of BASE_COMMIT: the existing worktree when it is at that commit, else a new one (removed)."""
    made = False
    if not (BASE_TREE / "manage.py").exists():
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(BASE_TREE), BASE_COMMIT],
            cwd=h.ROOT,
            check=True,
            capture_output=True,
        )
        made = True
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=BASE_TREE, capture_output=True, text=True, check=True)
    want = subprocess.run(["git", "rev-parse", BASE_COMMIT], cwd=h.ROOT, capture_output=True, text=True, check=True)
    if head.stdout.strip() != want.stdout.strip():
        raise RuntimeError(f"{BASE_TREE} is not at {BASE_COMMIT}; remove it (git worktree remove) and rerun")
    try:
        yield BASE_TREE
    finally:
        if made:
            subprocess.run(["git", "worktree", "remove", "--force", str(BASE_TREE)], cwd=h.ROOT, check=False)


# --- the client and what it counts -------------------------------------------------------------------------


class CountingTransport(httpx2.AsyncBaseTransport):
    """Wraps the client's transport: reads each answer's body as it arrives and counts its bytes."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self.inner = inner
        self.bytes = 0
        self.responses = 0
        self.log: list[tuple[str, int, int]] = []  # (method, status, body bytes) of every exchange

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.inner.handle_async_request(request)
        body = await response.aread()
        self.bytes += len(body)
        self.responses += 1
        self.log.append((request.method, response.status_code, len(body)))
        return httpx2.Response(
            status_code=response.status_code,
            headers=response.headers,
            content=body,
            request=request,
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


class MissingToolError(RuntimeError):
    """The served catalog has no tool (or argument) a playbook needs."""


@dataclass
class Answer:
    """One tools/call answer as the playbooks read it."""

    data: Any  # structuredContent, else the JSON of the first text block, else the text
    is_error: bool
    text: str


@dataclass
class TaskFigures:
    """What one task cost."""

    key: str
    calls: int = 0
    bytes: int = 0
    jobnimbus: int = 0
    errors: int = 0
    text_bytes: int = 0  # the answers' text content blocks (what a client passes the model), UTF-8
    outcome: str = ""
    failure: str = ""
    tools: list[str] = field(default_factory=list)


@dataclass
class SessionFigures:
    """What one session cost: the handshake, tools/list and the tasks."""

    label: str
    tree: str = ""
    handshake_bytes: int = 0
    list_bytes: int = 0
    list_jobnimbus: int = 0
    tool_count: int = 0
    tasks: list[TaskFigures] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return 1 + sum(t.calls for t in self.tasks)

    @property
    def bytes(self) -> int:
        return self.list_bytes + sum(t.bytes for t in self.tasks)

    @property
    def jobnimbus(self) -> int:
        return self.list_jobnimbus + sum(t.jobnimbus for t in self.tasks)

    @property
    def errors(self) -> int:
        return sum(t.errors for t in self.tasks)


class Surface:
    """The served catalog as a playbook sees it: which tools exist and what their inputs take."""

    def __init__(self, tools: list[Any]) -> None:
        self.schemas: dict[str, dict[str, Any]] = {tool.name: dict(tool.input_schema or {}) for tool in tools}

    def tool(self, *names: str) -> str:
        """Return the first of `names` the catalog has; raise naming them all when it has none."""
        for name in names:
            if name in self.schemas:
                return name
        raise MissingToolError(f"the catalog has no tool {' / '.join(names)}")

    def has(self, name: str) -> bool:
        return name in self.schemas

    def props(self, name: str) -> dict[str, Any]:
        return dict(self.schemas.get(name, {}).get("properties") or {})

    def arg(self, name: str, *args: str) -> str:
        """Return the first of `args` tool `name` takes; raise naming them when it takes none."""
        props = self.props(name)
        for arg in args:
            if arg in props:
                return arg
        raise MissingToolError(f"tool {name} takes no argument {' / '.join(args)}")

    def include_parts(self, name: str) -> set[str]:
        """Return the related parts tool `name` can include in its answer (its `include` enum), else none."""
        include = self.props(name).get("include")
        if not isinstance(include, dict):
            return set()
        items = include.get("items") if include.get("type") == "array" or "items" in include else include
        enum = (items or {}).get("enum") if isinstance(items, dict) else None
        if not enum:
            for variant in (items or {}).get("anyOf", []) if isinstance(items, dict) else []:
                enum = (enum or []) + list(variant.get("enum") or [])
        return {str(v) for v in enum} if enum else set(RELATED_PARTS) | {"jobs", "contacts"}


class Session:
    """One connected client: makes the calls, counts them and the bytes, JobNimbus calls per task."""

    def __init__(self, client: Any, meter: CountingTransport, sandbox_url: str, dump: bool) -> None:
        self.client = client
        self.meter = meter
        self.sandbox_url = sandbox_url
        self.dump = dump
        self.surface = Surface([])
        self.task = TaskFigures("")

    async def call(self, name: str, arguments: dict[str, Any]) -> Answer:
        before = self.meter.bytes
        result = await self.client.call_tool(name, arguments)
        size = self.meter.bytes - before
        self.task.calls += 1
        self.task.bytes += size
        self.task.tools.append(name)
        text = "".join(getattr(block, "text", "") for block in result.content)
        self.task.text_bytes += len(text.encode())
        data = result.structured_content
        if data is None:
            try:
                data = json.loads(text)
            except ValueError:
                data = text
        if result.is_error:
            self.task.errors += 1
        if self.dump:
            shown = json.dumps(data, default=str)
            print(
                f"    {name} {json.dumps(arguments)} → {size} B{' isError' if result.is_error else ''}: {shown[:600]}"
            )
        return Answer(data, bool(result.is_error), text)

    async def ok(self, name: str, arguments: dict[str, Any]) -> Answer:
        """Call and raise when the answer is an error (a playbook cannot go on without it)."""
        answer = await self.call(name, arguments)
        if answer.is_error:
            raise RuntimeError(f"{name} {json.dumps(arguments)} answered isError: {answer.text[:300]}")
        return answer


# --- reading answers (both surfaces: unix or ISO dates, plain or currency amounts, records or items) --------


def records(answer: Answer | Any, part: str | None = None) -> list[dict[str, Any]]:
    """Return the records of a list answer, or of one included part of a detail answer ([] when absent)."""
    data = answer.data if isinstance(answer, Answer) else answer
    if not isinstance(data, dict):
        return []
    if part is not None:
        for holder in (data, data.get("included"), data.get("related"), data.get("record")):
            if isinstance(holder, dict) and part in holder:
                return records(holder[part])
        return []
    for key in ("records", "items", "results", "data"):
        value = data.get(key)
        if isinstance(value, list):
            return [r for r in value if isinstance(r, dict)]
    return []


def record(answer: Answer) -> dict[str, Any]:
    """Return the one record of a detail or create answer."""
    data = answer.data
    if isinstance(data, dict):
        for key in ("record", "data", "result"):
            if isinstance(data.get(key), dict) and jnid(data[key]):
                return dict(data[key])
        return dict(data)
    return {}


def jnid(rec: dict[str, Any]) -> str:
    return str(rec.get("jnid") or rec.get("id") or "")


def value(rec: dict[str, Any], *names: str) -> Any:
    """Return the first present field of `names` (a field may have been renamed)."""
    for name in names:
        if rec.get(name) not in (None, ""):
            return rec[name]
    return None


def amount(raw: Any) -> float:
    """Return a money value as a float, whether a number or {"amount": ..., "currency": ...}."""
    if isinstance(raw, dict):
        raw = raw.get("amount", raw.get("value"))
    try:
        return float(raw)
    except (TypeError, ValueError):
        return 0.0


def name_of(rec: dict[str, Any]) -> str:
    return str(value(rec, "display_name", "name", "title") or "")


def status_of(rec: dict[str, Any]) -> str:
    raw = value(rec, "status_name", "status")
    return str(raw.get("name") if isinstance(raw, dict) else raw or "")


def workflow_of(rec: dict[str, Any]) -> str:
    raw = value(rec, "record_type_name", "workflow", "record_type")
    return str(raw.get("name") if isinstance(raw, dict) else raw or "")


def created_jnid(answer: Answer) -> str:
    found = jnid(record(answer))
    if not found:
        raise RuntimeError(f"the create answer names no jnid: {answer.text[:200]}")
    return found


async def list_all(s: Session, tool: str, args: dict[str, Any], max_pages: int = 10) -> list[dict[str, Any]]:
    """Return every record of a list call, following the answer's continuation (next_from or a cursor).

    A list answer cut by the server's size budget says where to go on; an assistant asked for "all of them"
    follows it, so the figures include the pages a surface needs for the whole answer.
    """
    found: list[dict[str, Any]] = []
    page = dict(args)
    for _ in range(max_pages):
        answer = await s.ok(tool, page)
        found += records(answer)
        data = answer.data if isinstance(answer.data, dict) else {}
        if data.get("next_from") is not None:
            page = {**page, s.surface.arg(tool, "from", "offset"): data["next_from"]}
        elif data.get("next_cursor"):
            page = {**page, s.surface.arg(tool, "cursor"): data["next_cursor"]}
        else:
            return found
    raise RuntimeError(f"{tool} still had more after {max_pages} pages")


async def included(s: Session, answer: Answer, part: str, parent: str) -> list[dict[str, Any]]:
    """Return an included part's records; when the part shows only its first ones, list the rest as its hint says."""
    found = records(answer, part)
    section = (
        next(
            (h[part] for h in (answer.data, answer.data.get("included")) if isinstance(h, dict) and part in h),
            None,
        )
        if isinstance(answer.data, dict)
        else None
    )
    if isinstance(section, dict) and section.get("error"):
        raise RuntimeError(f"included {part} failed: {section['error']}")
    if isinstance(section, dict) and section.get("truncated"):
        tool = s.surface.tool(f"get_{part}")
        found += await list_all(s, tool, {"related_to": parent, s.surface.arg(tool, "from", "offset"): len(found)})
    return found


async def get_one(s: Session, entity: str, record_id: str, **extra: Any) -> dict[str, Any]:
    """Read one record: get_<entity>(jnid), else the list tool get_<entity>s when it takes a jnid (merged)."""
    if s.surface.has(f"get_{entity}"):
        tool = f"get_{entity}"
    elif "jnid" in s.surface.props(f"get_{entity}s"):
        tool = f"get_{entity}s"
    else:
        raise MissingToolError(f"the catalog has no tool get_{entity}, nor get_{entity}s taking a jnid")
    args = {"jnid": record_id, **{k: v for k, v in extra.items() if k in s.surface.props(tool)}}
    answer = await s.ok(tool, args)
    listed = [r for r in records(answer) if jnid(r) == record_id]
    return listed[0] if listed else record(answer)


# --- the tasks ------------------------------------------------------------------------------------------


@dataclass
class State:
    """What the conversation knows so far (what an assistant would have in its context)."""

    contact: dict[str, Any] = field(default_factory=dict)
    job: dict[str, Any] = field(default_factory=dict)
    related: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    task_id: str = ""
    invoices: list[dict[str, Any]] = field(default_factory=list)
    estimates: list[dict[str, Any]] = field(default_factory=list)
    stage_jobs: list[dict[str, Any]] = field(default_factory=list)
    new_contact_id: str = ""


Play = Callable[[Session, State], Awaitable[str]]


@dataclass(frozen=True)
class Task:
    key: str
    ask: str  # what the user says
    before: Play
    after: Play


async def find_contact(s: Session, st: State) -> str:
    tool = s.surface.tool("search_contacts")
    found = records(await s.ok(tool, {"query": CONTACT_NAME, "size": 5}))
    exact = [r for r in found if name_of(r).lower() == CONTACT_NAME.lower()]
    if not exact:
        raise RuntimeError(f"no contact named {CONTACT_NAME} among {[name_of(r) for r in found]}")
    st.contact = exact[0]
    return f"{jnid(st.contact)} ({len(found)} matches)"


async def contact_with_jobs_before(s: Session, st: State) -> str:
    st.contact = record(await s.ok(s.surface.tool("get_contact"), {"jnid": jnid(st.contact)}))
    jobs = await list_all(s, s.surface.tool("get_jobs"), {"related_to": jnid(st.contact)})
    return _pick_job(st, jobs)


async def contact_with_jobs_after(s: Session, st: State) -> str:
    tool = s.surface.tool("get_contact")
    if "jobs" in s.surface.include_parts(tool):
        answer = await s.ok(tool, {"jnid": jnid(st.contact), "include": ["jobs"]})
        st.contact = record(answer)
        return _pick_job(st, await included(s, answer, "jobs", jnid(st.contact)))
    return await contact_with_jobs_before(s, st)


def _pick_job(st: State, jobs: list[dict[str, Any]]) -> str:
    if not jobs:
        raise RuntimeError(f"{CONTACT_NAME} has no jobs")
    st.job = jobs[0]  # lists are newest first: the job the user means
    return f"{len(jobs)} jobs, newest {jnid(st.job)}"


async def _related_separately(s: Session, st: State, parts: tuple[str, ...]) -> None:
    job_id = jnid(st.job)
    for part in parts:
        if part == "attachments":
            tool = s.surface.tool("get_attachments")
            args = {s.surface.arg(tool, "job_id", "related_to"): job_id}
        else:
            tool = s.surface.tool(f"get_{part}")
            args = {s.surface.arg(tool, "related_to"): job_id}
        st.related[part] = await list_all(s, tool, args)


def _related_outcome(st: State) -> str:
    st.estimates = st.related.get("estimates", [])
    counts = ", ".join(f"{part} {len(st.related.get(part, []))}" for part in RELATED_PARTS)
    return f"{jnid(st.job)} {status_of(st.job)!r}: {counts}"


async def job_everything_before(s: Session, st: State) -> str:
    st.job = record(await s.ok(s.surface.tool("get_job"), {"jnid": jnid(st.job)}))
    await _related_separately(s, st, RELATED_PARTS)
    return _related_outcome(st)


async def job_everything_after(s: Session, st: State) -> str:
    tool = s.surface.tool("get_job")
    parts = [p for p in RELATED_PARTS if p in s.surface.include_parts(tool)]
    answer = await s.ok(tool, {"jnid": jnid(st.job), **({"include": parts} if parts else {})})
    st.job = record(answer)
    for part in parts:
        st.related[part] = await included(s, answer, part, jnid(st.job))
    await _related_separately(s, st, tuple(p for p in RELATED_PARTS if p not in parts))
    return _related_outcome(st)


async def sales_rep(s: Session, st: State) -> str:
    rep = value(st.job, "sales_rep_name")
    if isinstance(rep, dict):
        rep = rep.get("name")
    if not rep:
        raise RuntimeError(f"the job's answer names no sales rep: {sorted(st.job)}")
    users = await list_all(s, s.surface.tool("get_users"), {"size": 100})
    match = [
        u for u in users if f"{u.get('first_name', '')} {u.get('last_name', '')}".strip() == rep or name_of(u) == rep
    ]
    email = match[0].get("email") if match else None
    return f"{rep} <{email}>"


async def add_task(s: Session, st: State) -> str:
    tool = s.surface.tool("create_task")
    start = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # next Tuesday, 9 am in Texas
    args = {"title": "Final inspection", "date_start": iso(start), "related_to": jnid(st.job)}
    st.task_id = created_jnid(await s.ok(tool, args))
    return f"task {st.task_id}"


async def move_status(s: Session, st: State) -> str:
    settings = (await s.ok(s.surface.tool("get_account_settings"), {})).data
    workflow, status = workflow_of(st.job), status_of(st.job)
    flows = settings.get("workflows") if isinstance(settings, dict) else None
    for flow in flows or []:
        if flow.get("name") == workflow and flow.get("object_type", "job") == "job":
            names = [str(x.get("name") if isinstance(x, dict) else x) for x in flow.get("statuses", flow.get("status"))]
            if status not in names:
                raise RuntimeError(f"status {status!r} is not in workflow {workflow!r}: {names}")
            following = names[names.index(status) + 1]
            await s.ok(s.surface.tool("update_job"), {"jnid": jnid(st.job), "status_name": following})
            st.job["status_name"] = following
            return f"{workflow}: {status} → {following}"
    raise RuntimeError(f"no job workflow {workflow!r} in the account settings")


async def note_on_contact(s: Session, st: State) -> str:
    note = "Called the homeowner: she picked Weathered Wood shingles; crew can start after the inspection."
    args = {"note": note, "related_to": jnid(st.contact)}
    return f"note {created_jnid(await s.ok(s.surface.tool('create_activity', 'create_note'), args))}"


async def calendar_week(s: Session, st: State) -> str:
    tool = s.surface.tool("get_calendar_activities", "get_calendar")
    found = await list_all(s, tool, {"date_from": iso(WEEK_START), "date_to": iso(WEEK_END), "size": 100})
    return f"{len(found)} scheduled"


async def overdue_tasks(s: Session, st: State) -> str:
    args = {"date_from": iso(ANCHOR - timedelta(days=14)), "date_to": iso(ANCHOR), "size": 100}
    found = await list_all(s, s.surface.tool("get_tasks"), args)
    open_ = [t for t in found if not t.get("is_completed")]
    return f"{len(open_)} open of {len(found)}"


async def open_invoices_over(s: Session, st: State) -> str:
    tool = s.surface.tool("get_invoices")
    found = []
    for status in ("Sent", "Partially Paid"):
        found += await list_all(s, tool, {"status": status, "size": 100})
    over = [r for r in found if amount(value(r, "due", "total")) > INVOICE_OVER]
    st.invoices = over
    return f"{len(over)} unpaid over {INVOICE_OVER:,.0f} (of {len(found)} unpaid)"


async def estimates_awaiting(s: Session, st: State) -> str:
    found = await list_all(s, s.surface.tool("get_estimates"), {"status": "Sent", "size": 100})
    if not st.estimates:
        st.estimates = found
    return f"{len(found)} sent, awaiting approval"


async def estimate_items(s: Session, st: State) -> str:
    if not st.estimates:
        raise RuntimeError("no estimate in the conversation")
    est = await get_one(s, "estimate", jnid(st.estimates[0]))
    items = est.get("items") or []
    if not items:  # the answer left them out: ask for every field
        est = await get_one(s, "estimate", jnid(st.estimates[0]), verbosity="detailed")
        items = est.get("items") or []
    return f"{jnid(est)}: {len(items)} line items, total {amount(est.get('total')):,.2f}"


async def invoice_payments(s: Session, st: State) -> str:
    invoices = st.related.get("invoices") or st.invoices
    if not invoices:
        raise RuntimeError("no invoice in the conversation")
    tool = s.surface.tool("get_payments")
    found = records(await s.ok(tool, {s.surface.arg(tool, "related_to"): jnid(invoices[0])}))
    paid = sum(amount(p.get("amount")) for p in found)
    return f"{jnid(invoices[0])}: {len(found)} payments, {paid:,.2f}"


async def pipeline_stage(s: Session, st: State) -> str:
    st.stage_jobs = records(await s.ok(s.surface.tool("get_jobs"), {"status": "Estimate Sent", "size": 10}))
    return f"{len(st.stage_jobs)} newest jobs in 'Estimate Sent': {[jnid(j) for j in st.stage_jobs[:3]]}..."


async def job_by_address(s: Session, st: State) -> str:
    with_address = [j for j in st.stage_jobs if j.get("address_line1")]
    if not with_address:
        raise RuntimeError("no job address in the conversation")
    address = str(with_address[0]["address_line1"])
    found = records(await s.ok(s.surface.tool("search_jobs"), {"query": address, "size": 5}))
    return f"{address!r}: {len(found)} jobs, first {jnid(found[0]) if found else None}"


async def new_leads_week(s: Session, st: State) -> str:
    args = {"status": "Lead", "date_from": iso(ANCHOR - timedelta(days=30)), "date_to": iso(ANCHOR), "size": 50}
    found = await list_all(s, s.surface.tool("get_contacts"), args)
    return f"{len(found)} new leads"


async def create_lead(s: Session, st: State) -> str:
    args = {**NEW_LEAD, "address_line1": "412 Elm St", "city": "Dallas", "state_text": "TX", "zip": "75204"}
    args["source_name"] = "Referral"
    st.new_contact_id = created_jnid(await s.ok(s.surface.tool("create_contact"), args))
    return f"contact {st.new_contact_id}"


async def create_job(s: Session, st: State) -> str:
    tool = s.surface.tool("create_job")
    args = {"name": f"{NEW_LEAD['last_name']} - Roof Inspection", "record_type_name": "Retail"}
    args[s.surface.arg(tool, "primary_contact_id", "contact_id", "related_to")] = st.new_contact_id
    return f"job {created_jnid(await s.ok(tool, args))}"


async def complete_task(s: Session, st: State) -> str:
    await s.ok(s.surface.tool("update_task"), {"jnid": st.task_id, "is_completed": True})
    return "task closed"


async def contact_recap_before(s: Session, st: State) -> str:
    contact_id = jnid(st.contact)
    contact = record(await s.ok(s.surface.tool("get_contact"), {"jnid": contact_id}))
    jobs = await list_all(s, s.surface.tool("get_jobs"), {"related_to": contact_id})
    notes = records(await s.ok(s.surface.tool("get_activities"), {"related_to": contact_id, "size": 5}))
    return f"{jnid(contact)}: {len(jobs)} jobs, {len(notes)} recent activities"


async def contact_recap_after(s: Session, st: State) -> str:
    tool = s.surface.tool("get_contact")
    parts = [p for p in ("jobs", "activities") if p in s.surface.include_parts(tool)]
    if not parts:
        return await contact_recap_before(s, st)
    answer = await s.ok(tool, {"jnid": jnid(st.contact), "include": parts})
    jobs = await included(s, answer, "jobs", jnid(st.contact)) if "jobs" in parts else []
    if "jobs" not in parts:
        jobs = await list_all(s, s.surface.tool("get_jobs"), {"related_to": jnid(st.contact)})
    notes = records(answer, "activities")[:5]
    if "activities" not in parts:
        notes = records(await s.ok(s.surface.tool("get_activities"), {"related_to": jnid(st.contact), "size": 5}))
    return f"{jnid(record(answer))}: {len(jobs)} jobs, {len(notes)} recent activities"


TASKS = (
    Task("find_contact", f"Find {CONTACT_NAME}.", find_contact, find_contact),
    Task("contact_jobs", "Show her details and her jobs.", contact_with_jobs_before, contact_with_jobs_after),
    Task("job_everything", "Open her newest job with everything on it.", job_everything_before, job_everything_after),
    Task("sales_rep", "Who is the sales rep on it, and their email?", sales_rep, sales_rep),
    Task("add_task", "Add a task on the job: final inspection next Tuesday 9 am.", add_task, add_task),
    Task("move_status", "Move the job to the next stage.", move_status, move_status),
    Task("note_contact", "Note on her contact: she picked the shingles.", note_on_contact, note_on_contact),
    Task("calendar_week", "What is on the calendar this week?", calendar_week, calendar_week),
    Task("overdue_tasks", "Which tasks of the last two weeks are still open?", overdue_tasks, overdue_tasks),
    Task("invoices_over", f"Unpaid invoices over ${INVOICE_OVER:,.0f}?", open_invoices_over, open_invoices_over),
    Task("estimates_sent", "Which estimates are waiting for approval?", estimates_awaiting, estimates_awaiting),
    Task("estimate_items", "Line items of the job's latest estimate?", estimate_items, estimate_items),
    Task("invoice_paid", "Has anything been paid on the job's invoice?", invoice_payments, invoice_payments),
    Task("pipeline", "The ten newest jobs at 'Estimate Sent'?", pipeline_stage, pipeline_stage),
    Task("job_address", "Pull up the job at the first one's address.", job_by_address, job_by_address),
    Task("new_leads", "New leads in the last 30 days?", new_leads_week, new_leads_week),
    Task("create_lead", "New lead: Jordan Blake, Elm St, Dallas, a referral.", create_lead, create_lead),
    Task("create_job", "Open a roof inspection job for him.", create_job, create_job),
    Task("close_task", "Mark the inspection task done.", complete_task, complete_task),
    Task(
        "contact_recap",
        f"Recap {CONTACT_NAME}: details, jobs, latest notes.",
        contact_recap_before,
        contact_recap_after,
    ),
)


# --- one session ----------------------------------------------------------------------------------------


async def run_session(label: str, run: TreeStack, playbook: str, dump: bool) -> SessionFigures:
    """Connect once, list the tools once, run the 20 tasks with `playbook` ('before' or 'after')."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    figures = SessionFigures(label, tree=str(run.root))
    meter = CountingTransport(httpx2.AsyncHTTPTransport())
    headers = {"X-JobNimbus-Api-Key": h.SANDBOX_KEY, "X-JobNimbus-Instance": h.INSTANCE}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60, transport=meter) as http,
        streamable_http_client(run.mcp_url, http_client=http) as (read, write),
        ClientSession(read, write) as client,
    ):
        await client.initialize()
        figures.handshake_bytes = meter.bytes
        session = Session(client, meter, run.sandbox_url, dump)
        jn_before = h.sandbox_total(run.sandbox_url)
        before = meter.bytes
        listed = await client.list_tools()
        if listed.next_cursor:
            figures.notes.append("tools/list has more pages: only the first was read (one call)")
        figures.list_bytes = meter.bytes - before
        figures.list_jobnimbus = h.sandbox_total(run.sandbox_url) - jn_before
        figures.tool_count = len(listed.tools)
        session.surface = Surface(list(listed.tools))
        state = State()
        for task in TASKS:
            session.task = TaskFigures(task.key)
            jn_before = h.sandbox_total(run.sandbox_url)
            if dump:
                print(f"  [{label}] {task.key}: {task.ask}")
            try:
                play = task.before if playbook == "before" else task.after
                session.task.outcome = await play(session, state)
            except Exception as exc:  # a failed task is reported and the session goes on
                session.task.failure = f"{type(exc).__name__}: {exc}"
                session.task.outcome = "FAILED"
            session.task.jobnimbus = h.sandbox_total(run.sandbox_url) - jn_before
            figures.tasks.append(session.task)
    others = [entry for entry in meter.log if entry[0] != "POST" or entry[1] >= 300]
    if others:
        figures.notes.append(f"exchanges other than answered POSTs (method, status, bytes): {others}")
    return figures


def measure(label: str, root: Path, playbook: str, latency_ms: int, dump: bool) -> SessionFigures:
    print(f"== {label}: serving {root} (playbook: {playbook})", flush=True)
    with tree_stack(label, root, latency_ms) as run:
        figures = anyio.run(run_session, label, run, playbook, dump)
    for task in figures.tasks:
        print(f"  {task.key:<15} {task.calls} calls {task.bytes:>7,} B  JN {task.jobnimbus:>2}  {task.outcome}")
        if task.failure:
            print(f"  {'':<15} {task.failure}")
    return figures


# --- the report -----------------------------------------------------------------------------------------


def ratio(after: float, before: float) -> str:
    return f"{after / before:.2f}" if before else "n/a"


def render(before: SessionFigures, after: SessionFigures) -> str:
    """Return the per-task table (before / after / ratio for calls, bytes, JobNimbus calls) and the totals."""
    header = ["task", "calls", "bytes", "JobNimbus calls", "errors", "same outcome"]
    rows = [
        [
            f"tools/list ({before.tool_count} → {after.tool_count} tools)",
            "1 → 1",
            f"{before.list_bytes:,} → {after.list_bytes:,} ({ratio(after.list_bytes, before.list_bytes)})",
            f"{before.list_jobnimbus} → {after.list_jobnimbus}",
            "",
            "",
        ]
    ]
    for b, a in zip(before.tasks, after.tasks, strict=True):
        same = "yes" if b.outcome == a.outcome and not b.failure and not a.failure else "**no**"
        rows.append(
            [
                b.key,
                f"{b.calls} → {a.calls}",
                f"{b.bytes:,} → {a.bytes:,} ({ratio(a.bytes, b.bytes)})",
                f"{b.jobnimbus} → {a.jobnimbus}",
                f"{b.errors} → {a.errors}",
                same,
            ]
        )
    rows.append(
        [
            "**session total**",
            f"**{before.calls} → {after.calls}** ({ratio(after.calls, before.calls)})",
            f"**{before.bytes:,} → {after.bytes:,}** ({ratio(after.bytes, before.bytes)})",
            f"**{before.jobnimbus} → {after.jobnimbus}** ({ratio(after.jobnimbus, before.jobnimbus)})",
            f"{before.errors} → {after.errors}",
            f"{sum(r[-1] == 'yes' for r in rows)} of {len(TASKS)}",
        ]
    )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(header, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    tasks_only = f"{before.calls - 1} → {after.calls - 1} tools/call"
    text_b, text_a = (sum(t.text_bytes for t in f.tasks) for f in (before, after))
    after_is = "the working tree" if after.tree == str(h.ROOT) else f"{after.tree} (a debug run)"
    notes = [
        f"before = {BASE_COMMIT} served from {before.tree}, after = {after_is}; calls = tools/list + tools/call "
        f"({tasks_only}); the handshake (initialize) apart: {before.handshake_bytes:,} → {after.handshake_bytes:,} B",
        "bytes = HTTP bodies of the JSON-RPC answers as received (structuredContent and its text block both); "
        f"the tools/call answers' text blocks alone: {text_b:,} → {text_a:,} B ({ratio(text_a, text_b)})",
        "JobNimbus calls = the sandbox's /api1 request count over the task (cache cold at the session's start)",
    ]
    for figures in (before, after):
        notes += [f"{figures.label}: {note}" for note in figures.notes]
        notes += [f"{figures.label} {t.key} failed: {t.failure}" for t in figures.tasks if t.failure]
        for b, a in zip(before.tasks, after.tasks, strict=True):
            if figures is after and b.outcome != a.outcome:
                notes.append(f"{b.key}: before {b.outcome!r}, after {a.outcome!r}")
    return "\n".join(["### Assistant session, before and after", "", *lines, "", *(f"- {n}" for n in notes)])


def main(argv: list[str] | None = None) -> int:
    """Run both sessions and print the table; return 0 (1 when a stack cannot start)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="accepted for make bench; the run is the same")
    parser.add_argument("--latency-ms", type=int, default=0, help="the sandbox's added latency per call (default 0)")
    parser.add_argument("--dump", action="store_true", help="print every call and the start of its answer")
    parser.add_argument("--before-only", action="store_true", help="run only the 8534a84 stack (both playbooks)")
    parser.add_argument(
        "--after-root",
        type=Path,
        default=h.ROOT,
        help="the tree served as AFTER (default: this working tree; the 8534a84 worktree to debug the playbooks)",
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if not shutil.which("git"):
        print("git is needed for the 8534a84 worktree", file=sys.stderr)
        return 1
    started = time.monotonic()
    try:
        with base_worktree() as base:
            before = measure("before", base, "before", args.latency_ms, args.dump)
            after_root = base if args.before_only else args.after_root.resolve()
            after = measure("after", after_root, "after", args.latency_ms, args.dump)
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"a stack did not start: {exc}", file=sys.stderr)
        return 1
    print()
    print(render(before, after))
    if not args.before_only:
        changed = subprocess.run(
            ["git", "diff", "--quiet", BASE_COMMIT, "--", "sandbox"], cwd=args.after_root, check=False
        ).returncode
        if changed:
            print(f"- sandbox/ differs from {BASE_COMMIT} in the after tree: each stack ran its own tree's sandbox")
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"- measured {stamp}; sandbox latency {args.latency_ms} ms; {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
