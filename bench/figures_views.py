"""DRF views vs plain Django views (issue 12): cached /mcp throughput of each, in the same run, as a ratio.

    python bench/figures_views.py            # full run (about 3 minutes)
    python bench/figures_views.py --quick    # smoke run (under a minute)

The MCP endpoints are DRF views (mcp_tools.views); bench.urls also mounts the plain Django functions they replaced
(bench.plain_views) under /bench/plain/, in the same gunicorn (the Procfile's web line), so both answer from the same
processes, cache and throttles. Each pair of routes gets the same request (a cached tools/call, which is an L1 hit,
and tools/list), first checked to answer alike through both, then loaded in alternating short bursts; the figure is
the median of the bursts' DRF ÷ plain ratios (the VM's speed drifts within seconds). Target: ≥ 0.90. Exits 0
whatever the figures: they are a report.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness as h
from bench.harness import Report

CACHED_TOOL = ("get_jobs", {"size": 20})
CONNECTIONS = 16
TARGET = 0.90


@dataclass(frozen=True)
class Route:
    """One request sent through the DRF view and through the plain one."""

    label: str
    drf_path: str
    plain_path: str
    body: bytes


def routes() -> list[Route]:
    """Return the measured requests: cached tools/call and tools/list on /mcp, a cached compat call."""
    tools_list = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    compat_call = orjson.dumps({"name": CACHED_TOOL[0], "arguments": CACHED_TOOL[1]})
    return [
        Route("cached tools/call via /mcp", "/mcp", "/bench/plain/mcp", h.mcp_call_body(*CACHED_TOOL)),
        Route("tools/list via /mcp", "/mcp", "/bench/plain/mcp", tools_list),
        Route("cached call via /mcp/tools/call", "/mcp/tools/call", "/bench/plain/mcp/tools/call", compat_call),
    ]


def main(argv: list[str] | None = None) -> int:
    """Measure every route's pair and print the table; return 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short bursts: a smoke run")
    args = parser.parse_args(argv)
    rounds, burst_s = (4, 1.0) if args.quick else (20, 1.0)
    report = Report(f"DRF views vs plain views ({'quick' if args.quick else 'full'} run)")
    with h.stack() as run:
        run.start_sandbox(latency_ms=0)
        run.migrate()
        run.start_web()
        web_group = run.procs[-1].pid  # gunicorn's master leads the process group of every web worker
        report.notes.append(f"web: the Procfile's line → {h.procfile_web_summary(run.env)}; {os.cpu_count()} CPUs")
        report.notes.append(
            f"{rounds} rounds of {burst_s:.0f} s bursts per view, {CONNECTIONS} connections; which view goes first "
            "alternates each round"
        )
        for route in routes():
            check_same_answer(run, route)
            measure(run, web_group, route, rounds, burst_s, report)
    print()
    print(report.render())
    return 0


def check_same_answer(run: h.Stack, route: Route) -> None:
    """Warm the cache through both paths and require the same status and body (a figure on errors is a fake)."""
    client = h.Client(run.web_url)
    try:
        client.request("POST", route.drf_path, route.body, h.MCP_HEADERS)  # the first call fills the cache
        drf = client.request("POST", route.drf_path, route.body, h.MCP_HEADERS)
        plain = client.request("POST", route.plain_path, route.body, h.MCP_HEADERS)
    finally:
        client.close()
    if drf[0] != 200 or _without_cache_meta(drf) != _without_cache_meta(plain):
        raise RuntimeError(f"{route.label}: DRF answered {str(drf)[:300]}, plain {str(plain)[:300]}")
    if _cache_status(drf[1]) not in (None, "hit_l1", "hit_l2"):
        raise RuntimeError(f"{route.label}: expected a cache hit, got {_cache_status(drf[1])}")


def _without_cache_meta(answer: tuple[int, Any]) -> tuple[int, Any]:
    """Return the answer without the cache `_meta`, whose age (and tier, per worker) differs from call to call."""
    status, body = answer
    result = body.get("result") if isinstance(body, dict) else None
    if isinstance(result, dict):
        body = {**body, "result": {k: v for k, v in result.items() if k != "_meta"}}
    return status, body


def _cache_status(body: Any) -> str | None:
    result = body.get("result") if isinstance(body, dict) else None
    if isinstance(result, dict) and "_meta" in result:
        return str(result["_meta"].get("jobnimbus-mcp/cache", {}).get("status"))
    return None


def measure(run: h.Stack, web_group: int, route: Route, rounds: int, burst_s: float, report: Report) -> None:
    """Load both paths in alternating bursts; report each one's mean req/s and the median DRF ÷ plain ratios.

    Two ratios: of requests per second, the issue's figure, which on a shared VM swings with the neighbours' load;
    and of requests per CPU-second the web processes spent, which neighbours barely move (the same ratio as the
    throughput of a machine the server has to itself).
    """
    load = h.wrk_post if h.wrk_path() else _python_load_warned
    drf_url, plain_url = run.web_url + route.drf_path, run.web_url + route.plain_path
    for url in (plain_url, drf_url):  # unmeasured: every worker and thread past its first call
        load(url, route.body, h.MCP_HEADERS, 1.0, CONNECTIONS, run.tmp)
    plains: list[h.LoadResult] = []
    drfs: list[h.LoadResult] = []
    plain_cpu: list[float] = []
    drf_cpu: list[float] = []
    for round_no in range(rounds):
        order = [(plain_url, plains, plain_cpu), (drf_url, drfs, drf_cpu)]
        for url, results, per_cpu in order if round_no % 2 == 0 else reversed(order):
            cpu_before = group_cpu_s(web_group)
            results.append(load(url, route.body, h.MCP_HEADERS, burst_s, CONNECTIONS, run.tmp))
            per_cpu.append(results[-1].requests / max(1e-9, group_cpu_s(web_group) - cpu_before))
    ratios = [d.requests_per_s / p.requests_per_s for d, p in zip(drfs, plains, strict=True)]
    cpu_ratios = [d / p for d, p in zip(drf_cpu, plain_cpu, strict=True)]
    errors = sum(r.errors for r in [*plains, *drfs])
    report.notes.extend(f"{route.label} load errors: {r.detail}" for r in [*plains, *drfs] if r.detail)
    for name, results in (("plain Django view", plains), ("DRF view", drfs)):
        mean = statistics.mean(r.requests_per_s for r in results)
        report.add(f"{route.label}, {name}", f"{mean:,.0f} req/s, mean of {rounds} bursts")
    ratio = statistics.median(ratios)
    report.add(
        f"{route.label}: DRF ÷ plain, median of {rounds} paired bursts ({min(ratios):.2f} to {max(ratios):.2f})",
        f"{ratio:.2f} ({errors} errors)",
        f"≥ {TARGET:.2f}",
        ratio >= TARGET and errors == 0,
    )
    cpu_ratio = statistics.median(cpu_ratios)
    report.add(
        f"{route.label}: requests per web CPU-second, DRF ÷ plain ({min(cpu_ratios):.2f} to {max(cpu_ratios):.2f})",
        f"{cpu_ratio:.2f} ({statistics.median(drf_cpu):,.0f} vs {statistics.median(plain_cpu):,.0f})",
        f"≥ {TARGET:.2f}",
        cpu_ratio >= TARGET,
    )


def group_cpu_s(group: int) -> float:
    """Return the CPU seconds (user + system) spent so far by the live processes of a process group (Linux /proc)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[2]) == group:  # pgrp; utime and stime follow at 11 and 12 (fields after the name)
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _python_load_warned(
    url: str, body: bytes, headers: dict[str, str], seconds: float, connections: int, tmp: Path
) -> h.LoadResult:
    print("WARNING: wrk unavailable; using the Python load generator (weaker, GIL-bound)", flush=True)
    return h.python_load(url, body, headers, seconds, connections)


if __name__ == "__main__":
    sys.exit(main())
