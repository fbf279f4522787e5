"""One load run: start the stack, run locust at a constant arrival rate, optionally fail something, report.

    flock /tmp/jn-bench.lock .venv/bin/python -m bench.load --mode three --duration full
    flock /tmp/jn-bench.lock .venv/bin/python -m bench.load --mode one --duration quick
    flock /tmp/jn-bench.lock .venv/bin/python -m bench.load --mode three --duration quick --failover web

Durations: `quick` = warm-up 10 s, sustained 30 s, peak 20 s (about a minute of load); `full` = warm-up 30 s,
sustained 300 s at 10,000 req/min, peak 60 s at 50,000 req/min. --sustained-s/--peak-s/... override either.

Failover (under the sustained load, at its middle): `web` SIGKILLs the web host 127.0.0.3 (three-host mode);
`sentinel` / `cluster` kill the Redis primary of the topology scripts/redis_topologies.py started (pass --redis-url).

What it prints per phase: calls, achieved rate, p50/p95/p99, errors (HTTP status other than 200, JSON-RPC error,
result.isError), stale reads (see locustfile.py), late starts (the generator behind its schedule), JobNimbus calls
(sandbox /api1 requests) against MCP reads, and server CPU per call (web hosts + worker + beat, from /proc via psutil).
After the load: change events received and applied (cacheops InvalidationEvent rows of this run) and, for a failover,
the failed calls after the fault and the recovery time (fault to the last failed call).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench.load.stack import INSTANCES, KEYS, PYTHON, ROOT, VENV_BIN, WEB_HOSTS, Stack, http_get, procfile_line

PYTHON_BIN = PYTHON

DURATIONS = {
    "quick": {"warmup_s": 10, "sustained_s": 30, "peak_s": 20},
    "full": {"warmup_s": 30, "sustained_s": 300, "peak_s": 60},
}
WRITE_SET = 40  # jobs per instance that writes target (and whose reads are checked for staleness)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=("one", "three"), default="three")
    parser.add_argument("--duration", choices=tuple(DURATIONS), default="quick")
    parser.add_argument("--warmup-s", type=float)
    parser.add_argument("--sustained-s", type=float)
    parser.add_argument("--peak-s", type=float)
    parser.add_argument("--sustained-rpm", type=float, default=10_000)
    parser.add_argument("--peak-rpm", type=float, default=50_000)
    parser.add_argument(
        "--users", type=int, default=1000, help="locust users: concurrent calls at most (the peak needs rate x latency)"
    )
    parser.add_argument("--write-fraction", type=float, default=0.05)
    parser.add_argument("--failover", choices=("none", "web", "sentinel", "cluster"), default="none")
    parser.add_argument("--redis-url", default=os.environ.get("LOAD_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--broker-url", default=None, help="Celery broker (default: --redis-url when plain redis)")
    parser.add_argument("--sandbox-latency-ms", type=int, default=500)
    parser.add_argument("--sandbox-jitter-ms", type=int, default=300)
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for every server process (e.g. CACHE_MISS_CONCURRENCY=16); repeatable",
    )
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument("--json-out", default=None, help="also write the report's figures here")
    return parser.parse_args(argv)


# --- the plan: argument sets -------------------------------------------------------------------------------------
def build_plan(stack: Stack, seed: int = 20261208) -> dict[str, Any]:
    """Read argument sets over both instances and all keys, most popular first; the write targets."""
    import random

    rng = random.Random(seed)
    ids: dict[tuple[str, str], list[str]] = {}
    for inst in INSTANCES:
        for path in ("jobs", "contacts"):
            _, body = http_get(
                f"{stack.sandbox_url(inst)}/api1/{path}?size=1000&fields=jnid",
                headers={"Authorization": f"Bearer {KEYS[inst][0]}"},
            )
            ids[(inst, path)] = sorted(r["jnid"] for r in orjson.loads(body)["results"])
    reads: list[list[Any]] = []
    writes: list[list[Any]] = []
    hot: list[list[Any]] = []
    for inst in INSTANCES:
        written = ids[(inst, "jobs")][:WRITE_SET]
        for n, jnid in enumerate(written):
            writes.append([inst, KEYS[inst][n % 2], jnid])
        for key in KEYS[inst]:
            for jnid in ids[(inst, "jobs")]:
                entry = [inst, key, "get_job", {"jnid": jnid}]
                (hot if jnid in written else reads).append(entry)
            reads += [[inst, key, "get_contact", {"jnid": jnid}] for jnid in ids[(inst, "contacts")]]
            for tool in ("get_jobs", "get_contacts", "get_tasks", "get_activities"):
                reads += [[inst, key, tool, {"size": 10, "from": start}] for start in range(0, 300, 10)]
    rng.shuffle(reads)
    rng.shuffle(hot)
    # Written records' reads spread over the top ranks (every third), so stale reads have a chance to show.
    for n, entry in enumerate(hot):
        reads.insert(3 * n, entry)
    return {"reads": reads, "writes": writes}


# --- measurements ------------------------------------------------------------------------------------------------
def cpu_snapshot(stack: Stack, extra: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user+system, live descendants and reaped children) per group of processes."""
    import psutil

    groups: Counter[str] = Counter()

    def add(group: str, pid: int, root: bool) -> None:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            return
        groups[group] += times.user + times.system
        if root:
            groups[group] += times.children_user + times.children_system

    for name, pids in stack.server_pids().items():
        group = name.split("-")[0]
        for n, pid in enumerate(pids):
            add(group, pid, n == 0)
    for group, pid in extra.items():
        try:
            root = psutil.Process(pid)
            add(group, pid, True)
            for child in root.children(recursive=True):
                add(group, child.pid, False)
        except psutil.Error:
            pass
    return dict(groups)


def event_counts(stack: Stack, after_id: int) -> dict[str, int]:
    """InvalidationEvent rows of this run by source: received, applied, duplicates, unapplied."""
    columns = "source, count(*), count(applied), count(duplicate_of_id), count(*) - count(applied)"
    sql = f"select {columns} from cacheops_invalidationevent where id > {int(after_id)} group by source"  # noqa: S608
    out = psql(stack, sql)
    counts: dict[str, int] = {}
    for line in out.splitlines():
        source, received, applied, dupes, unapplied = line.split("|")
        counts[f"{source}_received"] = int(received)
        counts[f"{source}_applied"] = int(applied)
        counts[f"{source}_duplicates"] = int(dupes)
        counts[f"{source}_unapplied"] = int(unapplied)
    return counts


def psql(stack: Stack, sql: str) -> str:
    name = stack.database_url.rsplit("/", 1)[-1]
    return subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", name, "-Atc", sql],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


# --- the run -----------------------------------------------------------------------------------------------------
def phases_of(args: argparse.Namespace) -> list[tuple[str, float, float]]:
    base = DURATIONS[args.duration]
    warm = args.warmup_s if args.warmup_s is not None else base["warmup_s"]
    sus = args.sustained_s if args.sustained_s is not None else base["sustained_s"]
    peak = args.peak_s if args.peak_s is not None else base["peak_s"]
    phases = [("warmup", warm, args.sustained_rpm), ("sustained", sus, args.sustained_rpm)]
    phases.append(("peak", peak, args.peak_rpm))
    return [p for p in phases if p[1] > 0]


class Fault:
    """What the failover does at its moment, and when it did it (wall time)."""

    def __init__(self, kind: str, stack: Stack, redis_url: str) -> None:
        self.kind, self.stack, self.redis_url = kind, stack, redis_url
        self.at = 0.0
        self.detail = ""

    def fire(self) -> None:
        self.at = time.time()
        if self.kind == "web":
            victim = f"web-{WEB_HOSTS[1]}"
            self.stack.kill(victim, signal.SIGKILL)
            self.detail = f"SIGKILL to the process group of {victim}"
        elif self.kind in ("sentinel", "cluster"):
            self.detail = kill_redis_primary(self.kind, self.redis_url)


def kill_redis_primary(kind: str, url: str) -> str:
    """SIGKILL the (first) primary of the local topology, through scripts/redis_topologies.py (its ports only)."""
    script = [PYTHON_BIN, str(ROOT / "scripts" / "redis_topologies.py")]
    out = subprocess.run([*script, "primary", kind], capture_output=True, text=True, check=True, timeout=30).stdout
    port = out.replace(",", " ").split()[0]
    subprocess.run([*script, "kill", port], capture_output=True, text=True, check=True, timeout=30)
    primaries = out.strip()
    return f"SIGKILL to the {kind} primary on port {port} (redis_topologies.py kill); primaries were {primaries}"


def run(args: argparse.Namespace) -> dict[str, Any]:
    phases = phases_of(args)
    broker = args.broker_url or (args.redis_url if args.redis_url.startswith("redis://") else None)
    extra_env = {"CELERY_BROKER_URL": broker} if broker else {}
    extra_env.update(item.split("=", 1) for item in args.env)
    stack = Stack(
        args.mode,
        redis_url=args.redis_url,
        sandbox_latency_ms=args.sandbox_latency_ms,
        sandbox_jitter_ms=args.sandbox_jitter_ms,
        extra_env=extra_env,
    )
    started = datetime.now(UTC)
    print(f"[{started:%H:%M:%S}] starting the {args.mode}-host stack in {stack.tmp} ...", flush=True)
    report: dict[str, Any] = {"started": started.isoformat(timespec="seconds"), "argv": sys.argv[1:]}
    try:
        stack.start()
        plan = build_plan(stack)
        plan_path, out_path = stack.tmp / "plan.json", stack.tmp / "locust-out.json"
        plan_path.write_bytes(orjson.dumps(plan))
        last_event = int(psql(stack, "select coalesce(max(id), 0) from cacheops_invalidationevent") or 0)
        report["web_line"] = procfile_line("web")
        report["plan"] = {"read_sets": len(plan["reads"]), "write_targets": len(plan["writes"])}
        print(f"stack up; web: {report['web_line']}", flush=True)
        print(f"plan: {len(plan['reads'])} read argument sets, {len(plan['writes'])} write targets", flush=True)
        total_s = sum(p[1] for p in phases)
        env = {
            **os.environ,
            "LOAD_PHASES": ",".join(f"{n}:{s:g}:{r:g}" for n, s, r in phases),
            "LOAD_PLAN": str(plan_path),
            "LOAD_OUT": str(out_path),
            "LOAD_WRITE_FRACTION": str(args.write_fraction),
        }
        cmd = [str(VENV_BIN / "locust"), "-f", str(ROOT / "bench/load/locustfile.py"), "--headless"]
        cmd += ["-u", str(args.users), "-r", str(args.users), "-t", f"{int(total_s + 5)}s", "-H", stack.front_url]
        cmd += ["--only-summary", "--loglevel", "WARNING", "--stop-timeout", "30", "--exit-code-on-error", "0"]
        locust_log = (stack.tmp / "locust.log").open("wb")
        locust = subprocess.Popen(cmd, env=env, stdout=locust_log, stderr=subprocess.STDOUT, cwd=ROOT)
        t0_file = Path(str(out_path) + ".t0")
        while not t0_file.exists():
            if locust.poll() is not None:
                raise RuntimeError("locust exited early:\n" + (stack.tmp / "locust.log").read_text()[-3000:])
            time.sleep(0.05)
        t0 = float(t0_file.read_text())
        fault = Fault(args.failover, stack, args.redis_url) if args.failover != "none" else None
        samples = sample_phases(stack, phases, t0, locust.pid, fault)
        locust.wait(timeout=total_s + 120)
        locust_log.close()
        result = orjson.loads(out_path.read_bytes())
        events_after = settle_events(stack, last_event)
        report.update(summarise(result, phases, samples, events_after, fault, stack))
        report["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        return report
    finally:
        stack.close(keep_logs=args.keep_logs)
        if args.keep_logs:
            print(f"logs kept in {stack.tmp}", flush=True)


def sample_phases(
    stack: Stack, phases: list[tuple[str, float, float]], t0: float, locust_pid: int, fault: Fault | None
) -> list[dict[str, Any]]:
    """At each phase boundary: CPU per group and the sandboxes' request totals. Fires the fault mid-sustained."""
    samples = []
    boundaries, offset = [0.0], 0.0
    for _, seconds, _ in phases:
        offset += seconds
        boundaries.append(offset)
    fault_at = None
    if fault is not None:
        start = sum(s for n, s, _ in phases[: [p[0] for p in phases].index("sustained")])
        fault_at = t0 + start + phases[[p[0] for p in phases].index("sustained")][1] / 2
    for boundary in boundaries:
        while time.time() < t0 + boundary:
            if fault is not None and fault_at is not None and not fault.at and time.time() >= fault_at:
                threading.Thread(target=fault.fire, daemon=True).start()
                print(f"[{datetime.now(UTC):%H:%M:%S}] fault: {fault.kind}", flush=True)
            time.sleep(0.05)
        samples.append(
            {
                "at": time.time(),
                "cpu": cpu_snapshot(stack, {"locust": locust_pid}),
                "sandbox": stack.sandbox_totals(),
            }
        )
    return samples


def settle_events(stack: Stack, after_id: int, timeout_s: float = 90.0) -> dict[str, Any]:
    """Wait (up to timeout_s) until every change event of the run is applied; return the counts and the wait."""
    began = time.monotonic()
    counts = event_counts(stack, after_id)
    while any(v for k, v in counts.items() if k.endswith("_unapplied")) and time.monotonic() - began < timeout_s:
        time.sleep(1)
        counts = event_counts(stack, after_id)
    counts["settle_wait_s"] = round(time.monotonic() - began, 1)  # type: ignore[assignment]
    return {"events": counts, "webhook_deliveries_last200": stack.sandbox_webhooks()}


def summarise(
    result: dict[str, Any],
    phases: list[tuple[str, float, float]],
    samples: list[dict[str, Any]],
    events: dict[str, Any],
    fault: Fault | None,
    stack: Stack,
) -> dict[str, Any]:
    t0 = result["t0"]
    records = result["records"]
    out: dict[str, Any] = {"phases": []}
    offset = 0.0
    for n, (name, seconds, rate) in enumerate(phases):
        lo, hi = t0 + offset, t0 + offset + seconds
        offset += seconds
        rows = [r for r in records if lo <= r[0] < hi]
        latencies = sorted(r[1] for r in rows)
        outcomes = Counter(r[3] for r in rows if r[3])
        errors = sum(v for k, v in outcomes.items() if k != "stale")
        reads = sum(1 for r in rows if r[2] == "r")
        before, after = samples[n], samples[n + 1]
        cpu = {k: after["cpu"].get(k, 0.0) - before["cpu"].get(k, 0.0) for k in after["cpu"]}
        server_cpu = sum(v for k, v in cpu.items() if k in ("web", "worker", "beat"))
        upstream = after["sandbox"] - before["sandbox"]
        phase = {
            "phase": name,
            "seconds": seconds,
            "target_per_min": rate,
            "calls": len(rows),
            "achieved_per_min": round(len(rows) / seconds * 60),
            "reads": reads,
            "writes": len(rows) - reads,
            "p50_ms": round(percentile(latencies, 50) * 1000, 1),
            "p95_ms": round(percentile(latencies, 95) * 1000, 1),
            "p99_ms": round(percentile(latencies, 99) * 1000, 1),
            "errors": errors,
            "errors_by_kind": dict(outcomes - Counter({"stale": outcomes.get("stale", 0)})),
            "stale_reads": outcomes.get("stale", 0),
            "reads_checked_for_staleness": sum(1 for r in rows if len(r) > 5 and r[5]),
            "late_starts": sum(1 for r in rows if r[4]),
            "jobnimbus_calls": upstream,
            "jobnimbus_calls_saved": round(1 - upstream / reads, 4) if reads else None,
            "server_cpu_s": round(server_cpu, 1),
            "server_cpu_ms_per_call": round(server_cpu / len(rows) * 1000, 2) if rows else None,
            "cpu_s_by_group": {k: round(v, 1) for k, v in sorted(cpu.items())},
        }
        out["phases"].append(phase)
    out.update(events)
    out["stale_detail_first10"] = result["stale"][:10]
    out["error_sample"] = result.get("error_sample", [])[:8]
    if fault is not None:
        # Calls that ended after the fault (those in flight on a killed host started before it).
        after_fault = [r for r in records if float(r[0]) + float(r[1]) >= fault.at]
        failed = [r for r in after_fault if r[3] and r[3] != "stale"]
        last_fail = max((float(r[0]) + float(r[1]) for r in failed), default=fault.at)
        # Transport-level failures only (no answer, 5xx from the balancer): what the fault itself caused; the
        # "tool" errors (a busy miss gate, JobNimbus unavailable) also happen without any fault.
        transport = [r for r in failed if str(r[3]).startswith(("http", "rpc"))]
        last_transport = max((float(r[0]) + float(r[1]) for r in transport), default=fault.at)
        window = [r for r in records if float(r[0]) + float(r[1]) < fault.at and float(r[0]) >= fault.at - 30]
        window_failed = sum(1 for r in window if r[3] and r[3] != "stale")
        out["failover"] = {
            "kind": fault.kind,
            "what": fault.detail,
            "at_s_into_load": round(fault.at - t0, 1),
            "calls_after_fault": len(after_fault),
            "failed_calls": len(failed),
            "failed_by_kind": dict(Counter(r[3] for r in failed)),
            "stale_reads_after_fault": sum(1 for r in after_fault if r[3] == "stale"),
            "recovery_s": round(last_fail - fault.at, 2),
            "transport_failures": len(transport),
            "recovery_s_transport": round(last_transport - fault.at, 2),
            "error_rate_30s_before_fault": round(window_failed / len(window), 4) if window else None,
            "error_rate_after_fault": round(len(failed) / len(after_fault), 4) if after_fault else None,
        }
        if fault.kind == "web":
            out["failover"]["haproxy_view"] = haproxy_status()
    return out


def haproxy_status() -> str:
    try:
        _, body = http_get("http://127.0.0.1:8409/stats;csv")
    except OSError:
        return "unavailable"
    rows = [line.split(",") for line in body.decode().splitlines() if line.startswith("web,")]
    return " ".join(f"{r[1]}={r[17]}" for r in rows if r[1].startswith("web"))


def render(report: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        f"== load run {report['started']} .. {report.get('finished', '?')}  mode={args.mode} "
        f"duration={args.duration} failover={args.failover}",
        f"   command: python -m bench.load {' '.join(report['argv'])}",
        f"   web line: {report.get('web_line')}",
        f"   plan: {report.get('plan')}",
        "| phase | target/min | achieved/min | calls | p50 ms | p95 ms | p99 ms | errors | stale | late | "
        "JobNimbus calls | saved | server CPU ms/call |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in report.get("phases", []):
        saved = "-" if p["jobnimbus_calls_saved"] is None else f"{p['jobnimbus_calls_saved']:.1%}"
        lines.append(
            f"| {p['phase']} ({p['seconds']:g} s) | {p['target_per_min']:,.0f} | {p['achieved_per_min']:,} | "
            f"{p['calls']:,} | {p['p50_ms']} | {p['p95_ms']} | {p['p99_ms']} | {p['errors']} | "
            f"{p['stale_reads']} | {p['late_starts']} | {p['jobnimbus_calls']:,} | {saved} | "
            f"{p['server_cpu_ms_per_call']} |"
        )
    for p in report.get("phases", []):
        lines.append(
            f"   {p['phase']}: errors by kind {p['errors_by_kind']}; reads checked for staleness "
            f"{p.get('reads_checked_for_staleness')}; CPU s by group {p['cpu_s_by_group']}"
        )
    lines.append(f"   change events: {report.get('events')}")
    lines.append(f"   sandbox webhook deliveries (last 200 per sandbox): {report.get('webhook_deliveries_last200')}")
    if report.get("stale_detail_first10"):
        lines.append(f"   stale reads (start, jnid, seen, acked, s after ack): {report['stale_detail_first10']}")
    for sample in report.get("error_sample", []):
        lines.append(f"   error sample: {sample}")
    if "failover" in report:
        lines.append(f"   failover: {report['failover']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    previous = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(SystemExit(143)))
    try:
        report = run(args)
    finally:
        signal.signal(signal.SIGTERM, previous)
    text = render(report, args)
    print(text, flush=True)
    if args.json_out:
        Path(args.json_out).write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
