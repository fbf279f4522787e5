"""Fault figures (issue 11): nine faults injected into a running stack, one table row each, targets beside them.

    python bench/figures_faults.py               # full run (about 10 minutes)
    python bench/figures_faults.py --quick       # shorter faults and fewer pages (about 3 minutes)
    python bench/figures_faults.py --only 3,m    # some of it: fault numbers 1-9, m for the memory figure

The stack (every piece on 127.0.0.1, free ports, stopped at the end, also on Ctrl-C/SIGTERM): two private
redis-servers of this run (one the cache's REDIS_URL, one only the Celery broker, so that each fault hits one role;
in a one-Redis deployment a Redis outage is faults 1 and 7 at once), the sandbox JobNimbus (SANDBOX_LATENCY_MS per
call, firing automation webhooks at the web server), a temporary SQLite database, the Procfile's gunicorn line with
bench.settings, one Celery worker (this run's apply queue and the default queue) and Celery beat (the sweep; change
polling and warming turned off, so only webhooks carry changes). Nothing touches the shared Redis.

A steady load runs through every fault: reader threads calling tools over /mcp on the cached set (arguments read
before, so every call should be answered from cache), one thread of misses (arguments never seen), a writer
changing records at the sandbox (each change sends a webhook), and a prober POSTing webhooks itself (timed).
Each fault is a row: cached reads that failed / all calls that failed, stale reads after recovery, events lost,
the cached reads' worst latency and p99, the recovery time, and the fault's own figure. Exits 0 whatever the
figures: they are a report.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import select
import signal
import string
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from statistics import median
from typing import Any
from urllib.parse import urlparse

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness as h

SANDBOX_LATENCY_MS = 50
LEGIT_ADDRESS = "192.0.2.10"  # documentation addresses, sent as X-Forwarded-For (one trusted proxy in front)
FLOOD_ADDRESS = "198.51.100.66"
HOSTILE_ADDRESS = "203.0.113.99"
HOSTILE_KEY = "hostilebenchkey0000000001"
OTHER_KEY = "otherbenchkey00000000001"
CALL_TIMEOUT_S = 40.0  # past JobNimbus's whole 20 s budget
RECOVERY_TIMEOUT_S = 60.0
ACK_WAIT_S = 10.0
PROBE_PATH = "/bench/probe"
WEBHOOK_PATH = f"/webhooks/jobnimbus/{h.INSTANCE}"
WEBHOOK_HEADERS = {"Content-Type": "application/json", "X-Webhook-Token": h.WEBHOOK_SECRET}
LEGIT_KINDS = ("hot", "churn", "miss", "slow", "other")
DETAIL_FIELDS = ["description", "date_updated"]


@dataclass(frozen=True)
class Mode:
    """Durations and sizes of one run."""

    calm_s: float  # the no-fault window the cached reads' normal p99 comes from
    outage_s: float  # Redis killed, JobNimbus 503
    pause_s: float  # SIGSTOP of a Redis
    slow_baseline_s: float  # fault 4's window without slow misses
    slow_window_s: float  # fault 4's window with them (shorter than JobNimbus's 20 s budget: misses stay slow)
    slow_misses: int
    no_worker_changes: int
    flood_calls: int
    hostile_s: float
    fresh_changes: int  # per kind (sandbox, write tool) after each recovery
    fresh_reads: int  # reads of each changed record (and of its list page)
    pages: int  # the memory figure's distinct 100-record pages
    final_wait_s: float


FULL = Mode(10, 15, 10, 15, 16, 8, 5, 400, 15, 3, 4, 5000, 90)
QUICK = Mode(5, 8, 6, 8, 10, 8, 3, 400, 8, 1, 3, 1000, 45)


# --- HTTP -------------------------------------------------------------------------------------------------


class Conn:
    """A keep-alive connection renewed every `renew_every` requests, and before reuse when the server closed it.

    The check before reuse is what pooled HTTP clients do (urllib3's is_connection_dropped): an idle keep-alive
    connection the server closed is not a failed call; a request in flight when the server died is.
    """

    def __init__(self, base_url: str, renew_every: int = 25, timeout: float = CALL_TIMEOUT_S) -> None:
        parsed = urlparse(base_url)
        self.host, self.port = parsed.hostname or "127.0.0.1", int(parsed.port or 80)
        self.renew_every, self.timeout = renew_every, timeout
        self.conn: http.client.HTTPConnection | None = None
        self.used = 0

    def request(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, Any]:
        if self.conn is None or self.used >= self.renew_every or self._dropped():
            self.close()
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self.used = 0
        self.used += 1
        try:
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
            data = response.read()
        except Exception:
            self.close()
            raise
        if response.getheader("Connection", "").lower() == "close":
            self.close()
        try:
            return response.status, orjson.loads(data)
        except orjson.JSONDecodeError:
            return response.status, data

    def _dropped(self) -> bool:
        sock = self.conn.sock if self.conn is not None else None
        if sock is None:
            return False
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def once(
    base_url: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = CALL_TIMEOUT_S,
) -> tuple[int, Any]:
    """Send one request on a new connection (gunicorn hands new connections to any of its workers)."""
    conn = Conn(base_url, timeout=timeout)
    try:
        return conn.request(method, path, body, headers or {})
    finally:
        conn.close()


@dataclass(frozen=True)
class Outcome:
    """One tools/call as the caller saw it."""

    ok: bool
    status: str  # the cache status, or what went wrong
    seconds: float
    result: dict[str, Any] | None = None
    http: int = 0


def mcp_headers(key: str, address: str) -> dict[str, str]:
    return {**h.MCP_HEADERS, "X-JobNimbus-Api-Key": key, "X-Forwarded-For": address}


def call_tool(
    conn: Conn, tool: str, args: dict[str, Any], key: str = h.SANDBOX_KEY, address: str = LEGIT_ADDRESS
) -> Outcome:
    """Call a tool over /mcp; ok only for a 200 answer with a result that is not an error."""
    started = time.perf_counter()
    try:
        code, body = conn.request("POST", "/mcp", h.mcp_call_body(tool, args), mcp_headers(key, address))
    except Exception as exc:  # a reset, a timeout: the caller saw a failure
        return Outcome(False, f"socket: {type(exc).__name__}", time.perf_counter() - started)
    seconds = time.perf_counter() - started
    result = body.get("result") if isinstance(body, dict) else None
    if code != 200 or not isinstance(result, dict):
        error = body.get("error") if isinstance(body, dict) else None
        data = error.get("data") if isinstance(error, dict) else None
        kind = f" ({data['throttle']})" if isinstance(data, dict) and data.get("throttle") else ""
        return Outcome(False, f"HTTP {code}{kind}", seconds, None, code)
    if result.get("isError"):
        text = str((result.get("content") or [{}])[0].get("text", ""))[:80]
        return Outcome(False, f"isError: {text}", seconds, result, code)
    status = str(result.get("_meta", {}).get("jobnimbus-mcp/cache", {}).get("status"))
    return Outcome(True, status, seconds, result, code)


# --- the record of calls and changes ------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One call made by the load or an experiment: kind, when (monotonic), how long, and how it ended."""

    kind: str
    start: float
    seconds: float
    ok: bool
    status: str

    @property
    def end(self) -> float:
        return self.start + self.seconds


@dataclass
class Change:
    """A change that sends a webhook: a sandbox write, a write tool's write, or a webhook POSTed by the prober."""

    label: str  # the fault running when it was made
    kind: str  # sandbox | tool | probe
    jnid: str
    description: str = ""
    at: float = field(default_factory=time.monotonic)
    digest: str = ""  # sandbox: the digest of the webhook the sandbox sends for it
    after_id: int = 0  # tool: the newest event id before the write
    event_id: int | None = None  # probe: the id the 202 answer named
    delivered: bool = True  # probe: answered 202 within the sandbox's three attempts


@dataclass
class Probe:
    """One prober webhook: when, the first attempt's answer time and status."""

    label: str
    at: float
    seconds: float
    status: int


class Log:
    """What every thread records, appended from many threads (list.append is atomic)."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.changes: list[Change] = []
        self.probes: list[Probe] = []
        self.label = "warm-up"

    def call(self, kind: str, started: float, outcome: Outcome) -> Outcome:
        self.calls.append(Call(kind, started, outcome.seconds, outcome.ok, outcome.status))
        return outcome

    def window(self, start: float, end: float, kinds: Iterable[str]) -> list[Call]:
        """Return the calls of these kinds in flight at some moment of [start, end) (so also those a fault
        caught on their way)."""
        wanted = set(kinds)
        return [c for c in self.calls if c.kind in wanted and c.start < end and c.end > start]


# --- the sandbox ------------------------------------------------------------------------------------------


class Sandbox:
    """The sandbox's API (admin key) and control API, each request on its own connection (thread-safe)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def api(self, method: str, path: str, body: Any = None, timeout: float = CALL_TIMEOUT_S) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {h.SANDBOX_KEY}", "Content-Type": "application/json"}
        raw = orjson.dumps(body) if body is not None else None
        return once(self.url, method, "/api1" + path, raw, headers, timeout)

    def control(self, method: str, name: str, body: Any = None) -> Any:
        raw = orjson.dumps(body) if body is not None else None
        code, answer = once(self.url, method, "/__sandbox/" + name, raw, {"Content-Type": "application/json"}, 10)
        if code != 200:
            raise RuntimeError(f"sandbox control {method} {name} answered {code}: {answer!r}")
        return answer

    def fault(self, **fault: Any) -> None:
        self.control("POST", "faults", fault)

    def clear(self) -> None:
        self.control("DELETE", "faults")

    def requests(self, prefix: str) -> int:
        """Return how many /api1 requests the sandbox counted whose key starts with `prefix` (e.g. "GET /api1/x")."""
        counts = self.control("GET", "stats")["requests"]
        return sum(int(n) for k, n in counts.items() if k.startswith(prefix))

    def description(self, jnid: str) -> str | None:
        code, record = self.api("GET", f"/jobs/{jnid}")
        return record.get("description") if code == 200 and isinstance(record, dict) else None

    def write(self, log: Log, jnid: str, description: str) -> Change | None:
        """Change a job's description at the sandbox (it sends the webhook); None when the sandbox refused."""
        from cacheops.events import digest_payload
        from sandbox.webhooks import payload

        code, record = self.api("PUT", f"/jobs/{jnid}", {"description": description})
        if code != 200 or not isinstance(record, dict):
            return None
        digest = digest_payload(h.INSTANCE, orjson.dumps(payload("updated", record)))
        change = Change(log.label, "sandbox", jnid, description, digest=digest)
        log.changes.append(change)
        return change


# --- the stack's processes ------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    """Return the pids whose parent is `pid` (the web server's workers are its main process's children)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry))
    return sorted(found)


def rss_bytes(pid: int) -> int:
    """Return a process's resident set size from /proc (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@dataclass
class Ctx:
    """Everything the experiments share."""

    run: h.Stack
    mode: Mode
    log: Log
    sandbox: Sandbox
    cache_redis: h.RedisServer
    broker_redis: h.RedisServer
    web: Any  # the web server's main process (the Procfile's line)
    worker: Any  # the Celery worker's Popen
    hot: list[tuple[str, dict[str, Any]]]  # the cached set: argument sets no change of the run touches
    churn: list[tuple[str, dict[str, Any]]]  # reads of the records the run changes, and their list pages
    jobs: list[str]  # the first 60 jobs (default order): the detail reads and the three list pages
    load: Load | None = None
    worker_starts: int = 1
    fault_number: int = 0

    @property
    def workers(self) -> list[int]:
        return children(self.web.pid)

    def probe_workers(self) -> dict[str, Any] | None:
        """Return one /bench/probe answer (a new connection: whichever worker takes it), or None on failure."""
        try:
            code, body = once(self.run.web_url, "GET", PROBE_PATH, timeout=5)
        except Exception:
            return None
        return body if code == 200 and isinstance(body, dict) else None

    def applied(self, change: Change) -> bool:
        """Tell whether the change's webhook event is stored and applied."""
        return self.applied_at(change) is not None

    def applied_at(self, change: Change) -> float | None:
        """Return when (unix time) the change's webhook event was first applied; None while it is not."""
        rows = _event_rows(change, self.log.changes)
        if rows is None:
            return None
        first = rows.filter(applied__isnull=False).order_by("applied").values_list("applied", flat=True).first()
        return first.timestamp() if first is not None else None


def _event_rows(change: Change, changes: Sequence[Change]) -> Any:
    """Return the InvalidationEvent rows that are this change's webhook (None when there can be none)."""
    from cacheops.models import EventSource, InvalidationEvent

    if change.kind == "probe":
        return InvalidationEvent.objects.filter(pk=change.event_id) if change.event_id else None
    if change.kind == "sandbox":
        return InvalidationEvent.objects.filter(payload_digest=change.digest, source=EventSource.WEBHOOK)
    rows = InvalidationEvent.objects.filter(jnid=change.jnid, id__gt=change.after_id, source=EventSource.WEBHOOK)
    later = [c.after_id for c in changes if c.kind == "tool" and c.jnid == change.jnid and c.after_id > change.after_id]
    return rows.filter(id__lte=min(later)) if later else rows


def newest_event_id() -> int:
    from cacheops.models import InvalidationEvent

    return InvalidationEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


# --- the steady load --------------------------------------------------------------------------------------


class Load:
    """Readers of the cached set, a thread of misses, a writer at the sandbox and a webhook prober."""

    HOT_THREADS = 4
    HOT_PERIOD_S = 0.04  # each reader: 25 calls/s
    CHURN_PERIOD_S = 0.1  # one reader of the records the run changes: a slow miss there must not stall the others
    MISS_PERIOD_S = 0.5
    WRITE_PERIOD_S = 2.0

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        self.stop = threading.Event()
        self.writing = threading.Event()
        self.writing.set()
        self.writer_idle = threading.Event()
        self.probe_period_s = 1.0
        self.miss_counter = 0
        self.threads = [threading.Thread(target=self._hot, args=(i,), daemon=True) for i in range(self.HOT_THREADS)]
        self.threads += [
            threading.Thread(target=self._churn, daemon=True),
            threading.Thread(target=self._misses, daemon=True),
            threading.Thread(target=self._writer, daemon=True),
            threading.Thread(target=self._prober, daemon=True),
        ]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def close(self) -> None:
        self.stop.set()
        self.writing.set()
        for t in self.threads:
            t.join(timeout=CALL_TIMEOUT_S + 5)

    def pause_writer(self) -> None:
        """Stop the writer after its write in flight (the freshness check needs records that hold still)."""
        self.writer_idle.clear()
        self.writing.clear()
        self.writer_idle.wait(timeout=CALL_TIMEOUT_S + 5)

    def resume_writer(self) -> None:
        self.writing.set()

    def _paced(self, period: float, step: Callable[[], None]) -> None:
        next_at = time.monotonic()
        while not self.stop.is_set():
            try:
                step()
            except Exception as exc:  # a thread of the load must outlive anything a fault does
                print(f"  load thread error: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            next_at = max(next_at + period, time.monotonic())
            self.stop.wait(max(0.0, next_at - time.monotonic()))

    def _hot(self, seed: int) -> None:
        rng = random.Random(seed)
        conn = Conn(self.ctx.run.web_url)
        log = self.ctx.log

        def step() -> None:
            tool, args = rng.choice(self.ctx.hot)
            log.call("hot", time.monotonic(), call_tool(conn, tool, args))

        self._paced(self.HOT_PERIOD_S, step)
        conn.close()

    def _churn(self) -> None:
        """Read the records the run changes (their entries come and go): misses these, own thread, own pace."""
        rng = random.Random(99)
        conn = Conn(self.ctx.run.web_url)

        def step() -> None:
            tool, args = rng.choice(self.ctx.churn)
            self.ctx.log.call("churn", time.monotonic(), call_tool(conn, tool, args))

        self._paced(self.CHURN_PERIOD_S, step)
        conn.close()

    def next_miss(self) -> tuple[str, dict[str, Any]]:
        """Return arguments no call used before: a task page far past the end (an empty page, but a real call)."""
        self.miss_counter += 1
        return "get_tasks", {"size": 1, "from": 10_000_000 + self.miss_counter}

    def _misses(self) -> None:
        conn = Conn(self.ctx.run.web_url)

        def step() -> None:
            tool, args = self.next_miss()
            self.ctx.log.call("miss", time.monotonic(), call_tool(conn, tool, args))

        self._paced(self.MISS_PERIOD_S, step)
        conn.close()

    def _writer(self) -> None:
        pool = self.ctx.jobs[:10]
        count = [0]

        def step() -> None:
            if not self.writing.is_set():
                self.writer_idle.set()
                self.writing.wait()
                return
            count[0] += 1
            jnid = pool[count[0] % len(pool)]
            self.ctx.sandbox.write(self.ctx.log, jnid, f"fault bench writer {count[0]} ({self.ctx.log.label})")

        self._paced(self.WRITE_PERIOD_S, step)

    def _prober(self) -> None:
        count = [0]
        next_at = time.monotonic()
        while not self.stop.is_set():
            count[0] += 1
            try:
                post_probe_webhook(self.ctx, f"faultprobe{count[0]}")
            except Exception as exc:
                print(f"  prober error: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            next_at = max(next_at + self.probe_period_s, time.monotonic())
            self.stop.wait(max(0.0, next_at - time.monotonic()))


def post_probe_webhook(ctx: Ctx, jnid: str) -> Change:
    """POST a product webhook as the sandbox would (3 attempts, 5 s each); record its answer time and event."""
    log = ctx.log
    body = orjson.dumps({"event": "updated", "type": "product", "jnid": jnid})
    change = Change(log.label, "probe", jnid, delivered=False)
    for attempt in range(3):
        started = time.perf_counter()
        at = time.monotonic()
        try:
            code, answer = once(ctx.run.web_url, "POST", WEBHOOK_PATH, body, WEBHOOK_HEADERS, timeout=5)
        except Exception:
            code, answer = 0, None
        if attempt == 0:
            log.probes.append(Probe(log.label, at, time.perf_counter() - started, code))
        if 200 <= code < 300 and isinstance(answer, dict):
            change.delivered, change.event_id = True, answer.get("event_id")
            break
        time.sleep((0.2, 0.5, 0)[attempt])
    log.changes.append(change)
    return change


# --- one fault's row --------------------------------------------------------------------------------------


@dataclass
class Fresh:
    """What the read-back after recovery found."""

    reads: int = 0
    stale: int = 0
    failed: int = 0
    unacked: int = 0
    changes: int = 0
    write_failures: int = 0
    examples: list[str] = field(default_factory=list)


@dataclass
class Row:
    """One fault's figures."""

    label: str
    start: float = 0.0  # the fault began (monotonic)
    end: float = 0.0  # the fault was taken away
    recovered: float | None = None
    recovery: str = ""  # overrides the recovery cell (a fault with no outage)
    window_end: float = 0.0
    figure: str = ""
    figure_ok: bool | None = None
    fresh: Fresh = field(default_factory=Fresh)
    lost: tuple[int, int, float | None] = (0, 0, None)
    end_wall: float = 0.0  # the fault's end in unix time (events are stamped with it)
    notes: list[str] = field(default_factory=list)


def run_fault(ctx: Ctx, label: str, body: Callable[[Ctx, Row], None]) -> Row:
    """Run one fault: its body (inject, take away, wait for recovery), then the read-back; print progress."""
    ctx.fault_number += 1
    row = Row(label)
    ctx.log.label = label
    print(f"-- fault {label}", flush=True)
    started = time.monotonic()
    try:
        body(ctx, row)
    except Exception as exc:  # a broken experiment is reported as such, and the next one still runs
        row.figure = f"not measured: {type(exc).__name__}: {exc}"[:200]
        row.figure_ok = False
        print(f"  experiment failed: {exc!r}", file=sys.stderr, flush=True)
    row.window_end = max(row.window_end, time.monotonic())
    row.end_wall = time.time() - (time.monotonic() - row.end) if row.end else 0.0
    row.fresh = check_freshness(ctx, row)
    ctx.log.label = "between faults"
    print(f"   done in {time.monotonic() - started:.0f} s", flush=True)
    return row


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> float | None:
    """Return the monotonic time `predicate` first held, or None when it did not within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(interval)
    return None


def all_workers_report(ctx: Ctx, healthy: Callable[[dict[str, Any]], bool], timeout: float) -> float | None:
    """Return when every live web worker has answered /bench/probe healthy since this call (None: not in time)."""
    seen: dict[int, bool] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = ctx.probe_workers()
        if answer is not None:
            seen[int(answer["pid"])] = healthy(answer)
        workers = ctx.workers
        if workers and all(seen.get(pid) for pid in workers):
            return time.monotonic()
        time.sleep(0.05)
    return None


def misses_succeed(ctx: Ctx, streak: int, timeout: float, fast_s: float | None = None) -> float | None:
    """Return when the first of `streak` consecutive fresh misses (new connections) succeeded (faster than fast_s)."""
    assert ctx.load is not None
    first: float | None = None
    run = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tool, args = ctx.load.next_miss()
        at = time.monotonic()
        conn = Conn(ctx.run.web_url)
        outcome = call_tool(conn, tool, args)
        conn.close()
        good = outcome.ok and (fast_s is None or outcome.seconds <= fast_s)
        if good:
            first = at if run == 0 else first
            run += 1
            if run >= streak:
                return first
        else:
            run, first = 0, None
            time.sleep(0.25)
    return None


def redis_breaker_closed(answer: dict[str, Any]) -> bool:
    return answer.get("breakers", {}).get("redis") == "CLOSED"


def upstream_not_open(answer: dict[str, Any]) -> bool:
    return answer.get("breakers", {}).get(f"jobnimbus:{h.INSTANCE}", "CLOSED") != "OPEN"


# --- the nine faults --------------------------------------------------------------------------------------


def fault_redis_killed(ctx: Ctx, row: Row) -> None:
    """SIGKILL the cache's Redis under load, restart it (empty) after outage_s; recovered when every worker's
    Redis breaker is closed again."""
    row.start = time.monotonic()
    ctx.cache_redis.kill()
    time.sleep(ctx.mode.outage_s)
    row.end = time.monotonic()
    ctx.cache_redis.start()
    row.recovered = all_workers_report(ctx, redis_breaker_closed, RECOVERY_TIMEOUT_S)
    row.figure = status_mix(ctx.log.window(row.start, time.monotonic(), ["hot"]))


def fault_redis_paused(ctx: Ctx, row: Row) -> None:
    """SIGSTOP the cache's Redis for pause_s, then SIGCONT; recovered when every worker's Redis breaker is closed."""
    row.start = time.monotonic()
    ctx.cache_redis.signal(signal.SIGSTOP)
    time.sleep(ctx.mode.pause_s)
    row.end = time.monotonic()
    ctx.cache_redis.signal(signal.SIGCONT)
    row.recovered = all_workers_report(ctx, redis_breaker_closed, RECOVERY_TIMEOUT_S)
    row.figure = status_mix(ctx.log.window(row.start, time.monotonic(), ["hot"]))


def fault_upstream_503(ctx: Ctx, row: Row) -> None:
    """JobNimbus answers 503 to everything for outage_s; recovered when no worker's upstream breaker is open and
    three fresh misses in a row succeed."""
    row.start = time.monotonic()
    ctx.sandbox.fault(status=503)
    time.sleep(ctx.mode.outage_s)
    row.end = time.monotonic()
    ctx.sandbox.clear()
    row.recovered = upstream_recovered(ctx)
    misses = ctx.log.window(row.start, row.end, ["miss"])
    failed = sum(not c.ok for c in misses)
    row.figure = f"misses (nothing cached to serve) failed: {failed} of {len(misses)}"


def fault_upstream_slow(ctx: Ctx, row: Row) -> None:
    """JobNimbus +10 s on every call; `slow_misses` clients each keep a fresh miss in flight for slow_window_s
    (one told "busy, retry in 1 s" waits 1 s). The cached reads' p99 meanwhile, against the same load just before
    without them; recovered when no worker's breaker is open and 3 fresh misses in a row answer within 1 s."""
    mode = ctx.mode
    before_start = time.monotonic()
    time.sleep(mode.slow_baseline_s)
    before = [c for c in ctx.log.window(before_start, time.monotonic(), ["hot"]) if c.ok]
    assert ctx.load is not None
    load = ctx.load
    row.start = time.monotonic()
    stop_at = row.start + mode.slow_window_s
    ctx.sandbox.fault(latency_ms=10_000)

    def client() -> None:
        while time.monotonic() < stop_at:
            conn = Conn(ctx.run.web_url)
            tool, args = load.next_miss()
            outcome = ctx.log.call("slow", time.monotonic(), call_tool(conn, tool, args))
            conn.close()
            if not outcome.ok and outcome.seconds < 1.5:
                time.sleep(1.0)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(mode.slow_misses)]
    for t in threads:
        t.start()
    time.sleep(max(0.0, stop_at - time.monotonic()))
    for t in threads:
        t.join(timeout=CALL_TIMEOUT_S + 5)
    row.end = time.monotonic()
    ctx.sandbox.clear()
    row.recovered = upstream_recovered(ctx, fast_s=1.0)
    slow = [c for c in ctx.log.calls if c.kind == "slow" and c.start >= row.start]
    measured_from = row.start + 1.0  # the clients' first misses are on their way
    during = [c for c in ctx.log.window(measured_from, stop_at, ["hot"]) if c.ok]
    in_flight = concurrency([c for c in slow if c.seconds >= 5.0], measured_from, stop_at)
    refused = sum(not c.ok and c.seconds < 1.5 for c in slow)
    row.notes.append(
        f"{mode.slow_misses} clients made {len(slow)} misses: {refused} refused at once, the others took "
        f"{h.ms(median([c.seconds for c in slow if c.seconds >= 1.5] or [float('nan')]))} (median) and "
        f"ended {dict(Counter('ok' if c.ok else c.status[:60] for c in slow if c.seconds >= 1.5))}"
    )
    if not during or not before:
        row.figure, row.figure_ok = f"not measured: {len(during)} cached reads with slow misses in flight", False
        return
    p_before, p_during = h.percentile([c.seconds for c in before], 99), h.percentile([c.seconds for c in during], 99)
    ratio = p_during / p_before
    row.figure = (
        f"cached p99 {h.ms(p_during)} while {mode.slow_misses} clients kept slow misses going "
        f"({mode.slow_window_s - 1:.0f} s, n={len(during)}; {in_flight[0]:.1f} in flight on average, at least "
        f"{in_flight[1]}) vs {h.ms(p_before)} just before without them (n={len(before)}): {ratio:.2f}x (≤ 2x)"
    )
    row.figure_ok = ratio <= 2.0


def concurrency(calls: Sequence[Call], start: float, end: float) -> tuple[float, int]:
    """Return the mean and the least number of `calls` in flight over [start, end), sampled every 0.1 s."""
    samples = [sum(c.start <= t < c.end for c in calls) for t in _steps(start, end, 0.1)]
    return (sum(samples) / len(samples), min(samples)) if samples else (0.0, 0)


def _steps(start: float, end: float, step: float) -> list[float]:
    return [start + i * step for i in range(max(0, int((end - start) / step)))]


def upstream_recovered(ctx: Ctx, fast_s: float | None = None) -> float | None:
    """Return when no web worker's upstream breaker was OPEN any more and 3 fresh misses in a row succeeded."""
    open_gone = all_workers_report(ctx, upstream_not_open, RECOVERY_TIMEOUT_S)
    if open_gone is None:
        return None
    return misses_succeed(ctx, 3, RECOVERY_TIMEOUT_S, fast_s)


def fault_worker_killed(ctx: Ctx, row: Row) -> None:
    """SIGKILL the Celery worker; with no worker alive, change records at the sandbox (webhooks sent) and time
    until a read shows each change; then restart the worker (recovered: it applies a webhook within 1 s)."""
    row.start = time.monotonic()
    os.killpg(ctx.worker.pid, signal.SIGKILL)
    ctx.worker.wait(timeout=10)
    delays, missed = [], 0
    pool = ctx.jobs[30:40]
    for i in range(ctx.mode.no_worker_changes):
        jnid = pool[(ctx.fault_number + i) % len(pool)]
        description = f"fault bench no-worker change {i} ({time.time():.3f})"
        change = ctx.sandbox.write(ctx.log, jnid, description)
        if change is None:
            missed += 1
            continue
        written = time.monotonic()
        seen = wait_until(partial(shows, ctx, jnid, description), 30.0, 0.1)
        if seen is None:
            missed += 1
        else:
            delays.append(seen - written)
    row.end = time.monotonic()
    ctx.worker_starts += 1
    ctx.worker = ctx.run.start_worker(extra_queues=["celery"], log_name=f"worker{ctx.worker_starts}.log")
    row.recovered = wait_until(lambda: webhook_applied_within(ctx, 1.0), RECOVERY_TIMEOUT_S, 0.2)
    worst = max(delays) if delays else float("nan")
    row.figure = (
        f"changes reached reads with no worker alive after max {worst:.2f} s, median "
        f"{median(delays) if delays else float('nan'):.2f} s (n={len(delays)}, {missed} not within 30 s) (≤ 10 s)"
    )
    row.figure_ok = bool(delays) and missed == 0 and worst <= 10.0


def shows(ctx: Ctx, jnid: str, description: str) -> bool:
    """Tell whether a read through /mcp (a new connection) answers the job with this description."""
    return read_description(ctx, jnid) == description


def read_description(ctx: Ctx, jnid: str) -> str | None:
    """Read a job's description through /mcp on a new connection (None when the call failed)."""
    conn = Conn(ctx.run.web_url)
    outcome = call_tool(conn, "get_job", {"jnid": jnid, "fields": DETAIL_FIELDS})
    conn.close()
    structured = (outcome.result or {}).get("structuredContent") if outcome.ok else None
    return structured.get("description") if isinstance(structured, dict) else None


def webhook_applied_within(ctx: Ctx, seconds: float) -> bool:
    """POST one webhook; tell whether its event was applied within `seconds` of being received."""
    from cacheops.models import InvalidationEvent

    change = post_probe_webhook(ctx, f"faultrecovery{time.monotonic_ns()}")
    if change.event_id is None:
        return False
    time.sleep(seconds)
    row = InvalidationEvent.objects.filter(pk=change.event_id).values("received", "applied").first()
    return bool(row and row["applied"] and (row["applied"] - row["received"]).total_seconds() <= seconds)


def fault_web_worker_killed(ctx: Ctx, row: Row) -> None:
    """SIGKILL one web worker (a child of the server process this run started); recovered when its replacement has
    answered a request and the master has as many workers as before."""
    before = ctx.workers
    victim = random.Random(ctx.fault_number).choice(before)
    assert victim in children(ctx.web.pid)  # never a process this run did not start
    row.start = row.end = time.monotonic()
    os.kill(victim, signal.SIGKILL)

    def replaced() -> bool:
        now = ctx.workers
        fresh = set(now) - set(before)
        if len(now) < len(before) or not fresh:
            return False
        answer = ctx.probe_workers()
        return answer is not None and int(answer["pid"]) in fresh

    row.recovered = wait_until(replaced, RECOVERY_TIMEOUT_S, 0.02)
    time.sleep(2)  # calls in flight on the killed worker have ended by now
    failed = [c for c in ctx.log.window(row.start, time.monotonic(), LEGIT_KINDS) if not c.ok]
    in_flight = sum(c.start < row.start for c in failed)
    row.figure = (
        f"killed worker {victim} of {len(before)}: {len(failed)} calls failed, {in_flight} of them in flight when "
        f"it died, {len(failed) - in_flight} sent on a connection it held as it died"
    )


def fault_broker_paused(ctx: Ctx, row: Row) -> None:
    """SIGSTOP the broker's Redis for pause_s, webhooks every 0.25 s meanwhile; their answer times; recovered when
    a webhook is queued to the broker again (not applied inline) and applied within 1 s."""
    assert ctx.load is not None
    ctx.load.probe_period_s = 0.25
    row.start = time.monotonic()
    ctx.broker_redis.signal(signal.SIGSTOP)
    time.sleep(ctx.mode.pause_s)
    row.end = time.monotonic()
    ctx.broker_redis.signal(signal.SIGCONT)
    ctx.load.probe_period_s = 1.0
    row.recovered = wait_until(lambda: webhook_queued_and_applied(ctx), RECOVERY_TIMEOUT_S, 0.2)
    answers = [p for p in ctx.log.probes if row.start <= p.at < row.end]
    times = [p.seconds for p in answers]
    refused = sum(not 200 <= p.status < 300 for p in answers)
    if not times:
        row.figure, row.figure_ok = "not measured: no webhook sent while the broker was paused", False
        return
    worst = max(times)
    row.figure = (
        f"webhook answers while paused: max {h.ms(worst)}, p99 {h.ms(h.percentile(times, 99))} "
        f"(n={len(times)}, {refused} not 2xx) (≤ 1 s)"
    )
    row.figure_ok = worst <= 1.0 and refused == 0


def webhook_queued_and_applied(ctx: Ctx) -> bool:
    """POST a webhook; tell whether the web server queued it (its log names no inline apply) and it was applied."""
    from cacheops.models import InvalidationEvent

    change = post_probe_webhook(ctx, f"faultrecovery{time.monotonic_ns()}")
    if change.event_id is None:
        return False
    time.sleep(1.0)
    log = (ctx.run.tmp / "web.log").read_text(errors="replace")
    if f"applying invalidation event {change.event_id} inline" in log:
        return False
    row = InvalidationEvent.objects.filter(pk=change.event_id).values("received", "applied").first()
    return bool(row and row["applied"] and (row["applied"] - row["received"]).total_seconds() <= 1.0)


def fault_key_flood(ctx: Ctx, row: Row) -> None:
    """`flood_calls` tool calls from one address, each with a fresh random well-formed key; the upstream calls
    they caused (sandbox stats) and the 429s; the legitimate key's calls meanwhile must not fail."""
    upstream_before = ctx.sandbox.requests("GET /api1/v2/products")
    answers: Counter[str] = Counter()
    per_thread = ctx.mode.flood_calls // 8
    alphabet = string.ascii_letters + string.digits

    def flood(seed: int) -> None:
        rng = random.Random(seed)
        conn = Conn(ctx.run.web_url)
        for _ in range(per_thread):
            key = "".join(rng.choices(alphabet, k=32))
            outcome = call_tool(conn, "get_products", {"size": 1}, key=key, address=FLOOD_ADDRESS)
            ctx.log.call("flood", time.monotonic() - outcome.seconds, outcome)
            answers["ok" if outcome.ok else outcome.status.split(":")[0]] += 1
        conn.close()

    row.start = time.monotonic()
    threads = [threading.Thread(target=flood, args=(i,), daemon=True) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    row.end = time.monotonic()
    time.sleep(1.0)
    upstream = ctx.sandbox.requests("GET /api1/v2/products") - upstream_before
    legit = ctx.log.window(row.start, row.end, LEGIT_KINDS)
    failed = sum(not c.ok for c in legit)
    windows = int(time.time() // 60) - int((time.time() - (row.end - row.start) - 1) // 60) + 1
    throttled = sum(n for k, n in answers.items() if k.startswith("HTTP 429"))
    row.recovery = "n/a (no outage)"
    row.figure = (
        f"{per_thread * 8} calls with random keys in {row.end - row.start:.1f} s: {upstream} reached JobNimbus, "
        f"{throttled} answered 429 (answers: {dict(answers)}); legitimate calls meanwhile: "
        f"{failed} of {len(legit)} failed (0)"
    )
    row.figure_ok = failed == 0
    row.notes.append(f"the flood spanned {windows} one-minute throttle window(s)")


def fault_hostile_key(ctx: Ctx, row: Row) -> None:
    """JobNimbus answers 429 (Retry-After: 120) to one key only, which keeps calling for hostile_s; the other keys'
    calls must keep succeeding and no worker's upstream breaker may leave CLOSED."""
    upstream_before = ctx.sandbox.requests("GET /api1/v2/invoices")
    ctx.sandbox.fault(status=429, retry_after=120, api_key=HOSTILE_KEY)
    stop = threading.Event()
    answers: Counter[str] = Counter()
    states: Counter[str] = Counter()
    pids: set[int] = set()
    counter = iter(range(10**9))

    def hostile() -> None:
        conn = Conn(ctx.run.web_url)
        while not stop.is_set():
            args = {"size": 1, "from": 20_000_000 + next(counter)}
            outcome = call_tool(conn, "get_invoices", args, key=HOSTILE_KEY, address=HOSTILE_ADDRESS)
            ctx.log.call("hostile", time.monotonic() - outcome.seconds, outcome)
            answers["ok" if outcome.ok else outcome.status[:48]] += 1
            stop.wait(0.05)  # 20 calls/s per thread: a client that keeps retrying, not a CPU benchmark
        conn.close()

    def other() -> None:
        conn = Conn(ctx.run.web_url)
        while not stop.is_set():
            args = {"size": 1, "from": 30_000_000 + next(counter)}
            ctx.log.call("other", time.monotonic(), call_tool(conn, "get_jobs", args, key=OTHER_KEY))
            stop.wait(0.25)
        conn.close()

    def watch() -> None:
        while not stop.is_set():
            answer = ctx.probe_workers()
            if answer is not None:
                pids.add(int(answer["pid"]))
                states[answer.get("breakers", {}).get(f"jobnimbus:{h.INSTANCE}", "CLOSED")] += 1
            stop.wait(0.1)

    threads = [threading.Thread(target=f, daemon=True) for f in (hostile, hostile, hostile, hostile, other, watch)]
    row.start = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(ctx.mode.hostile_s)
    stop.set()
    for t in threads:
        t.join(timeout=CALL_TIMEOUT_S + 5)
    row.end = time.monotonic()
    ctx.sandbox.clear()
    upstream = ctx.sandbox.requests("GET /api1/v2/invoices") - upstream_before
    others = ctx.log.window(row.start, row.end, ["other"])
    legit = ctx.log.window(row.start, row.end, LEGIT_KINDS)
    failed = sum(not c.ok for c in legit)
    not_closed = sum(n for s, n in states.items() if s != "CLOSED")
    row.recovery = "n/a (no outage)"
    row.figure = (
        f"hostile key: {sum(answers.values())} calls, {upstream} reached JobNimbus; other keys' calls: {failed} of "
        f"{len(legit)} failed ({len(others)} of them a second key's misses) (0); breaker not CLOSED in {not_closed} "
        f"of {sum(states.values())} probes of {len(pids)} workers (0)"
    )
    row.figure_ok = failed == 0 and not_closed == 0 and sum(states.values()) > 0
    row.notes.append(f"hostile key's answers: {dict(answers)}")


# --- stale reads after recovery ---------------------------------------------------------------------------


def check_freshness(ctx: Ctx, row: Row) -> Fresh:
    """After recovery: change records (sandbox and write tools), wait for each change's acknowledgement, then read
    back every record changed during the fault or now, and its list page, on new connections; count stale reads.

    Acknowledged: a write tool's call returned; a sandbox change's webhook event is applied. A change still not
    acknowledged ACK_WAIT_S later is read anyway, and a stale read of it counts too (and `unacked` says so).
    """
    fresh = Fresh()
    assert ctx.load is not None
    ctx.load.pause_writer()
    try:
        during: dict[str, Change] = {}
        for made in ctx.log.changes:
            if made.label == row.label and made.kind == "sandbox":
                during[made.jnid] = made
        sandbox_changes = list(during.values())
        k, n = ctx.mode.fresh_changes, ctx.fault_number
        for i in range(k):
            jnid = ctx.jobs[10 + (n * k + i) % 10]
            change = ctx.sandbox.write(ctx.log, jnid, f"fault bench after {row.label} s{i} ({time.time():.3f})")
            if change is None:
                fresh.write_failures += 1
            else:
                sandbox_changes.append(change)
        tool_jnids = []
        for i in range(k):
            jnid = ctx.jobs[20 + (n * k + i) % 10]
            after = newest_event_id()
            conn = Conn(ctx.run.web_url)
            description = f"fault bench after {row.label} t{i} ({time.time():.3f})"
            outcome = call_tool(conn, "update_job", {"jnid": jnid, "description": description})
            conn.close()
            if outcome.ok:
                ctx.log.changes.append(Change(row.label, "tool", jnid, description, after_id=after))
                tool_jnids.append(jnid)
            else:
                fresh.write_failures += 1
                fresh.examples.append(f"write tool failed: {outcome.status}")
        waiting = list(sandbox_changes)
        deadline = time.monotonic() + ACK_WAIT_S
        while waiting and time.monotonic() < deadline:
            waiting = [c for c in waiting if not ctx.applied(c)]
            time.sleep(0.05)
        fresh.unacked = len(waiting)
        jnids = list(dict.fromkeys([c.jnid for c in sandbox_changes] + tool_jnids))
        fresh.changes = len(sandbox_changes) + len(tool_jnids)
        read_back(ctx, jnids, fresh)
    finally:
        ctx.load.resume_writer()
    return fresh


def read_back(ctx: Ctx, jnids: Sequence[str], fresh: Fresh) -> None:
    """Read each record and the list page holding it `fresh_reads` times on new connections, against the sandbox."""
    truth = {jnid: ctx.sandbox.description(jnid) for jnid in jnids}
    pages = {i // 20 * 20 for i, jnid in enumerate(ctx.jobs) if jnid in truth}
    for _ in range(ctx.mode.fresh_reads):
        for jnid in jnids:
            fresh.reads += 1
            got = read_description(ctx, jnid)
            if got is None:
                fresh.failed += 1
            elif got != truth[jnid]:
                fresh.stale += 1
                if len(fresh.examples) < 3:
                    fresh.examples.append(f"get_job {jnid}: {got!r}, JobNimbus has {truth[jnid]!r}")
        for start in sorted(pages):
            conn = Conn(ctx.run.web_url)
            outcome = call_tool(conn, "get_jobs", {"size": 20, "from": start, "fields": DETAIL_FIELDS})
            conn.close()
            records = (outcome.result or {}).get("structuredContent", {}).get("records", []) if outcome.ok else []
            listed = {r.get("jnid"): r.get("description") for r in records}
            for jnid in (j for j in jnids if j in listed):
                fresh.reads += 1
                if listed[jnid] != truth[jnid]:
                    fresh.stale += 1
                    if len(fresh.examples) < 3:
                        fresh.examples.append(
                            f"get_jobs from {start}: {jnid} {listed[jnid]!r}, JobNimbus has {truth[jnid]!r}"
                        )
            if not outcome.ok:
                fresh.failed += 1


# --- the memory figure ------------------------------------------------------------------------------------


@dataclass
class Memory:
    """The memory figure's outcome."""

    pages: int = 0
    failed: int = 0
    seconds: float = 0.0
    base: dict[int, int] = field(default_factory=dict)
    after: dict[int, int] = field(default_factory=dict)
    l1: dict[int, dict[str, int]] = field(default_factory=dict)
    limit: int = 0
    path: dict[int, list[int]] = field(default_factory=dict)  # each worker's RSS at each quarter of the pages


PAGE_SOURCES = (
    ("get_activities", "/activities"),
    ("get_jobs", "/jobs"),
    ("get_contacts", "/contacts"),
    ("get_tasks", "/tasks"),
)
SORTS = (("date_created", "desc"), ("date_created", "asc"), ("date_updated", "desc"), ("date_updated", "asc"))


def memory_figure(ctx: Ctx) -> Memory:
    """Web workers' RSS before and after `pages` distinct 100-record pages (4 threads, new connections)."""
    from cacheops.conf import engine_setting

    mem = Memory(limit=int(engine_setting("L1_MAX_BYTES")))
    pages: list[tuple[str, dict[str, Any]]] = []
    for tool, path in PAGE_SOURCES:
        _, answer = ctx.sandbox.api("GET", f"{path}?size=1&fields=jnid")
        total = int(answer.get("count", 0)) if isinstance(answer, dict) else 0
        for sort_field, direction in SORTS:
            for start in range(0, max(0, total - 100) + 1):
                args = {"size": 100, "from": start, "sort_field": sort_field, "sort_direction": direction}
                pages.append((tool, {**args, "verbosity": "summary"}))
    random.Random(11).shuffle(pages)
    pages = pages[: ctx.mode.pages]
    mem.base = {pid: rss_bytes(pid) for pid in ctx.workers}
    queue = list(pages)
    lock = threading.Lock()

    quarters = {len(pages) * q // 4 for q in (1, 2, 3)}

    def fetch() -> None:
        conn = Conn(ctx.run.web_url, renew_every=10)
        while True:
            with lock:
                if not queue:
                    break
                tool, args = queue.pop()
                if len(queue) in quarters:
                    for pid in ctx.workers:
                        mem.path.setdefault(pid, []).append(rss_bytes(pid))
            outcome = call_tool(conn, tool, args)
            if not outcome.ok:  # "busy, retry in 1 s" when the worker's miss slots are taken: retry once
                time.sleep(1.0)
                outcome = call_tool(conn, tool, args)
            with lock:
                mem.pages += 1
                mem.failed += not outcome.ok
        conn.close()

    started = time.monotonic()
    threads = [threading.Thread(target=fetch, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    mem.seconds = time.monotonic() - started
    mem.after = {pid: rss_bytes(pid) for pid in ctx.workers}
    for pid, size in mem.after.items():
        mem.path.setdefault(pid, []).append(size)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and set(mem.l1) != set(mem.after):
        answer = ctx.probe_workers()
        if answer is not None:
            mem.l1[int(answer["pid"])] = answer["l1"]
    return mem


# --- the run ----------------------------------------------------------------------------------------------


FAULTS: list[tuple[str, Callable[[Ctx, Row], None]]] = [
    ("1 Redis killed", fault_redis_killed),
    ("2 Redis paused", fault_redis_paused),
    ("3 JobNimbus 503", fault_upstream_503),
    ("4 JobNimbus +10 s", fault_upstream_slow),
    ("5 Celery worker killed", fault_worker_killed),
    ("6 web worker killed", fault_web_worker_killed),
    ("7 broker paused", fault_broker_paused),
    ("8 random-key flood", fault_key_flood),
    ("9 hostile key's 429s", fault_hostile_key),
]


def main(argv: list[str] | None = None) -> int:
    """Run the fault figures and print the table; return 0."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter faults and fewer pages (about 3 minutes)")
    parser.add_argument(
        "--only", default="", help="comma list of what to run: fault numbers 1-9 and m (memory); default all"
    )
    args = parser.parse_args(argv)
    mode = QUICK if args.quick else FULL
    chosen = {n.strip() for n in args.only.split(",") if n.strip()} or {*map(str, range(1, 10)), "m"}
    began = time.monotonic()
    with h.stack(
        CACHE_L1_MAX_BYTES=str(64 * 1024 * 1024),
        TRUSTED_PROXY_COUNT="1",  # callers' addresses come from X-Forwarded-For, as behind one trusted proxy
        CACHE_POLL_INTERVAL_S="3600",  # only webhooks carry changes: polling would hide a lost one
        CACHE_WARM_MAX_PER_RUN="0",
    ) as run:
        ctx = start(run, mode)
        rows: list[Row] = []
        calm = calm_window(ctx)
        for label, body in FAULTS:
            if label.split()[0] in chosen:
                rows.append(run_fault(ctx, label, body))
        assert ctx.load is not None
        ctx.load.close()
        mem = Memory()
        if "m" in chosen:
            print("-- memory figure", flush=True)
            mem = memory_figure(ctx)
        settle_events(ctx, mode.final_wait_s)
        for row in rows:
            row.lost = events_lost(ctx, row.label, row.end)
        stray = events_lost(ctx, None)
        table = render(ctx, Outcomes(rows, calm, mem, stray, time.monotonic() - began, args.quick))
    print()
    print(table)
    return 0


def start(run: h.Stack, mode: Mode) -> Ctx:
    """Start every process, add the bench's keys to the sandbox, warm the cached set, start the load."""
    cache_redis = run.start_redis("redis-cache")
    broker_redis = run.start_redis("redis-broker")
    run.redis_url = cache_redis.url
    run.env.update(REDIS_URL=cache_redis.url, CELERY_BROKER_URL=broker_redis.url)
    run.start_sandbox(latency_ms=SANDBOX_LATENCY_MS, webhooks=True)
    run.migrate()
    run.start_web()
    web = next(p for p in run.procs if "gunicorn" in str(p.args) or "granian" in str(p.args))
    worker = run.start_worker(extra_queues=["celery"])
    run.start_beat()
    h.setup_django(run.env)
    sandbox = Sandbox(run.sandbox_url)
    for key in (HOSTILE_KEY, OTHER_KEY):
        sandbox.control("POST", "keys", {"key": key, "profile": "all"})
    _, page = sandbox.api("GET", "/jobs?size=60&fields=jnid,related,primary")
    jobs = [r["jnid"] for r in page["results"]]
    # A job's change drops its record, every job list and its parents' records: contacts linked to a job the run
    # changes are no part of the cached set.
    linked = {link.get("id") for r in page["results"][:40] for link in [r.get("primary") or {}, *r.get("related", [])]}
    _, page = sandbox.api("GET", "/contacts?size=100&fields=jnid")
    contacts = [r["jnid"] for r in page["results"] if r["jnid"] not in linked][:20]
    hot: list[tuple[str, dict[str, Any]]] = [("get_job", {"jnid": j, "fields": DETAIL_FIELDS}) for j in jobs[40:]]
    hot += [("get_contact", {"jnid": c}) for c in contacts]
    hot += [("get_contacts", {"size": 20}), ("get_users", {}), ("get_account_settings", {})]
    churn: list[tuple[str, dict[str, Any]]] = [("get_job", {"jnid": j, "fields": DETAIL_FIELDS}) for j in jobs[:40]]
    churn += [("get_jobs", {"size": 20, "from": f, "fields": DETAIL_FIELDS}) for f in (0, 20, 40)]
    ctx = Ctx(run, mode, Log(), sandbox, cache_redis, broker_redis, web, worker, hot, churn, jobs)
    conn = Conn(run.web_url)
    for tool, tool_args in hot + churn:
        outcome = call_tool(conn, tool, tool_args)
        if not outcome.ok:
            raise RuntimeError(f"warming {tool} {tool_args} failed: {outcome.status}")
    conn.close()
    for i in range(16):  # every web worker's and Celery thread's first event opens its connections: not measured
        post_probe_webhook(ctx, f"warmup{i}")
    ctx.load = Load(ctx)
    ctx.load.start()
    return ctx


def calm_window(ctx: Ctx) -> list[Call]:
    """Let the load run with no fault for calm_s; return the cached reads it made (their normal latency)."""
    ctx.log.label = "calm"
    started = time.monotonic()
    time.sleep(ctx.mode.calm_s)
    ctx.log.label = "between faults"
    return ctx.log.window(started, time.monotonic(), ["hot"])


def settle_events(ctx: Ctx, bound_s: float) -> None:
    """Wait (at most bound_s) until every change's webhook event is applied (beat's sweep runs every minute)."""
    deadline = time.monotonic() + bound_s
    pending = [c for c in ctx.log.changes if c.delivered]
    while time.monotonic() < deadline:
        pending = [c for c in pending if not ctx.applied(c)]
        if not pending:
            return
        time.sleep(1.0)


def events_lost(ctx: Ctx, label: str | None, fault_end: float = 0.0) -> tuple[int, int, float | None]:
    """Return (lost, total, last) over the changes made during fault `label`'s run (None: outside every fault).

    `last`: when (unix time) the last event of a change made before `fault_end` (monotonic) was applied; None
    when there was none.
    """
    labels = {r[0] for r in FAULTS}
    changes = [c for c in ctx.log.changes if (c.label == label if label else c.label not in labels)]
    applied = [(c, ctx.applied_at(c) if c.delivered else None) for c in changes]
    lost = sum(at is None for _, at in applied)
    last = max((at for c, at in applied if at is not None and c.at < fault_end), default=None)
    return lost, len(changes), last


def status_mix(calls: Sequence[Call]) -> str:
    """Return how the cached reads were answered: counts of each cache status."""
    counts = Counter(c.status if c.ok else "failed" for c in calls)
    return "cached reads answered: " + ", ".join(f"{k} {v}" for k, v in counts.most_common())


def slowest(calls: Sequence[Call]) -> str:
    """Return the cache statuses of the slowest 2 % of `calls` (what the tail is made of)."""
    tail = sorted(calls, key=lambda c: c.seconds)[-max(1, len(calls) // 50) :] if calls else []
    return ", ".join(f"{k} {v}" for k, v in Counter(c.status for c in tail).most_common()) or "none"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


@dataclass
class Outcomes:
    """Everything the report is made of."""

    rows: Sequence[Row]
    calm: Sequence[Call]
    mem: Memory
    stray: tuple[int, int, float | None]
    total_s: float
    quick: bool


HEADER = [
    "fault",
    "cached reads failed · all calls failed",
    "stale reads after recovery",
    "events lost",
    "cached reads: worst (p99)",
    "recovery",
    "the fault's own figure",
]


def render(ctx: Ctx, outcomes: Outcomes) -> str:
    """Return the report: the per-fault table, the memory figure, notes and the targets that failed."""
    failures: list[str] = []
    lines = [fault_cells(ctx, row, failures) for row in outcomes.rows]
    out = [f"### Fault figures ({'quick' if outcomes.quick else 'full'} run)", "", *_table(HEADER, lines), ""]
    mem_row, mem_ok = memory_cells(outcomes.mem)
    if not mem_ok:
        failures.append("memory")
    out += [*_table(["figure", "measured", "target", "result"], [mem_row]), ""]
    out += [f"- {n}" for n in notes(ctx, outcomes)]
    out += ["", "targets failed: " + (", ".join(failures) if failures else "none")]
    return "\n".join(out)


def fault_cells(ctx: Ctx, row: Row, failures: list[str]) -> list[str]:
    """Return one fault's table cells; add the targets it failed to `failures`."""
    window = (row.start, max(row.window_end, row.recovered or 0.0))
    hot = ctx.log.window(*window, ["hot"])
    legit = ctx.log.window(*window, LEGIT_KINDS)
    hot_failed, all_failed = sum(not c.ok for c in hot), sum(not c.ok for c in legit)
    cell_calls = f"{hot_failed} of {len(hot):,} {verdict(hot_failed == 0)} · {all_failed} of {len(legit):,}"
    fresh = row.fresh
    stale_ok = fresh.stale == 0 and fresh.failed == 0 and fresh.reads > 0
    extra = [f"{fresh.changes} changes"]
    if fresh.unacked:
        extra.append(f"{fresh.unacked} not applied in {ACK_WAIT_S:g} s")
    if fresh.failed:
        extra.append(f"{fresh.failed} reads failed")
    if fresh.write_failures:
        extra.append(f"{fresh.write_failures} writes failed")
    cell_stale = f"{fresh.stale} of {fresh.reads} ({'; '.join(extra)}) {verdict(stale_ok)}"
    lost, total, last = row.lost
    seconds = [c.seconds for c in hot]
    cell_lat = f"{h.ms(max(seconds))} ({h.ms(h.percentile(seconds, 99))})" if seconds else "not measured"
    if row.recovery:
        cell_rec = row.recovery
    elif row.recovered is None:
        cell_rec = f"not within {RECOVERY_TIMEOUT_S:.0f} s FAIL"
    else:
        cell_rec = f"{row.recovered - row.end:.2f} s"
    cell_fig = row.figure + ("" if row.figure_ok is None else f" {verdict(row.figure_ok)}")
    checks = {
        "cached reads failed": hot_failed == 0,
        "stale reads": stale_ok,
        "events lost": lost == 0,
        "recovery": bool(row.recovery) or row.recovered is not None,
        "the fault's own figure": row.figure_ok is not False,
    }
    failures += [f"{row.label}: {what}" for what, ok in checks.items() if not ok]
    cell_lost = f"{lost} of {total} {verdict(lost == 0)}"
    if last is not None and row.end_wall:
        cell_lost += f" (the fault's last applied {last - row.end_wall:+.1f} s after its end)"
    return [row.label, cell_calls, cell_stale, cell_lost, cell_lat, cell_rec, cell_fig]


def memory_cells(mem: Memory) -> tuple[list[str], bool]:
    """Return the memory figure's row (the worker that grew most) and whether every worker kept to the bound."""
    mib = 2**20
    grown, pid = max(((mem.after.get(p, 0) - base, p) for p, base in mem.base.items()), default=(0, 0))
    within = all(mem.after.get(p, 0) <= base + mem.limit for p, base in mem.base.items())
    ok = bool(mem.base) and within and mem.failed == 0 and mem.pages > 0
    l1 = mem.l1.get(pid, {})
    figure = (
        f"web worker RSS after {mem.pages:,} distinct 100-record pages ({mem.failed} failed, {mem.seconds:.0f} s, "
        f"{len(mem.base)} workers)"
    )
    measured = (
        f"worst worker {mem.after.get(pid, 0) / mib:.1f} MB = base {mem.base.get(pid, 0) / mib:.1f} MB + "
        f"{grown / mib:.1f} MB (its L1: {l1.get('entries', '?')} entries, {int(l1.get('bytes', 0)) / mib:.1f} MB "
        "by its own estimate)"
    )
    return [figure, measured, f"≤ base + L1_MAX_BYTES ({mem.limit / mib:.1f} MB)", verdict(ok)], ok


def memory_notes(mem: Memory) -> list[str]:
    """Return each worker's RSS path over the pages (base, then at each quarter), in MB."""
    if not mem.base:
        return []
    paths = [
        f"{pid}: {' → '.join(f'{size / 2**20:.0f}' for size in [base, *mem.path.get(pid, [])])}"
        for pid, base in sorted(mem.base.items())
    ]
    return [
        "memory: each worker's RSS in MB (2^20 bytes), before the pages and after each quarter of them: "
        + "; ".join(paths)
    ]


def notes(ctx: Ctx, outcomes: Outcomes) -> list[str]:
    """Return the notes under the tables: what ran, the definitions, the settings, each fault's details."""
    calm = [c.seconds for c in outcomes.calm]
    normal = (
        f"n={len(calm)}: p50 {h.ms(h.percentile(calm, 50))}, p99 {h.ms(h.percentile(calm, 99))}, "
        f"worst {h.ms(max(calm))}"
        if calm
        else "not measured"
    )
    mode = ctx.mode
    found = [
        f"{len(outcomes.rows)} faults and the memory figure in {outcomes.total_s / 60:.1f} min on {os.cpu_count()} "
        f"CPUs; web: the Procfile's line → {h.procfile_web_summary(ctx.run.env)}; sandbox latency "
        f"{SANDBOX_LATENCY_MS} ms per call",
        f"steady load: {Load.HOT_THREADS} readers of {len(ctx.hot)} cached argument sets at "
        f"{1 / Load.HOT_PERIOD_S:.0f} calls/s each (keep-alive, renewed every 25 calls), a reader of the "
        f"{len(ctx.churn)} reads of the records the run changes at {1 / Load.CHURN_PERIOD_S:.0f} calls/s, a miss every "
        f"{Load.MISS_PERIOD_S} s, a sandbox write every {Load.WRITE_PERIOD_S} s, a webhook POSTed every 1 s",
        f"cached reads' latency with no fault ({normal}; {status_mix(outcomes.calm)}; the slowest 2 %: "
        f"{slowest(outcomes.calm)})",
        "calls failed: cached reads (argument sets read before the fault) that failed, and all legitimate calls "
        "that failed (misses too: during an upstream outage a miss has nothing cached to serve), from the fault's "
        "start to its recovery",
        f"stale reads: after recovery, {mode.fresh_changes} sandbox write(s) and {mode.fresh_changes} write-tool "
        f"write(s); then every record changed during the fault or after it is read {mode.fresh_reads} times, and "
        "its list page too, on new connections, and compared with the sandbox. A write tool's change is "
        "acknowledged when it returns, a sandbox change when its webhook event is applied (read anyway after "
        f"{ACK_WAIT_S:g} s)",
        "events lost: a change (sandbox write, write tool, webhook POSTed by the prober) whose webhook was never "
        f"answered 2xx or whose event was not applied by the end of the run (at most {mode.final_wait_s:.0f} s "
        f"after the memory figure, beat's sweep running); in brackets, how long after the fault ended the event "
        f"of the last change made during it was applied; outside the faults: {outcomes.stray[0]} of "
        f"{outcomes.stray[1]} lost",
        "recovery: Redis faults, until every web worker reports its Redis breaker CLOSED (bench-only /bench/probe "
        "over new connections); JobNimbus faults, until no worker's breaker is OPEN and 3 fresh misses in a row "
        "succeed (fault 4: each within 1 s); Celery worker, from its restart until a webhook is applied within 1 s; "
        "web worker, until the replacement answers; broker, until a webhook is queued again (not applied inline) "
        "and applied within 1 s",
        settings_in_force(),
        *memory_notes(outcomes.mem),
    ]
    for row in outcomes.rows:
        window = (row.start, max(row.window_end, row.recovered or 0.0))
        failed = Counter(f"{c.kind}: {c.status[:60]}" for c in ctx.log.window(*window, LEGIT_KINDS) if not c.ok)
        details = list(row.notes)
        if failed:
            details.append(f"failed calls by kind: {dict(failed.most_common(6))}")
        found += [f"{row.label}: {n}" for n in details + row.fresh.examples]
    return found


def settings_in_force() -> str:
    """Return the product settings the figures depend on, as this run's processes read them."""
    from cacheops.conf import engine_setting
    from cacheops.freshness_conf import freshness_setting
    from mcp_tools.conf import mcp_setting

    def get(read: Callable[[str], Any], name: str) -> str:
        try:
            return str(read(name))
        except Exception:
            return "unset"

    engine = ", ".join(f"{n} {get(engine_setting, n)}" for n in ("MISS_CONCURRENCY", "MISS_QUEUE", "L1_TTL_S"))
    fresh = ", ".join(f"{n} {get(freshness_setting, n)}" for n in ("APPLY_CHECK_S", "PUBLISH_TIMEOUT_S"))
    redis = get(engine_setting, "REDIS_BREAKER")
    keys = get(mcp_setting, "THROTTLE_ADDRESS_KEYS")
    return f"settings: {engine}; {fresh}; REDIS_BREAKER {redis}; MCP_THROTTLE_ADDRESS_KEYS {keys}"


def _table(header: list[str], lines: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
    fmt = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"  # noqa: E731
    return [fmt(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *[fmt(r) for r in lines]]


if __name__ == "__main__":
    sys.exit(main())
