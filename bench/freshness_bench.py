"""Issue 5 figures: stale reads under writes, webhook invalidation latency, tag invalidation time, hit rate.

    .venv/bin/python bench/freshness_bench.py [--quick]

Runs on loopback: an in-process sandbox JobNimbus whose automation webhooks go to gunicorn (Procfile `web`,
bench.settings), a Celery worker (Procfile `worker`) on a queue of this run that applies the stored
InvalidationEvents, Redis on the bench database under a namespace of this run, SQLite in a temporary file.
The replay runs in this process through the catalog (registry.call_tool); this process's engine is one of
the L1s the invalidation broadcast must empty. Exits 0 whatever the figures: they are a report.
"""

from __future__ import annotations

import argparse
import bisect
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import stack
from bench.cache_bench import ZIPF_S, pct, record_ids, zipf_sequence
from bench.stack import Row

SEED = 20260505
WRITE_SHARE = 0.05
# tool, sandbox resource, cache entity, cache policy, the field writes change
DETAIL = {
    "job": ("get_job", "update_job", "jobs", "job_detail"),
    "contact": ("get_contact", "update_contact", "contacts", "contact_detail"),
}
COMPARED = ("description", "date_updated")
LIST_TOOLS = ("get_jobs", "get_contacts", "get_tasks")
DROP_WAIT_S = 5.0


@dataclass(frozen=True)
class Mode:
    """Sizes: --quick for a smoke run, full for the figures."""

    calls: int
    distinct: int
    fill: int
    tag_entries: int


FULL = Mode(calls=20_000, distinct=2_000, fill=50_000, tag_entries=10_000)
QUICK = Mode(calls=1_000, distinct=200, fill=2_000, tag_entries=1_000)


@dataclass
class Tally:
    """What the replay saw."""

    statuses: Counter[str] = field(default_factory=Counter)
    checked: int = 0
    checked_written: int = 0
    stale_own: int = 0
    stale_acked: int = 0
    stale_in_flight: int = 0
    stale_unexplained: int = 0
    writes: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    undropped: int = 0


@dataclass(frozen=True)
class Write:
    """The last write to a record: how it was made and when (wall clock, for the event's `received`)."""

    via: str
    at: datetime


class Replay:
    """The Zipf replay with writes, checking every detail read against the sandbox's current record."""

    def __init__(self, sandbox: Any, mode: Mode) -> None:
        from mcp_tools.catalog.base import ToolContext

        self.sandbox = sandbox
        self.mode = mode
        self.rng = random.Random(SEED)
        self.ctx = ToolContext(instance=stack.INSTANCE, api_key=sandbox.admin_key, tenant="bench-fresh")
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {sandbox.admin_key}"
        self.sets = self.argument_sets()
        self.last_write: dict[str, Write] = {}
        self.tally = Tally()
        self.serial = 0

    def argument_sets(self) -> list[tuple[str, str, dict[str, Any]]]:
        """Return (kind, tool, arguments): detail reads of jobs and contacts, and list pages."""
        sets: list[tuple[str, str, dict[str, Any]]] = []
        for kind, (tool, _writer, resource, _policy) in DETAIL.items():
            ids = record_ids(self.sandbox, resource)[: self.mode.distinct // 3]
            sets += [(kind, tool, {"jnid": jnid, "verbosity": "raw"}) for jnid in ids]
        offset = 0
        while len(sets) < self.mode.distinct:
            for tool in LIST_TOOLS:
                sets.append(("list", tool, {"size": 10, "from": offset}))
            offset += 10
        self.rng.shuffle(sets)
        return sets[: self.mode.distinct]

    def run(self) -> Tally:
        """Replay the calls; each is a write with probability WRITE_SHARE, to a detail record drawn the same way."""
        ranks = zipf_sequence(self.rng, len(self.sets), self.mode.calls, ZIPF_S)
        records = [rank for rank, entry in enumerate(self.sets) if entry[0] != "list"]
        for rank in ranks:
            kind, tool, arguments = self.sets[rank]
            if self.rng.random() < WRITE_SHARE:
                # A write goes to the record at this popularity rank, or the next record down when it is a list.
                kind, _tool, arguments = self.sets[records[bisect.bisect_left(records, rank) % len(records)]]
                self.write(kind, arguments["jnid"])
            else:
                self.read(kind, tool, arguments)
        return self.tally

    def call(self, tool: str, arguments: dict[str, Any]) -> Any:
        from mcp_tools.catalog import registry

        result = registry.call_tool(self.ctx, tool, arguments)
        if result.is_error:
            raise RuntimeError(f"{tool}({arguments}) failed: {result.text[:300]}")
        return result

    def read(self, kind: str, tool: str, arguments: dict[str, Any]) -> None:
        """Read through the catalog; for a record, compare with the sandbox's current copy."""
        started = datetime.now().astimezone()
        result = self.call(tool, arguments)
        self.tally.statuses[(result.cache or {}).get("status", "?")] += 1
        if kind == "list":
            return
        resource, jnid = DETAIL[kind][2], arguments["jnid"]
        if result.structured.get("jnid") != jnid:
            raise RuntimeError(f"{tool} answered no record {jnid}: the check would compare nothing")
        current = self.upstream(resource, jnid)
        self.tally.checked += 1
        self.tally.checked_written += jnid in self.last_write
        if any(result.structured.get(name) != current.get(name) for name in COMPARED):
            self.classify_stale(arguments["jnid"], started)

    def classify_stale(self, jnid: str, read_started: datetime) -> None:
        """Count a stale read under what the reader could have known when it began."""
        last = self.last_write.get(jnid)
        if last is None:
            self.tally.stale_unexplained += 1
        elif last.via == "tool":
            self.tally.stale_own += 1
        elif applied_before(jnid, last.at, read_started):
            self.tally.stale_acked += 1
        else:
            self.tally.stale_in_flight += 1

    def upstream(self, resource: str, jnid: str) -> dict[str, Any]:
        """Return the sandbox's current record, uncached, with the admin key."""
        response = self.http.get(f"{self.sandbox.base_url}/{resource}/{jnid}", timeout=10)
        response.raise_for_status()
        return dict(response.json())

    def write(self, kind: str, jnid: str) -> None:
        """Change the record's description: alternately through the write tool and straight at the sandbox."""
        self.serial += 1
        text = f"bench write {self.serial} {self.rng.random():.12f}"
        tool, writer, resource, _policy = DETAIL[kind]
        at = datetime.now().astimezone()
        if self.serial % 2:
            self.call(writer, {"jnid": jnid, "description": text})
            self.last_write[jnid] = Write("tool", at)
            self.tally.writes["tool"] += 1
            return
        self.call(tool, {"jnid": jnid, "verbosity": "raw"})  # cached in this process's L1 before the change
        key = detail_key(self.ctx, kind, jnid)
        response = self.http.put(f"{self.sandbox.base_url}/{resource}/{jnid}", json={"description": text}, timeout=10)
        response.raise_for_status()
        self.last_write[jnid] = Write("direct", at)
        self.tally.writes["direct"] += 1
        self.measure_drop(key, jnid, at)

    def measure_drop(self, key: str, jnid: str, written: datetime) -> None:
        """Wait (bounded) until this process's L1 lost `key`; record the time from webhook receipt to the drop."""
        from cacheops.engine import engine

        deadline = time.monotonic() + DROP_WAIT_S
        while engine().l1.get(key) is not None and time.monotonic() < deadline:
            time.sleep(0.0005)
        dropped = time.time()
        if engine().l1.get(key) is not None:
            self.tally.undropped += 1
            return
        received = event_received(jnid, written)
        if received is not None:
            self.tally.latencies.append(dropped - received.timestamp())


def detail_key(ctx: Any, kind: str, jnid: str) -> str:
    """Return the cache key of a detail read, as the detail tools build it."""
    from cacheops.api import ReadRequest, record_tag
    from cacheops.engine import plan
    from mcp_tools.catalog.args import upstream_args

    tool, _writer, _resource, policy = DETAIL[kind]
    request = ReadRequest(ctx.scope, kind, "get", policy, upstream_args({"jnid": jnid}), tool, (record_tag(jnid),))
    return plan(request).key


def event_received(jnid: str, since: datetime) -> datetime | None:
    """Return when the webhook for the write to `jnid` made at `since` was received (bounded wait)."""
    from cacheops.models import EventSource, InvalidationEvent

    deadline = time.monotonic() + DROP_WAIT_S
    while time.monotonic() < deadline:
        row = (
            InvalidationEvent.objects.filter(
                instance=stack.INSTANCE, jnid=jnid, source=EventSource.WEBHOOK, received__gte=since
            )
            .order_by("received")
            .values_list("received", flat=True)
            .first()
        )
        if row is not None:
            return row
        time.sleep(0.005)
    return None


def applied_before(jnid: str, since: datetime, moment: datetime) -> bool:
    """Return whether the webhook event of the write at `since` was applied before `moment` (acknowledged)."""
    from cacheops.models import EventSource, InvalidationEvent

    return InvalidationEvent.objects.filter(
        instance=stack.INSTANCE,
        jnid=jnid,
        source=EventSource.WEBHOOK,
        received__gte=since,
        applied__isnull=False,
        applied__lte=moment,
    ).exists()


def fill(count: int, tag_entries: int) -> None:
    """Cache `count` small entries through read_through (trivial fetch); the first `tag_entries` share one tag."""
    from cacheops.api import CacheScope, ReadRequest, read_through, related_tag

    scope = CacheScope(instance=stack.INSTANCE, tenant="bench-fill")
    for n in range(count):
        tag = related_tag("bench-10k") if n < tag_entries else related_tag(f"bench-group-{n // 1000}")
        request = ReadRequest(scope, "job", "get", "job_detail", {"jnid": f"fill-{n}"}, "bench_fill", (tag,))
        read_through(request, constant({"jnid": f"fill-{n}"}))


def constant(value: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """Return a fetch answering `value`, the cheapest upstream there is."""
    return lambda: value


def tag_invalidation(tag_entries: int) -> list[Row]:
    """Time invalidate_tags on the tag `tag_entries` entries share."""
    from cacheops.api import invalidate_tags, related_tag

    started = time.perf_counter()
    dropped = invalidate_tags(stack.INSTANCE, [related_tag("bench-10k")])
    elapsed = time.perf_counter() - started
    return [
        Row(
            f"invalidate one tag of {tag_entries:,} entries (dropped {dropped:,})",
            f"{elapsed * 1000:.1f} ms",
            "≤ 50 ms",
            elapsed <= 0.05 and dropped >= tag_entries,
        )
    ]


def report(tally: Tally, mode: Mode, l1_size: int) -> list[Row]:
    """Return the rows of the replay."""
    reads = sum(tally.statuses.values())
    hits = sum(tally.statuses[s] for s in ("hit_l1", "hit_l2", "coalesced", "stale"))
    lat = sorted(tally.latencies)
    p50 = stack.percentile(lat, 0.5) * 1000 if lat else float("nan")
    p99 = stack.percentile(lat, 0.99) * 1000 if lat else float("nan")
    writes = ", ".join(f"{k} {v}" for k, v in sorted(tally.writes.items()))
    return [
        Row(
            f"replay: {mode.calls:,} calls, Zipf s={ZIPF_S}, {WRITE_SHARE:.0%} writes ({writes}), "
            f"{tally.checked:,} record reads checked against the sandbox "
            f"({tally.checked_written:,} of records written earlier; compared: {', '.join(COMPARED)})",
            ", ".join(f"{k} {v}" for k, v in tally.statuses.most_common()),
        ),
        Row(
            "stale reads after own writes (write tool returned before the read)",
            str(tally.stale_own),
            "0",
            tally.stale_own == 0,
        ),
        Row(
            "stale reads after the webhook was acknowledged (its InvalidationEvent applied before the read began)",
            str(tally.stale_acked),
            "0",
            tally.stale_acked == 0,
        ),
        Row(
            "stale reads while a direct write's webhook was still in flight (not acknowledged; no target)",
            str(tally.stale_in_flight),
        ),
        Row(
            "stale reads with no write to explain them", str(tally.stale_unexplained), "0", tally.stale_unexplained == 0
        ),
        Row(
            f"webhook receipt → this process's L1 entry dropped, p50 ({len(lat)} direct writes; L1 held "
            f"{l1_size:,} entries)",
            f"{p50:.1f} ms",
        ),
        Row(
            f"same, p99 (entries never dropped within {DROP_WAIT_S:g} s: {tally.undropped})",
            f"{p99:.1f} ms",
            "≤ 100 ms",
            bool(lat) and p99 <= 100 and tally.undropped == 0,
        ),
        Row("hit rate kept during the replay", pct(hits / reads if reads else 0.0)),
    ]


def migrate(env: dict[str, str]) -> None:
    """Create the temporary database's tables."""
    argv = [stack.PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"]
    subprocess.run(argv, cwd=stack.ROOT, env=env, check=True, timeout=300)


def run(mode: Mode) -> str:
    """Start the stack, fill the cache, replay, measure; stop everything; return the printed table."""
    from sandbox.server import start_sandbox

    with stack.sigterm_as_exit(), ExitStack() as cleanup:
        tmp = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="bench-fresh-")))
        sandbox = start_sandbox(latency_ms=0)
        cleanup.callback(sandbox.stop)
        extra = {
            "DATABASE_URL": f"sqlite:///{tmp / 'bench.sqlite3'}",
            "BENCH_CELERY_QUEUE": f"{stack.NAMESPACE}apply",
            "CACHE_L1_MAX_ENTRIES": str(mode.fill + 2 * mode.distinct + 1000),
        }
        env = stack.configure_environment(sandbox.base_url, sandbox.admin_key, extra)
        migrate(env)
        stack.setup_django()
        cleanup.callback(stack.delete_namespace)
        gunicorn, base = stack.start_gunicorn(env)
        cleanup.enter_context(stack.stopping(gunicorn))
        worker = stack.start_celery(env, queue=extra["BENCH_CELERY_QUEUE"])
        cleanup.enter_context(stack.stopping(worker))
        hook = {"url": f"{base}/webhooks/jobnimbus/{stack.INSTANCE}", "token": stack.WEBHOOK_SECRET}
        requests.post(sandbox.url + "/__sandbox/webhooks", json=hook, timeout=10).raise_for_status()
        fill(mode.fill, mode.tag_entries)
        from cacheops.engine import engine

        l1_size = engine().l1.stats()["entries"]
        tally = Replay(sandbox, mode).run()
        rows = report(tally, mode, l1_size)
        fill(mode.tag_entries, mode.tag_entries)  # re-cache the tag's entries the replay's L1 TTL may have aged
        rows += tag_invalidation(mode.tag_entries)
        label = "quick smoke run, not figures" if mode is QUICK else "full run"
        return stack.print_table(f"Freshness (issue 5) — {label}", rows)


def main(argv: list[str] | None = None) -> int:
    """Parse the options and run."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds (figures not meaningful)")
    options = parser.parse_args(argv)
    run(QUICK if options.quick else FULL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
