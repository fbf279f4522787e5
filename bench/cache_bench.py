"""Issue 4 figures: throughput, latency, miss overhead, Zipf hit rate and compression, as one table.

    .venv/bin/python bench/cache_bench.py [--quick]

Everything runs on loopback: an in-process sandbox JobNimbus (latency 0), gunicorn started from the
Procfile's `web` line with DJANGO_SETTINGS_MODULE=bench.settings (which adds the bare baseline view), and
the machine's Redis on its own database and a key namespace unique to the run. Ratios compare figures
measured in the same run. Exits 0 whatever the figures are: they are a report, not a test.
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import requests

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import stack
from bench.stack import Row

ZIPF_S = 1.1
SEED = 20260428
CONNECTIONS = 16
LIST_TOOLS = ("get_jobs", "get_contacts", "get_activities", "get_tasks")
DETAIL_TOOLS = {"get_job": "jobs", "get_contact": "contacts"}


@dataclass(frozen=True)
class Mode:
    """How long each part runs: --quick for a smoke run of seconds, full for the figures."""

    load_s: float
    http_samples: int
    inproc_samples: int
    miss_samples: int
    zipf_calls: int
    zipf_distinct: int


FULL = Mode(load_s=10, http_samples=2000, inproc_samples=20000, miss_samples=300, zipf_calls=20000, zipf_distinct=2000)
QUICK = Mode(load_s=2, http_samples=200, inproc_samples=2000, miss_samples=30, zipf_calls=2000, zipf_distinct=200)


def rpc_body(tool: str, arguments: dict[str, Any], rpc_id: int = 1) -> str:
    """Return a JSON-RPC tools/call body."""
    params = {"name": tool, "arguments": arguments}
    return orjson.dumps({"jsonrpc": "2.0", "id": rpc_id, "method": "tools/call", "params": params}).decode()


def mcp_headers(api_key: str) -> dict[str, str]:
    """Return the headers of an MCP call: tenancy and the content types the endpoint expects."""
    return {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "X-JobNimbus-Instance": stack.INSTANCE,
        "X-JobNimbus-Api-Key": api_key,
    }


def call_status(response: requests.Response) -> str:
    """Return the cache status of an MCP answer, failing loudly on an error answer."""
    response.raise_for_status()
    result = response.json().get("result") or {}
    if result.get("isError") or "error" in response.json():
        raise RuntimeError(f"tool call failed: {response.text[:300]}")
    return str(((result.get("_meta") or {}).get("jobnimbus-mcp/cache") or {}).get("status", "?"))


# --- 1. throughput --------------------------------------------------------------------------------------


def throughput(base: str, api_key: str, mode: Mode) -> list[Row]:
    """Compare a cached tools/call through /mcp with the bare view, same gunicorn, same run."""
    body = rpc_body("get_jobs", {"size": 10})
    headers = mcp_headers(api_key)
    with requests.Session() as client:
        call_status(client.post(base + "/mcp", data=body, headers=headers))  # warm: the load measures hits
    wrk = stack.find_wrk()

    def load(path: str) -> stack.LoadResult:
        if wrk:
            return stack.run_wrk(wrk, base + path, "POST", body, headers, mode.load_s, CONNECTIONS)
        return stack.run_python_load(base + path, "POST", body, headers, mode.load_s, CONNECTIONS)

    bare = load("/bench/bare")
    mcp = load("/mcp")
    ratio = mcp.rps / bare.rps if bare.rps else 0.0
    tool = f"{bare.tool}, {CONNECTIONS} conns, {mode.load_s:g} s each"
    return [
        Row(f"bare Django JSON view, req/s ({tool})", f"{bare.rps:,.0f} ({bare.errors} non-2xx)"),
        Row("cached tools/call get_jobs via /mcp, req/s", f"{mcp.rps:,.0f} ({mcp.errors} non-2xx)"),
        Row("throughput ratio /mcp cached ÷ bare", f"{ratio:.2f}", "≥ 0.50", ratio >= 0.5 and mcp.errors == 0),
    ]


# --- 2. latency -----------------------------------------------------------------------------------------


def http_latency(base: str, api_key: str, mode: Mode) -> list[Row]:
    """Time cached calls one at a time over a keep-alive connection."""
    body, headers = rpc_body("get_jobs", {"size": 10}), mcp_headers(api_key)
    samples: list[float] = []
    statuses: Counter[str] = Counter()
    with requests.Session() as client:
        call_status(client.post(base + "/mcp", data=body, headers=headers))
        for _ in range(mode.http_samples):
            started = time.perf_counter()
            response = client.post(base + "/mcp", data=body, headers=headers)
            samples.append(time.perf_counter() - started)
            statuses[call_status(response)] += 1
    seen = ", ".join(f"{k} {v}" for k, v in statuses.most_common())
    return [
        Row(f"cached call over HTTP, concurrency 1, p50 ({seen})", ms(stack.percentile(samples, 0.5))),
        Row("cached call over HTTP, concurrency 1, p99", ms(stack.percentile(samples, 0.99))),
    ]


def inprocess_latency(mode: Mode) -> list[Row]:
    """Median read_through time on an L1 hit and on an L2 hit (L1 emptied outside the timed part)."""
    from cacheops.api import CacheScope, ReadRequest, read_through
    from cacheops.engine import engine

    scope = CacheScope(instance=stack.INSTANCE, tenant="bench-latency")
    request = ReadRequest(scope, "job", "get", "job_detail", {"jnid": "bench-l1"}, "bench_latency")
    value = {"jnid": "bench-l1", "name": "x" * 200}
    first = read_through(request, lambda: value)
    l1 = timed(lambda: read_through(request, lambda: value), mode.inproc_samples, expect="hit_l1")

    def l2_hit() -> float:
        engine().l1.clear(stack.INSTANCE)
        started = time.perf_counter()
        outcome = read_through(request, lambda: value)
        elapsed = time.perf_counter() - started
        check_status(outcome.status, "hit_l2")
        return elapsed

    l2 = [l2_hit() for _ in range(max(100, mode.inproc_samples // 10))]
    l1_median, l2_median = statistics.median(l1), statistics.median(l2)
    return [
        Row(f"L1 hit, read_through median (first call: {first.status})", us(l1_median), "≤ 50 µs", l1_median <= 50e-6),
        Row("L2 hit (loopback Redis), read_through median", us(l2_median), "≤ 1 ms", l2_median <= 1e-3),
    ]


def timed(call: Callable[[], Any], count: int, expect: str) -> list[float]:
    """Return `count` timings of `call`, checking each outcome's status."""
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        outcome = call()
        samples.append(time.perf_counter() - started)
        check_status(outcome.status, expect)
    return samples


def check_status(status: str, expect: str) -> None:
    if status != expect:
        raise RuntimeError(f"expected a {expect}, got {status}: the measurement would be of something else")


# --- 3. miss overhead -----------------------------------------------------------------------------------


def miss_overhead(base: str, sandbox_base: str, api_key: str, mode: Mode) -> list[Row]:
    """p50 of uncached calls (distinct args) minus p50 of the same page fetched straight from the sandbox."""
    headers = mcp_headers(api_key)
    direct_headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
    via_mcp: list[float] = []
    direct: list[float] = []
    statuses: Counter[str] = Counter()
    with requests.Session() as client:
        for offset in range(mode.miss_samples):  # interleaved, so machine noise hits both alike
            started = time.perf_counter()
            response = client.post(
                base + "/mcp", data=rpc_body("get_jobs", {"size": 5, "from": offset}), headers=headers
            )
            via_mcp.append(time.perf_counter() - started)
            statuses[call_status(response)] += 1
            started = time.perf_counter()
            client.get(
                f"{sandbox_base}/jobs", params={"size": 5, "from": offset}, headers=direct_headers
            ).raise_for_status()
            direct.append(time.perf_counter() - started)
    overhead = stack.percentile(via_mcp, 0.5) - stack.percentile(direct, 0.5)
    seen = ", ".join(f"{k} {v}" for k, v in statuses.most_common())
    return [
        Row(f"uncached call via /mcp p50 ({seen})", ms(stack.percentile(via_mcp, 0.5))),
        Row("same page straight from the sandbox p50", ms(stack.percentile(direct, 0.5))),
        Row("miss overhead (difference of p50s)", ms(overhead), "≤ 5 ms", overhead <= 5e-3 and statuses["miss"] > 0),
    ]


# --- 4. Zipf replay -------------------------------------------------------------------------------------


def argument_sets(sandbox: Any, count: int, rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
    """Return `count` distinct (tool, arguments) pairs over list and detail tools, in a seeded order."""
    sets: list[tuple[str, dict[str, Any]]] = []
    for resource_tool, resource in DETAIL_TOOLS.items():
        jnids = record_ids(sandbox, resource)
        sets += [(resource_tool, {"jnid": jnid}) for jnid in jnids[: count // 4]]
    pages = itertools.product((5, 10, 20, 25, 50), range(0, 10_000, 5), LIST_TOOLS)
    for size, offset, tool in pages:
        if len(sets) >= count:
            break
        sets.append((tool, {"size": size, "from": offset}))
    rng.shuffle(sets)
    return sets[:count]


def record_ids(sandbox: Any, resource: str) -> list[str]:
    """Return the ids of up to 1,000 records of `resource`, straight from the sandbox."""
    headers = {"Authorization": f"Bearer {sandbox.admin_key}"}
    response = requests.get(f"{sandbox.base_url}/{resource}", params={"size": 1000}, headers=headers, timeout=30)
    response.raise_for_status()
    return [record["jnid"] for record in response.json()["results"]]


def zipf_sequence(rng: random.Random, distinct: int, calls: int, s: float = ZIPF_S) -> list[int]:
    """Return `calls` ranks in [0, distinct) drawn with probability ∝ 1/(rank+1)^s."""
    weights = list(itertools.accumulate(1.0 / (rank + 1) ** s for rank in range(distinct)))
    return rng.choices(range(distinct), cum_weights=weights, k=calls)


def sandbox_total(sandbox: Any) -> int:
    """Return how many /api1 requests the sandbox has answered."""
    return int(requests.get(sandbox.url + "/__sandbox/stats", timeout=10).json()["total"])


def zipf_replay(sandbox: Any, mode: Mode) -> list[Row]:
    """Replay Zipf-distributed reads through the catalog in-process; count upstream calls at the sandbox."""
    from mcp_tools.catalog import registry
    from mcp_tools.catalog.base import ToolContext

    rng = random.Random(SEED)
    sets = argument_sets(sandbox, mode.zipf_distinct, rng)
    ranks = zipf_sequence(rng, len(sets), mode.zipf_calls)
    ctx = ToolContext(instance=stack.INSTANCE, api_key=sandbox.admin_key, tenant="bench-zipf")
    before = sandbox_total(sandbox)
    statuses: Counter[str] = Counter()
    for rank in ranks:
        tool, arguments = sets[rank]
        result = registry.call_tool(ctx, tool, arguments)
        if result.is_error:
            raise RuntimeError(f"{tool}({arguments}) failed: {result.text[:200]}")
        statuses[(result.cache or {}).get("status", "?")] += 1
    upstream = sandbox_total(sandbox) - before
    hits = statuses["hit_l1"] + statuses["hit_l2"] + statuses["coalesced"] + statuses["stale"]
    hit_rate, saved = hits / len(ranks), 1 - upstream / len(ranks)
    distinct_used = len(set(ranks))
    return [
        Row(
            f"Zipf s={ZIPF_S} replay: {len(ranks):,} calls, {len(sets):,} argument sets ({distinct_used:,} drawn), "
            f"{len(LIST_TOOLS) + len(DETAIL_TOOLS)} read tools, in-process",
            ", ".join(f"{k} {v}" for k, v in statuses.most_common()),
        ),
        Row("Zipf hit rate", pct(hit_rate), "≥ 90 %", hit_rate >= 0.9),
        Row(f"JobNimbus calls saved (sandbox counted {upstream:,} upstream calls)", pct(saved), "≥ 90 %", saved >= 0.9),
    ]


# --- 5. compression -------------------------------------------------------------------------------------


def compression(sandbox: Any) -> list[Row]:
    """MEMORY USAGE of a stored job-list page (size 100, raw) as stored (zstd) and as plain serialised bytes."""
    import zstandard

    from cacheops import backend
    from mcp_tools.catalog import registry
    from mcp_tools.catalog.base import ToolContext

    tenant = "bench-memory"
    ctx = ToolContext(instance=stack.INSTANCE, api_key=sandbox.admin_key, tenant=tenant)
    result = registry.call_tool(ctx, "get_jobs", {"size": 100, "verbosity": "raw"})
    if result.is_error:
        raise RuntimeError(f"get_jobs failed: {result.text[:200]}")
    r = backend.client()
    keys = list(r.scan_iter(match=f"{stack.NAMESPACE}*:{stack.INSTANCE}:{tenant}:*", count=1000))
    if len(keys) != 1:
        raise RuntimeError(f"expected one stored entry for the page, found {len(keys)}")
    stored = r.get(keys[0])
    if not isinstance(stored, bytes):
        raise RuntimeError(f"the stored entry vanished or is not bytes: {type(stored).__name__}")
    try:
        plain = zstandard.ZstdDecompressor().decompress(stored)
    except zstandard.ZstdError:
        plain = stored  # stored uncompressed: the ratio will say 1.0
    records = len(backend.decode(stored)["v"]["records"])
    plain_key = f"{stack.NAMESPACE}bench:uncompressed-copy"
    r.set(plain_key, plain, px=60_000)
    compressed_bytes, plain_bytes = memory_usage(r, keys[0]), memory_usage(r, plain_key)
    r.delete(plain_key)
    ratio = plain_bytes / compressed_bytes
    return [
        Row(
            f"Redis bytes per cached job-list page (size 100: {records} records stored), uncompressed",
            f"{plain_bytes:,} B",
        ),
        Row("same page as stored (zstd)", f"{compressed_bytes:,} B"),
        Row("compression ratio (MEMORY USAGE)", f"{ratio:.1f}x", "≥ 4x", ratio >= 4),
    ]


def memory_usage(r: Any, key: Any) -> int:
    """Return MEMORY USAGE of `key` (all samples), failing when the key is gone."""
    used = r.memory_usage(key, samples=0)
    if used is None:
        raise RuntimeError(f"MEMORY USAGE found no key {key!r}")
    return int(used)


# --- glue -----------------------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} µs"


def pct(fraction: float) -> str:
    return f"{fraction * 100:.1f} %"


def run(mode: Mode) -> str:
    """Start the stack, measure every figure, stop everything; return the printed table."""
    from sandbox.server import start_sandbox

    with stack.sigterm_as_exit(), ExitStack() as cleanup:
        sandbox = start_sandbox(latency_ms=0)
        cleanup.callback(sandbox.stop)
        env = stack.configure_environment(sandbox.base_url, sandbox.admin_key)
        stack.setup_django()
        cleanup.callback(stack.delete_namespace)
        gunicorn, base = stack.start_gunicorn(env)
        cleanup.enter_context(stack.stopping(gunicorn))
        print(f"gunicorn (Procfile web: {' '.join(stack.procfile_command('web'))}) at {base}", flush=True)
        rows = throughput(base, sandbox.admin_key, mode)
        rows += http_latency(base, sandbox.admin_key, mode)
        rows += inprocess_latency(mode)
        rows += miss_overhead(base, sandbox.base_url, sandbox.admin_key, mode)
        rows += zipf_replay(sandbox, mode)
        rows += compression(sandbox)
        label = "quick smoke run, not figures" if mode is QUICK else "full run"
        return stack.print_table(f"Cache engine (issue 4) — {label}", rows)


def main(argv: list[str] | None = None) -> int:
    """Parse the options and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds (figures not meaningful)")
    options = parser.parse_args(argv)
    run(QUICK if options.quick else FULL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
