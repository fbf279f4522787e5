"""Cache engine figures (issue 4), printed as one table with targets; ratios come from baselines of the same run.

    python bench/figures_cache.py            # full run (a few minutes)
    python bench/figures_cache.py --quick    # smoke run (seconds)

Starts the sandbox (latency 0), migrates a temporary SQLite database and serves bench.settings (the project's
URLs plus /bench/bare) with the Procfile's gunicorn line, on free loopback ports; Redis keys live under a
namespace of this run and are deleted at the end. Exits 0 whatever the figures: they are a report.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness as h
from bench.harness import Report, ms, us

CACHED_TOOL = ("get_jobs", {"size": 20})
BYTES_TOOL = ("get_jobs", {"size": 100, "verbosity": "detailed"})


@dataclass(frozen=True)
class Mode:
    """How long each measurement runs."""

    load_s: float  # per endpoint, split into LOAD_ROUNDS alternating bursts
    latency_calls: int
    inproc_calls: int
    miss_calls: int
    replay_calls: int
    replay_keys: int


FULL = Mode(load_s=10, latency_calls=2000, inproc_calls=5000, miss_calls=300, replay_calls=20_000, replay_keys=2000)
QUICK = Mode(load_s=2, latency_calls=200, inproc_calls=500, miss_calls=40, replay_calls=2000, replay_keys=200)


def main(argv: list[str] | None = None) -> int:
    """Run every cache figure and print the table; return 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds per figure")
    parser.add_argument("--measure-bytes", action="store_true", help=argparse.SUPPRESS)  # child mode, see below
    args = parser.parse_args(argv)
    if args.measure_bytes:
        return measure_bytes_child()
    mode = QUICK if args.quick else FULL
    report = Report(f"Cache engine figures ({'quick' if args.quick else 'full'} run)")
    with h.stack(CACHE_L1_MAX_ENTRIES="20000") as run:
        run.start_sandbox(latency_ms=0)
        run.migrate()
        run.start_web()
        h.setup_django(run.env)
        report.notes.append(f"web: the Procfile's line → {h.procfile_web_summary(run.env)}; {os.cpu_count()} CPUs")
        throughput(run, mode, report)
        http_latency(run, mode, report)
        inprocess_latency(run, mode, report)
        miss_overhead(run, mode, report)
        zipf_replay(run, mode, report)
        redis_bytes(run, report)
    print()
    print(report.render())
    return 0


def check_mcp_answer(body: Any) -> dict[str, Any]:
    """Return the tools/call result; raise when the server answered an error (a figure on errors is a fake)."""
    result = body.get("result") if isinstance(body, dict) else None
    if not isinstance(result, dict) or result.get("isError"):
        raise RuntimeError(f"tools/call did not succeed: {str(body)[:300]}")
    return result


def cache_status(result: dict[str, Any]) -> str:
    return str(result.get("_meta", {}).get("jobnimbus-mcp/cache", {}).get("status"))


# --- 1. throughput ----------------------------------------------------------------------------------------


LOAD_ROUNDS = 5


def throughput(run: h.Stack, mode: Mode, report: Report) -> None:
    """Cached tools/call through /mcp vs the bare view, 16 connections, same gunicorn, same run.

    The two loads alternate in LOAD_ROUNDS short bursts and the figure is the median of the rounds' ratios: on a
    shared VM the speed of the whole machine drifts by 2x within seconds, and one long run of each would mostly
    measure that drift.
    """
    body = h.mcp_call_body(*CACHED_TOOL)
    client = h.Client(run.web_url)
    check_mcp_answer(client.request("POST", "/mcp", body, h.MCP_HEADERS)[1])  # warm: later calls are hits
    client.close()
    load = h.wrk_post if h.wrk_path() else _python_load_warned
    bare_url = run.web_url + "/bench/bare"
    for url in (bare_url, run.mcp_url):  # unmeasured: every worker and thread past its first call
        load(url, body, h.MCP_HEADERS, 1.0, 16, run.tmp)
    burst_s = mode.load_s / LOAD_ROUNDS
    bares, mcps = [], []
    for _ in range(LOAD_ROUNDS):
        bares.append(load(bare_url, body, h.MCP_HEADERS, burst_s, 16, run.tmp))
        mcps.append(load(run.mcp_url, body, h.MCP_HEADERS, burst_s, 16, run.tmp))
    ratios = [mcp.requests_per_s / bare.requests_per_s for bare, mcp in zip(bares, mcps, strict=True)]
    errors = 0
    for label, name, results in (
        ("bare Django JSON view, 16 conns", "bare", bares),
        ("cached tools/call via /mcp, 16 conns", "/mcp", mcps),
    ):
        failed = sum(r.errors for r in results)
        errors += failed
        report.notes.extend(f"{name} load errors: {r.detail}" for r in results if r.detail)
        mean = statistics.mean(r.requests_per_s for r in results)
        report.add(label, f"{mean:,.0f} req/s, mean of {LOAD_ROUNDS} bursts ({failed} errors)")
    ratio = statistics.median(ratios)
    report.add(
        f"throughput ratio /mcp ÷ bare, median of {LOAD_ROUNDS} paired bursts ({min(ratios):.2f} to {max(ratios):.2f})",
        f"{ratio:.2f}",
        "≥ 0.50",
        ratio >= 0.5 and errors == 0,
    )


def _python_load_warned(
    url: str, body: bytes, headers: dict[str, str], seconds: float, connections: int, tmp: Path
) -> h.LoadResult:
    print("WARNING: wrk unavailable; using the Python load generator (weaker, GIL-bound)", flush=True)
    return h.python_load(url, body, headers, seconds, connections)


# --- 2. latency -------------------------------------------------------------------------------------------


def http_latency(run: h.Stack, mode: Mode, report: Report) -> None:
    """Cached tools/call over HTTP at concurrency 1: p50 and p99."""
    body = h.mcp_call_body(*CACHED_TOOL)
    client = h.Client(run.web_url)
    samples = []
    for _ in range(mode.latency_calls):
        started = time.perf_counter()
        status, answer = client.request("POST", "/mcp", body, h.MCP_HEADERS)
        samples.append(time.perf_counter() - started)
        if status != 200:
            raise RuntimeError(f"/mcp answered {status}")
    client.close()
    check_mcp_answer(answer)
    p50, p99 = h.percentile(samples, 50), h.percentile(samples, 99)
    report.add(f"cached call over HTTP, concurrency 1 (n={len(samples)})", f"p50 {ms(p50)}, p99 {ms(p99)}")


def inprocess_latency(run: h.Stack, mode: Mode, report: Report) -> None:
    """Medians of read_through on an L1 hit and on an L2 hit (L1 cleared before each read)."""
    from cacheops.api import CacheScope, ReadRequest, list_tag, read_through, tenant_id
    from cacheops.engine import engine

    value = _sandbox_page(run)  # a realistic value: one job-list page
    scope = CacheScope(h.INSTANCE, tenant_id(h.SANDBOX_KEY))
    request = ReadRequest(scope, "job", "list", "jobs", {"bench": "latency"}, "bench_latency", (list_tag("job"),))
    read_through(request, lambda: value)
    l1, l2 = [], []
    for _ in range(mode.inproc_calls):
        started = time.perf_counter()
        outcome = read_through(request, lambda: value)
        l1.append(time.perf_counter() - started)
        if outcome.status != "hit_l1":
            raise RuntimeError(f"expected an L1 hit, got {outcome.status}")
    for _ in range(mode.inproc_calls):
        engine().l1.clear()
        started = time.perf_counter()
        outcome = read_through(request, lambda: value)
        l2.append(time.perf_counter() - started)
        if outcome.status != "hit_l2":
            raise RuntimeError(f"expected an L2 hit, got {outcome.status}")
    l1_med, l2_med = statistics.median(l1), statistics.median(l2)
    report.add("read_through L1 hit, in-process median", us(l1_med), "≤ 50 µs", l1_med <= 50e-6)
    report.add("read_through L2 hit (loopback Redis), median", us(l2_med), "≤ 1 ms", l2_med <= 1e-3)


def _sandbox_page(run: h.Stack) -> Any:
    client = h.Client(run.sandbox_url)
    _, page = client.request("GET", "/api1/jobs?size=20", None, {"Authorization": f"Bearer {h.SANDBOX_KEY}"})
    client.close()
    return page


# --- 3. miss overhead -------------------------------------------------------------------------------------


def miss_overhead(run: h.Stack, mode: Mode, report: Report) -> None:
    """p50 of an always-missing tools/call minus p50 of the same list request sent straight to the sandbox."""
    mcp, direct = h.Client(run.web_url), h.Client(run.sandbox_url)
    auth = {"Authorization": f"Bearer {h.SANDBOX_KEY}"}
    via_mcp, straight = [], []
    for i in range(mode.miss_calls):
        offset = 1000 + i  # distinct arguments: never cached before (from= past the miss range of other figures)
        started = time.perf_counter()
        status, answer = mcp.request(
            "POST", "/mcp", h.mcp_call_body("get_jobs", {"size": 20, "from": offset}), h.MCP_HEADERS
        )
        via_mcp.append(time.perf_counter() - started)
        if status != 200 or cache_status(check_mcp_answer(answer)) != "miss":
            raise RuntimeError(f"expected a miss, got {status} {str(answer)[:200]}")
        started = time.perf_counter()
        status, _ = direct.request("GET", f"/api1/jobs?size=20&from={offset}", None, auth)
        straight.append(time.perf_counter() - started)
    mcp.close()
    direct.close()
    p_mcp, p_direct = h.percentile(via_mcp, 50), h.percentile(straight, 50)
    overhead = p_mcp - p_direct
    report.add(f"uncached call via /mcp, p50 (n={len(via_mcp)})", ms(p_mcp))
    report.add("same list request straight to the sandbox, p50", ms(p_direct))
    report.add("miss overhead (difference of p50s)", ms(overhead), "≤ 5 ms", overhead <= 5e-3)


# --- 4. Zipf replay ---------------------------------------------------------------------------------------


def argument_sets(run: h.Stack, count: int) -> list[tuple[str, dict[str, Any]]]:
    """Return `count` distinct (tool, arguments) over several read tools: list pages and records by id."""
    client = h.Client(run.sandbox_url)
    auth = {"Authorization": f"Bearer {h.SANDBOX_KEY}"}
    ids: dict[str, list[str]] = {}
    for path in ("jobs", "contacts", "tasks"):
        _, page = client.request("GET", f"/api1/{path}?size=1000&fields=jnid", None, auth)
        ids[path] = [r["jnid"] for r in page.get("results", [])]
    client.close()
    sets: list[tuple[str, dict[str, Any]]] = []
    details = [("get_job", "jobs"), ("get_contact", "contacts"), ("get_tasks", "tasks")]  # get_tasks takes a jnid
    lists = ("get_jobs", "get_contacts", "get_activities", "get_tasks")
    detail_n = list_n = 0
    for i in range(count):
        tool, path = details[detail_n % 3]
        if i % 5 < 3 and detail_n // 3 < len(ids[path]):  # three in five are records by id, while ids last
            sets.append((tool, {"jnid": ids[path][detail_n // 3]}))
            detail_n += 1
        else:
            sets.append((lists[list_n % 4], {"size": 10, "from": (list_n // 4) * 5}))
            list_n += 1
    unique = {json.dumps(s, sort_keys=True) for s in sets}
    if len(unique) != len(sets):
        raise RuntimeError(f"argument sets are not distinct ({len(unique)} of {len(sets)})")
    return sets


def zipf_replay(run: h.Stack, mode: Mode, report: Report) -> None:
    """Replay Zipf(1.1)-distributed read calls through the catalog in-process; count upstream calls at the sandbox."""
    from cacheops.api import tenant_id
    from mcp_tools.catalog.base import ToolContext
    from mcp_tools.catalog.registry import call_tool

    sets = argument_sets(run, mode.replay_keys)
    sequence = h.zipf_sequence(len(sets), mode.replay_calls, 1.1, seed=20261128)
    ctx = ToolContext(h.INSTANCE, h.SANDBOX_KEY, tenant_id(h.SANDBOX_KEY), "bench-zipf")
    before = h.sandbox_total(run.sandbox_url)
    statuses: dict[str, int] = {}
    for index in sequence:
        name, args = sets[index]
        result = call_tool(ctx, name, args)
        if result.is_error:
            raise RuntimeError(f"{name}({args}) failed: {result.text[:200]}")
        status = str((result.cache or {}).get("status"))
        statuses[status] = statuses.get(status, 0) + 1
    upstream = h.sandbox_total(run.sandbox_url) - before
    calls = len(sequence)
    hits = sum(n for s, n in statuses.items() if s in ("hit_l1", "hit_l2", "stale", "coalesced"))
    saved = 1 - upstream / calls
    drawn = len(set(sequence))
    report.add(
        f"Zipf replay: {calls:,} calls, {len(sets):,} arg sets ({drawn:,} drawn), hit rate",
        f"{hits / calls:.1%} ({', '.join(f'{k} {v}' for k, v in sorted(statuses.items()))})",
    )
    report.add(
        "JobNimbus calls saved (1 - sandbox requests ÷ calls)",
        f"{saved:.1%} ({upstream:,} upstream)",
        "≥ 90 %",
        saved >= 0.9,
    )


# --- 5. bytes per cached page -----------------------------------------------------------------------------


def redis_bytes(run: h.Stack, report: Report) -> None:
    """MEMORY USAGE of a cached 100-job detailed page, stored by child processes with compression on and off."""
    sizes = {}
    for flag in ("true", "false"):
        env = {**run.env, "CACHE_COMPRESSION": flag, "CACHE_KEY_NAMESPACE": f"{run.namespace}c{flag}:"}
        out = subprocess.run(
            [h.PYTHON, str(Path(__file__).resolve()), "--measure-bytes"],
            env=env,
            cwd=h.ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"bytes child failed: {out.stderr[-1500:]}")
        sizes[flag] = json.loads(out.stdout.strip().splitlines()[-1])
    on, off = sizes["true"], sizes["false"]
    ratio = off["memory_usage"] / on["memory_usage"]
    report.add(
        "Redis bytes, 100-job detailed page, uncompressed", f"{off['memory_usage']:,} B (value {off['strlen']:,} B)"
    )
    report.add("Redis bytes, same page, compressed", f"{on['memory_usage']:,} B (value {on['strlen']:,} B)")
    report.add("compression ratio (MEMORY USAGE)", f"{ratio:.1f}x", "≥ 4x", ratio >= 4)


def measure_bytes_child() -> int:
    """Child mode: cache BYTES_TOOL once under this process's namespace; print MEMORY USAGE of the entry as JSON."""
    h.setup_django(dict(os.environ))
    from cacheops import backend, keys
    from cacheops.api import tenant_id
    from cacheops.engine import engine
    from mcp_tools.catalog.base import ToolContext
    from mcp_tools.catalog.registry import call_tool

    ctx = ToolContext(h.INSTANCE, h.SANDBOX_KEY, tenant_id(h.SANDBOX_KEY), "bench-bytes")
    result = call_tool(ctx, *BYTES_TOOL)
    if result.is_error or (result.cache or {}).get("status") != "miss":
        raise RuntimeError(f"expected a stored miss, got {result.cache} {result.text[:200]}")
    engine().wait_idle()
    client = backend.client(h.INSTANCE)
    pattern = keys.app_key_pattern(h.INSTANCE)  # the entries of the instance, under CACHE_KEY_NAMESPACE
    found = list(client.scan_iter(match=pattern, count=1000))
    if len(found) != 1:
        raise RuntimeError(f"expected one stored entry under {pattern}, found {len(found)}")
    usage = client.memory_usage(found[0], samples=0)
    print(json.dumps({"memory_usage": usage, "strlen": client.strlen(found[0])}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
