"""Managed mode's cost on a cached call: an OAuth access token vs the X-JobNimbus-Api-Key header, in the same run.

    python bench/figures_managed.py            # full run (about 3 minutes)
    python bench/figures_managed.py --quick    # smoke run (under a minute)

The web server runs with MANAGED_MODE=on and a fresh Fernet key; `manage.py managed_demo` maps the user `demo` to
the sandbox key the header-mode requests send, and an access token for `demo` is minted into the server's database
as the token endpoint stores one (digest only). Each managed call then looks the token up, the user's key mapping
and rate limits, and decrypts the key, before it runs as the header-mode call does, from the same cache entry (the
cache is partitioned by key, not by mode). A cached tools/call (an L1 hit) is first checked to answer alike both
ways, then loaded in alternating short bursts; the figures are the median of the bursts' managed ÷ header ratios
and each mode's latency at concurrency 1 (calls alternating between the modes). Exits 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from cryptography.fernet import Fernet

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness as h
from bench.figures_views import _cache_status, _python_load_warned, _without_cache_meta, group_cpu_s
from bench.harness import Report, ms

CACHED_TOOL = ("get_jobs", {"size": 20})
CONNECTIONS = 16
UNLIMITED = "100000000/second"  # the per-person and per-client budgets run, but never refuse a benchmark request

MINT = """
from datetime import timedelta
from django.contrib.auth.models import User
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, get_application_model, set_token_value
from managed import tokens
app = get_application_model().objects.create(
    name="bench", client_type="public", authorization_grant_type="authorization-code", redirect_uris="http://127.0.0.1:9/cb"
)
token = get_access_token_model()(
    user=User.objects.get(username="demo"), application=app, scope="jobnimbus:read jobnimbus:write",
    resource=[{resource!r}], expires=timezone.now() + timedelta(hours=2),
)
raw = tokens.access_token(None)
set_token_value(token, raw)
token.save()
print(raw)
"""


def main(argv: list[str] | None = None) -> int:
    """Set managed mode up, measure both modes and print the table; return 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short bursts: a smoke run")
    args = parser.parse_args(argv)
    rounds, burst_s, latency_pairs = (4, 1.0, 50) if args.quick else (30, 2.0, 200)
    report = Report(f"Managed mode vs header mode ({'quick' if args.quick else 'full'} run)")
    managed_env = {
        "MANAGED_MODE": "on",
        "MANAGED_KEY_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "MCP_THROTTLE_USER_RATE": UNLIMITED,
        "MCP_THROTTLE_CLIENT_RATE": UNLIMITED,
    }
    with h.stack(**managed_env) as run:
        run.start_sandbox(latency_ms=0)
        run.migrate()
        run.start_web()
        web_group = run.procs[-1].pid  # the web server's first process leads the group of every web worker
        managed_headers = {k: v for k, v in h.MCP_HEADERS.items() if not k.startswith("X-JobNimbus")}
        managed_headers["Authorization"] = f"Bearer {access_token(run)}"
        report.notes.append(f"web: the Procfile's line → {h.procfile_web_summary(run.env)}; {os.cpu_count()} CPUs")
        report.notes.append(
            f"{rounds} rounds of {burst_s:.0f} s bursts per mode, {CONNECTIONS} connections, which mode goes first "
            f"alternating; then {latency_pairs} calls per mode and round at concurrency 1, alternating call by call"
        )
        body = h.mcp_call_body(*CACHED_TOOL)
        check_same_answer(run, body, managed_headers)
        measure(run, web_group, body, managed_headers, (rounds, burst_s, latency_pairs), report)
    print()
    print(report.render())
    return 0


def access_token(run: h.Stack) -> str:
    """Map `demo` to the sandbox key (managed_demo) and mint an access token for it on this server's /mcp."""
    demo = ["managed_demo", "--instance", h.INSTANCE, "--full-key", h.SANDBOX_KEY]
    manage(run, *demo, "--demo-password", "bench-pw-1", "--rep-password", "bench-pw-2")
    return manage(run, "shell", "-c", MINT.format(resource=run.mcp_url)).strip().splitlines()[-1]


def manage(run: h.Stack, *args: str) -> str:
    """Run a manage.py command with the server's environment (its database); return its output."""
    done = subprocess.run(
        [h.PYTHON, "manage.py", *args], cwd=h.ROOT, env=run.env, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {args[0]} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def check_same_answer(run: h.Stack, body: bytes, managed_headers: dict[str, str]) -> None:
    """Warm the cache, then require the same status and data both ways, each a cache hit."""
    client = h.Client(run.web_url)
    try:
        client.request("POST", "/mcp", body, h.MCP_HEADERS)  # the first call fills the cache
        header = client.request("POST", "/mcp", body, h.MCP_HEADERS)
        managed = client.request("POST", "/mcp", body, managed_headers)
    finally:
        client.close()
    if header[0] != 200 or _without_cache_meta(header) != _without_cache_meta(managed):
        raise RuntimeError(f"header mode answered {str(header)[:300]}, managed {str(managed)[:300]}")
    for answer in (header, managed):
        if _cache_status(answer[1]) not in (None, "hit_l1", "hit_l2"):
            raise RuntimeError(f"expected a cache hit, got {_cache_status(answer[1])}")


def measure(
    run: h.Stack,
    web_group: int,
    body: bytes,
    managed_headers: dict[str, str],
    plan: tuple[int, float, int],
    report: Report,
) -> None:
    """Alternate throughput bursts and concurrency-1 calls of both modes; report req/s, ratios and latencies."""
    rounds, burst_s, latency_pairs = plan
    load = h.wrk_post if h.wrk_path() else _python_load_warned
    modes = {"header": h.MCP_HEADERS, "managed": managed_headers}
    for headers in modes.values():  # unmeasured: every worker and thread past its first call
        load(run.mcp_url, body, headers, 1.0, CONNECTIONS, run.tmp)
    results: dict[str, list[h.LoadResult]] = {mode: [] for mode in modes}
    per_cpu: dict[str, list[float]] = {mode: [] for mode in modes}
    latency: dict[str, list[float]] = {mode: [] for mode in modes}
    clients = {mode: h.Client(run.web_url) for mode in modes}
    for round_no in range(rounds):
        order = list(modes) if round_no % 2 == 0 else list(reversed(modes))
        for mode in order:
            cpu_before = group_cpu_s(web_group)
            results[mode].append(load(run.mcp_url, body, modes[mode], burst_s, CONNECTIONS, run.tmp))
            per_cpu[mode].append(results[mode][-1].requests / max(1e-9, group_cpu_s(web_group) - cpu_before))
        for _ in range(latency_pairs):
            for mode in order:
                started = time.perf_counter()
                status, _ = clients[mode].request("POST", "/mcp", body, modes[mode])
                latency[mode].append(time.perf_counter() - started)
                if status != 200:
                    raise RuntimeError(f"{mode} mode answered {status}")
    for client in clients.values():
        client.close()
    errors = sum(r.errors for rs in results.values() for r in rs)
    report.notes.extend(f"load errors: {r.detail}" for rs in results.values() for r in rs if r.detail)
    for mode in modes:
        mean = statistics.mean(r.requests_per_s for r in results[mode])
        p50, p99 = h.percentile(latency[mode], 50), h.percentile(latency[mode], 99)
        report.add(f"cached tools/call, {mode} mode", f"{mean:,.0f} req/s, mean of {rounds} bursts")
        report.add(
            f"cached tools/call, {mode} mode, concurrency 1 (n={len(latency[mode])})", f"p50 {ms(p50)}, p99 {ms(p99)}"
        )
    ratios = [m.requests_per_s / x.requests_per_s for m, x in zip(results["managed"], results["header"], strict=True)]
    report.add(
        f"managed ÷ header req/s, median of {rounds} paired bursts ({min(ratios):.2f} to {max(ratios):.2f})",
        f"{statistics.median(ratios):.2f} ({errors} errors)",
    )
    cpu_ratios = [m / x for m, x in zip(per_cpu["managed"], per_cpu["header"], strict=True)]
    report.add(
        f"requests per web CPU-second, managed ÷ header ({min(cpu_ratios):.2f} to {max(cpu_ratios):.2f})",
        f"{statistics.median(cpu_ratios):.2f} "
        f"({statistics.median(per_cpu['managed']):,.0f} vs {statistics.median(per_cpu['header']):,.0f})",
    )
    p50s = {mode: h.percentile(latency[mode], 50) for mode in modes}
    report.add("p50 latency added by managed mode, concurrency 1", ms(p50s["managed"] - p50s["header"]))


if __name__ == "__main__":
    sys.exit(main())
