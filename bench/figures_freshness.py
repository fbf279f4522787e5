"""Freshness figures (issue 5): a Zipf replay with 5 % writes, every read checked against the sandbox.

    python bench/figures_freshness.py            # full run (a few minutes)
    python bench/figures_freshness.py --quick    # smoke run

The stack: the sandbox (latency 0) firing automation webhooks at the web server (the Procfile's gunicorn line,
bench.settings), a Celery worker of this run consuming a private queue, real Redis under this run's namespace,
a temporary SQLite database. This process is the reader: it calls the catalog in-process (registry.call_tool),
so its L1 is the one holding the cache (filled with `--fill` entries first).

Writes alternate between the sandbox's API directly (JobNimbus changed behind our back: only the webhook tells
us) and the write tools (own writes). After each read, the record(s) are fetched from the sandbox directly with
the admin key, uncached, and compared (description and date_updated of each record).
Exits 0 whatever the figures: they are a report.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness as h
from bench.harness import Report, ms

ENTITIES = {"job": "jobs", "contact": "contacts", "task": "tasks"}
DETAIL_TOOL = {"job": "get_job", "contact": "get_contact", "task": "get_tasks"}  # get_tasks reads one by jnid
LIST_TOOL = {"job": "get_jobs", "contact": "get_contacts", "task": "get_tasks"}
WRITE_TOOL = {"job": "update_job", "contact": "update_contact", "task": "update_task"}
WRITE_SHARE = 0.05
SETTLE_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Mode:
    """Sizes of one run."""

    ops: int
    keys: int
    fill: int
    tag_entries: int


FULL = Mode(ops=20_000, keys=2000, fill=50_000, tag_entries=10_000)
QUICK = Mode(ops=1000, keys=200, fill=2000, tag_entries=1000)


@dataclass(frozen=True)
class Read:
    """One replayed read: its tool, arguments, and the sandbox request that answers the same question."""

    entity: str
    tool: str
    args: dict[str, Any]
    path: str
    jnid: str | None  # None: a list page


@dataclass
class Write:
    """One write made during the replay: by whom, and (for sandbox writes) the event id watermark before it."""

    entity: str
    jnid: str
    own: bool
    after_event_id: int
    at: float = field(default_factory=time.time)
    acked_at: float | None = None


@dataclass
class Tally:
    """What the replay counted."""

    reads: int = 0
    hits: int = 0
    writes_own: int = 0
    writes_sandbox: int = 0
    stale_after_own: int = 0
    stale_after_ack: int = 0
    stale_in_window: int = 0
    stale_before_local_drop: int = 0  # of stale_after_ack: this process's L1 had not applied the broadcast yet
    reads_in_window: int = 0
    examples: list[str] = field(default_factory=list)


def main(argv: list[str] | None = None) -> int:
    """Run the freshness figures and print the table; return 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    args = parser.parse_args(argv)
    mode = QUICK if args.quick else FULL
    report = Report(f"Freshness figures ({'quick' if args.quick else 'full'} run)")
    l1_room = str(mode.fill + mode.tag_entries + mode.keys + 1000)
    with h.stack(CACHE_L1_MAX_ENTRIES=l1_room, CACHE_L1_MAX_BYTES=str(1 << 30)) as run:
        run.start_sandbox(latency_ms=0, webhooks=True)
        run.migrate()
        run.start_web()
        run.start_worker()
        h.setup_django(run.env)
        drops = watch_l1_drops()
        fill_seconds = fill_cache(mode.fill)
        report.notes.append(
            f"cache filled first with {mode.fill:,} entries in this process's L1 and Redis ({fill_seconds:.1f} s)"
        )
        warm_up_webhooks(run)
        report.notes.append(
            f"{WARM_UP_WEBHOOKS} unmeasured webhooks first: each web worker's and Celery thread's first event opens "
            "its broker and database connections (a once-per-process cost, not the steady latency measured)"
        )
        tally, writes = replay(run, mode, drops)
        settle(writes)
        report_replay(report, tally)
        report_latency(report, writes, drops)
        tag_invalidation(report, mode.tag_entries)
        report.notes.append(
            "acknowledged = the webhook's InvalidationEvent row has `applied` set (its tags dropped from Redis and "
            "broadcast) before the read starts; a read is owed freshness when every write that could change it is "
            "an own write that returned or an acknowledged webhook"
        )
        report.notes.append(
            "invalidation latency = this process's L1 drop of the record's tag (pub/sub broadcast applied) minus "
            "InvalidationEvent.received (the web server storing the webhook); this process holds the large L1"
        )
    print()
    print(report.render())
    return 0


# --- the cache fill and the L1 watch ---------------------------------------------------------------------


def fill_cache(count: int) -> float:
    """Cache `count` small entries through read_through (trivial fetch), on tags no replay event touches."""
    from cacheops.api import CacheScope, ReadRequest, read_through, record_tag, tenant_id

    scope = CacheScope(h.INSTANCE, tenant_id(h.SANDBOX_KEY))
    started = time.perf_counter()
    for i in range(count):
        tags = (record_tag(f"fill{i}"), f"list:fill{i % 100}")
        request = ReadRequest(scope, "fill", "get", "jobs", {"i": i}, "bench_fill", tags)
        read_through(request, _constant({"i": i, "pad": "x" * 64}))
    return time.perf_counter() - started


def _constant(value: Any) -> Callable[[], Any]:
    """Return a fetch that answers `value` (the fill needs entries, not upstream calls)."""
    return lambda: value


def watch_l1_drops() -> list[tuple[float, list[str]]]:
    """Record (wall time, tags) each time a broadcast invalidation has been applied to this process's L1."""
    from cacheops.engine import engine

    subscriber = engine().subscriber
    drops: list[tuple[float, list[str]]] = []
    applied = subscriber.on_invalidate

    def record(instance: str, tags: list[str]) -> Any:
        result = applied(instance, tags)
        drops.append((time.time(), tags))
        return result

    subscriber.on_invalidate = record
    subscriber.ensure_started()
    return drops


# --- the replay ------------------------------------------------------------------------------------------


def read_set(run: h.Stack, count: int) -> list[Read]:
    """Return `count` distinct reads: records by id (3 in 5) and list pages, over jobs, contacts and tasks."""
    client = h.Client(run.sandbox_url)
    ids = {}
    for entity, path in ENTITIES.items():
        _, page = client.request("GET", f"/api1/{path}?size=1000&fields=jnid", None, _auth())
        ids[entity] = [r["jnid"] for r in page["results"]]
    client.close()
    reads: list[Read] = []
    detail_n = list_n = 0
    names = list(ENTITIES)
    for i in range(count):
        entity = names[detail_n % 3]
        if i % 5 < 3 and detail_n // 3 < len(ids[entity]):
            jnid = ids[entity][detail_n // 3]
            path = f"/api1/{ENTITIES[entity]}/{jnid}"
            reads.append(Read(entity, DETAIL_TOOL[entity], {"jnid": jnid, "verbosity": "raw"}, path, jnid))
            detail_n += 1
        else:
            entity, offset = names[list_n % 3], (list_n // 3) * 5
            path = f"/api1/{ENTITIES[entity]}?size=10&from={offset}"
            reads.append(Read(entity, LIST_TOOL[entity], {"size": 10, "from": offset, "verbosity": "raw"}, path, None))
            list_n += 1
    return reads


def replay(run: h.Stack, mode: Mode, drops: list[tuple[float, list[str]]]) -> tuple[Tally, list[Write]]:
    """Replay Zipf(1.1) reads with 5 % writes (alternating sandbox / write tool); check every read."""
    from cacheops.api import tenant_id
    from mcp_tools.catalog.base import ToolContext

    reads = read_set(run, mode.keys)
    sequence = h.zipf_sequence(len(reads), mode.ops, 1.1, seed=20261128)
    rng = random.Random(5)
    ctx = ToolContext(h.INSTANCE, h.SANDBOX_KEY, tenant_id(h.SANDBOX_KEY), "bench-fresh")
    sandbox = h.Client(run.sandbox_url)
    tally, writes = Tally(), list[Write]()
    pending: list[Write] = []  # sandbox writes whose webhook is not acknowledged yet
    for n, index in enumerate(sequence):
        target = reads[index]
        if rng.random() < WRITE_SHARE and target.jnid is not None:
            writes.append(write(ctx, sandbox, target, own=len(writes) % 2 == 1, n=n))
            if not writes[-1].own:
                pending.append(writes[-1])
            continue
        refresh_acks(pending)
        check_read(ctx, sandbox, target, (writes, pending, drops), tally)
    sandbox.close()
    tally.writes_own = sum(w.own for w in writes)
    tally.writes_sandbox = len(writes) - tally.writes_own
    return tally, writes


def write(ctx: Any, sandbox: h.Client, target: Read, own: bool, n: int) -> Write:
    """Change the target record's description, through a write tool (own) or the sandbox's API directly."""
    from cacheops.models import InvalidationEvent
    from mcp_tools.catalog.registry import call_tool

    assert target.jnid is not None
    watermark = InvalidationEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    description = f"bench write {n}"
    if own:
        result = call_tool(ctx, WRITE_TOOL[target.entity], {"jnid": target.jnid, "description": description})
        if result.is_error:
            raise RuntimeError(f"write tool failed: {result.text[:200]}")
    else:
        body = orjson.dumps({"description": description})
        status, answer = sandbox.request("PUT", target.path, body, {**_auth(), "Content-Type": "application/json"})
        if status != 200:
            raise RuntimeError(f"sandbox write answered {status}: {str(answer)[:200]}")
    return Write(target.entity, target.jnid, own, watermark)


def refresh_acks(pending: list[Write]) -> None:
    """Mark pending sandbox writes whose InvalidationEvent has been applied (one query for all)."""
    if not pending:
        return
    from cacheops.models import InvalidationEvent

    rows = InvalidationEvent.objects.filter(
        id__gt=min(w.after_event_id for w in pending), jnid__in={w.jnid for w in pending}, applied__isnull=False
    ).values_list("id", "jnid", "applied")
    for write_ in list(pending):
        applied = [
            at.timestamp()
            for event_id, jnid, at in rows
            if jnid == write_.jnid and event_id > write_.after_event_id and at
        ]
        if applied:
            write_.acked_at = min(applied)
            pending.remove(write_)


def check_read(
    ctx: Any,
    sandbox: h.Client,
    target: Read,
    state: tuple[list[Write], list[Write], list[tuple[float, list[str]]]],
    tally: Tally,
) -> None:
    """Read through the catalog, fetch the truth from the sandbox, and count a stale read by its cause."""
    from mcp_tools.catalog.registry import call_tool

    writes, pending, drops = state
    in_window = any(_affects(w, target) for w in pending)
    started = time.time()
    result = call_tool(ctx, target.tool, target.args)
    if result.is_error:
        raise RuntimeError(f"{target.tool} failed: {result.text[:200]}")
    status, truth = sandbox.request("GET", target.path, None, _auth())
    if status != 200:
        raise RuntimeError(f"sandbox read answered {status}")
    tally.reads += 1
    tally.hits += (result.cache or {}).get("status") in ("hit_l1", "hit_l2", "stale", "coalesced")
    tally.reads_in_window += in_window
    if _fingerprint(result.structured, target) == _fingerprint(truth, target):
        return
    if in_window:
        tally.stale_in_window += 1
        return
    last = next((w for w in reversed(writes) if _affects(w, target)), None)
    if last is not None and last.own:
        tally.stale_after_own += 1
    else:
        tally.stale_after_ack += 1
        tally.stale_before_local_drop += last is not None and not _dropped_here(drops, last, started)
    if len(tally.examples) < 5:
        tally.examples.append(f"{target.tool}({target.args}) stale; last write {last}")


def _dropped_here(drops: list[tuple[float, list[str]]], w: Write, before: float) -> bool:
    """Return whether this process's L1 applied a broadcast dropping `w`'s record between the write and `before`."""
    from cacheops.api import record_tag

    tag = record_tag(w.jnid)
    return any(w.at <= t <= before and tag in tags for t, tags in list(drops))


def _affects(w: Write, target: Read) -> bool:
    """Return whether write `w` can change what `target` answers (its record, or any page of its entity)."""
    return w.jnid == target.jnid if target.jnid is not None else w.entity == target.entity


def _fingerprint(data: Any, target: Read) -> list[tuple[Any, ...]]:
    records = [data] if target.jnid is not None else data.get("records", data.get("results", []))
    # Answers show timestamps in ISO 8601 with the unix value beside them at `raw` (`date_updated_unix`); the
    # sandbox's truth has the unix value itself.
    return [(r.get("jnid"), r.get("description"), r.get("date_updated_unix", r.get("date_updated"))) for r in records]


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {h.SANDBOX_KEY}"}


WARM_UP_WEBHOOKS = 16


def warm_up_webhooks(run: h.Stack) -> None:
    """Deliver WARM_UP_WEBHOOKS webhooks about records nobody reads, and wait until every one is applied."""
    from cacheops.models import InvalidationEvent

    ids = []
    for i in range(WARM_UP_WEBHOOKS):
        client = h.Client(run.web_url)  # a new connection each: gunicorn hands them to different workers
        body = orjson.dumps({"jnid": f"warm-up-{i}", "type": "contact", "event": "updated"})
        status, answer = client.request("POST", f"/webhooks/jobnimbus/{h.INSTANCE}", body, WEBHOOK_HEADERS)
        client.close()
        if status != 202:
            raise RuntimeError(f"warm-up webhook refused: {status} {answer}")
        ids.append(answer["event_id"])
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while InvalidationEvent.objects.filter(pk__in=ids, applied__isnull=True).exists():
        if time.monotonic() > deadline:
            raise RuntimeError("warm-up webhooks were not applied in time: is the Celery worker running?")
        time.sleep(0.05)


WEBHOOK_HEADERS = {"Content-Type": "application/json", "X-Webhook-Token": h.WEBHOOK_SECRET}


def settle(writes: list[Write]) -> None:
    """Wait (bounded) until every sandbox write's webhook is acknowledged."""
    pending = [w for w in writes if not w.own and w.acked_at is None]
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while pending and time.monotonic() < deadline:
        refresh_acks(pending)
        time.sleep(0.05)


# --- the report ------------------------------------------------------------------------------------------


def report_replay(report: Report, tally: Tally) -> None:
    report.add(
        "replay",
        f"{tally.reads:,} reads, {tally.writes_sandbox:,} sandbox writes + {tally.writes_own:,} write-tool writes",
    )
    report.add("stale reads after own writes", str(tally.stale_after_own), "0", tally.stale_after_own == 0)
    report.add(
        "stale reads after the webhook is acknowledged",
        f"{tally.stale_after_ack} ({tally.stale_before_local_drop} before this process's L1 got the broadcast)",
        "0",
        tally.stale_after_ack == 0,
    )
    report.add(
        "stale reads before acknowledgement (informative)",
        f"{tally.stale_in_window} of {tally.reads_in_window} reads in a webhook window",
    )
    report.add("hit rate kept meanwhile", f"{tally.hits / max(1, tally.reads):.1%}")
    report.notes.extend(tally.examples)


def report_latency(report: Report, writes: list[Write], drops: list[tuple[float, list[str]]]) -> None:
    """Webhook receipt → this process's L1 drop of the record's tag, for every sandbox write."""
    from cacheops.api import record_tag
    from cacheops.models import EventSource, InvalidationEvent

    latencies, missing = [], 0
    for w in (w for w in writes if not w.own):
        event = (
            InvalidationEvent.objects.filter(id__gt=w.after_event_id, jnid=w.jnid, source=EventSource.WEBHOOK)
            .order_by("id")
            .first()
        )
        if event is None:
            missing += 1
            continue
        received = event.received.timestamp()
        dropped = next((t for t, tags in drops if t >= received and record_tag(w.jnid) in tags), None)
        if dropped is None:
            missing += 1
            continue
        latencies.append(dropped - received)
    p50, p99 = h.percentile(latencies, 50), h.percentile(latencies, 99)
    ok = bool(latencies) and p99 <= 0.1 and missing == 0
    report.add(
        f"webhook receipt → last L1 dropped (n={len(latencies)}, {missing} not seen)",
        f"p50 {ms(p50)}, p99 {ms(p99)}",
        "p99 ≤ 100 ms",
        ok,
    )


def tag_invalidation(report: Report, entries: int) -> None:
    """Time invalidate_tags on one tag carrying `entries` entries (Redis Lua step, L1, broadcast)."""
    from cacheops.api import CacheScope, ReadRequest, invalidate_tags, read_through, tenant_id
    from cacheops.engine import engine

    scope = CacheScope(h.INSTANCE, tenant_id(h.SANDBOX_KEY))
    tag = "list:benchtag"
    for i in range(entries):
        request = ReadRequest(scope, "tagfill", "get", "jobs", {"i": i}, "bench_tag", (tag,))
        read_through(request, _constant({"i": i}))
    held = engine().l1.stats()["entries"]
    started = time.perf_counter()
    dropped = invalidate_tags(h.INSTANCE, [tag])
    elapsed = time.perf_counter() - started
    ok = elapsed <= 0.05 and dropped == entries
    figure = f"invalidate one tag of {entries:,} entries ({dropped:,} dropped; L1 held {held:,})"
    report.add(figure, ms(elapsed), "≤ 50 ms", ok)


if __name__ == "__main__":
    sys.exit(main())
