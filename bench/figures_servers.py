"""Web server candidates (issue 15, part 1): which server and concurrency serve cached /mcp hits best on this host.

    python bench/figures_servers.py            # full run, every candidate (about 10 minutes)
    python bench/figures_servers.py --quick    # smoke run: gthread 4x4 and the Procfile's line (about 2 minutes)
    python bench/figures_servers.py --only procfile,granian-2x4   # some candidates (the baseline always runs)

Every candidate serves the project's real WSGI app as the Procfile would (gunicorn: `jobnimbus_site.wsgi` with
gunicorn_conf.py; granian: `jobnimbus_site.web`; bench.settings adds the /bench/bare baseline view) with the
Procfile's logging and DJANGO_DEBUG=false, against one sandbox JobNimbus, the real Redis at BENCH_REDIS_URL
(default redis://127.0.0.1:6379/0) under a namespace of this run, and one temporary database. All candidates run
at once, each on its own loopback port, and are loaded in turn, round after round, in a rotating order: each round
gives every candidate a bare-view burst and a cached `/mcp` `tools/call` burst (get_contact, an L1 hit), so every
ratio against gunicorn gthread 4x4 is taken from bursts of the same round (the VM's speed drifts by 2x within
seconds). The load generator is wrk (`apt-get install -y wrk`; installed when missing and run as root).

Then, one candidate at a time, the slow-miss figure: cached-hit latency (p99 over fresh connections) alone, then
while the sandbox answers /api1/jobs 10 s late and clients keep more slow misses in flight than the candidate has
miss slots (CACHE_MISS_CONCURRENCY per process), so every slot is held by a genuinely slow upstream call. Targets:
cached /mcp req/s >= 1.4x gthread 4x4's, and hit p99 under slow misses <= 2x its unloaded p99. Exits 0 whatever
the figures: they are a report.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness as h
from bench.figures_views import group_cpu_s
from bench.harness import Report

CONNECTIONS = 16
THROUGHPUT_TARGET = 1.4
LATENCY_TARGET = 2.0
SLOW_MISS_MS = 10_000
BASELINE = "gthread-4x4"
WSGI_APP = "jobnimbus_site.wsgi:application"
GRANIAN_APP = "jobnimbus_site.web:application"  # the Django app plus granian's keep-alive bound (see that module)
GUNICORN_CONF = "jobnimbus_site/gunicorn_conf.py"


@dataclass(frozen=True)
class Candidate:
    """One server configuration: its name, how to start it on a port, its processes x request threads."""

    name: str
    argv: Callable[[int, dict[str, str]], list[str]]
    processes: int
    threads: int
    env: tuple[tuple[str, str], ...] = ()  # variables of this candidate only (a smaller miss gate)

    def setting(self, run_env: dict[str, str], name: str) -> int:
        """Return the miss gate's `name` as this candidate's processes read it."""
        from cacheops.conf import DEFAULTS

        return int(dict(self.env).get(f"CACHE_{name}", run_env.get(f"CACHE_{name}", DEFAULTS[name])))


def gunicorn(worker_class: str, workers: int, threads: int) -> Callable[[int, dict[str, str]], list[str]]:
    """Return the argv builder of gunicorn with the project's config (scrubbing access log, keep-alive bound)."""

    def argv(port: int, env: dict[str, str]) -> list[str]:
        cmd = [h.PYTHON, "-m", "gunicorn", WSGI_APP, "--config", GUNICORN_CONF, "--bind", f"127.0.0.1:{port}"]
        cmd += ["--workers", str(workers), "--worker-class", worker_class, "--timeout", "60"]
        return cmd + (["--threads", str(threads)] if worker_class == "gthread" else []) + ["--access-logfile", "-"]

    return argv


def granian(workers: int, threads: int, backpressure: int | None = None) -> Callable[[int, dict[str, str]], list[str]]:
    """Return the argv builder of granian WSGI with the project's access-log configuration."""

    def argv(port: int, env: dict[str, str]) -> list[str]:
        cmd = [
            h.PYTHON,
            "-m",
            "granian",
            "--interface",
            "wsgi",
            GRANIAN_APP,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        cmd += ["--workers", str(workers), "--blocking-threads", str(threads), "--respawn-failed-workers"]
        cmd += ["--log-config", "jobnimbus_site/granian_logging.json", "--access-log", "--workers-kill-timeout", "30"]
        return cmd + (["--backpressure", str(backpressure)] if backpressure else [])

    return argv


def procfile(port: int, env: dict[str, str]) -> list[str]:
    """Return the Procfile's own web line (what production runs), bound to this port."""
    return h.procfile_web_command(port, Path("/dev/stdout"), env)


def candidates(env: dict[str, str]) -> list[Candidate]:
    """Return every candidate; the Procfile's line is measured as it stands, whatever server it names."""
    summary = h.procfile_web_summary(env)
    workers, threads = (int(n) for n in re.findall(r"=(\d+)", summary)[:2])
    return [
        Candidate(BASELINE, gunicorn("gthread", 4, 4), 4, 4),
        Candidate("gthread-4x8", gunicorn("gthread", 4, 8), 4, 8),  # the Procfile's line before issue 15
        Candidate("gunicorn-sync-4", gunicorn("sync", 4, 1), 4, 1),
        Candidate("granian-2x4", granian(2, 4), 2, 4),
        Candidate(
            "granian-2x4-gate2+1", granian(2, 4), 2, 4, (("CACHE_MISS_CONCURRENCY", "2"), ("CACHE_MISS_QUEUE", "1"))
        ),
        Candidate("granian-2x8", granian(2, 8), 2, 8),
        Candidate("granian-4x4", granian(4, 4), 4, 4),
        Candidate(f"procfile ({summary})", procfile, workers, threads),
    ]


@dataclass
class Server:
    """A running candidate: where it answers, its process group, and the bursts it served."""

    candidate: Candidate
    url: str
    group: int
    bare: list[float] = field(default_factory=list)
    cached: list[float] = field(default_factory=list)
    cached_per_cpu_s: list[float] = field(default_factory=list)  # requests per CPU-second its processes spent
    errors: int = 0


def main(argv: list[str] | None = None) -> int:
    """Start the candidates, measure throughput and the slow-miss figure, print the table; return 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter bursts: a smoke run")
    parser.add_argument(
        "--only", default="", help="comma list of candidate name prefixes (default: all; quick: procfile)"
    )
    args = parser.parse_args(argv)
    rounds, burst_s, slow_s = (3, 1.0, 6.0) if args.quick else (7, 2.0, 8.0)
    if h.wrk_path() is None:
        print("wrk is required: apt-get install -y wrk", file=sys.stderr)
        return 2
    report = Report(f"Web server candidates ({'quick' if args.quick else 'full'} run)")
    with h.stack() as run:
        run.start_sandbox(latency_ms=0)
        run.migrate()
        only = args.only or ("procfile" if args.quick else "")  # a smoke run: the baseline and the Procfile's line
        chosen = [c for c in candidates(run.env) if _selected(c, only)]
        servers = [start(run, c) for c in chosen]
        hit_body = cached_hit_body(run, servers)
        for server in servers:
            warm(run, server, hit_body)
        throughput(run, servers, hit_body, rounds, burst_s)
        report_throughput(report, servers, rounds)
        for server in servers:
            slow_miss_figure(run, server, hit_body, slow_s, report)
        report.notes.append(
            f"{os.cpu_count()} CPUs; {rounds} rounds of {burst_s:.0f} s wrk bursts, {CONNECTIONS} connections, "
            "candidates in a rotating order; the ratio is the median over rounds of candidate ÷ gthread 4x4 in "
            "the same round"
        )
        report.notes.append(f"miss gate per process, unless the candidate's name says: {miss_gate(run.env)}")
        report.notes.append(
            "requests per server CPU-second: requests of a cached burst ÷ CPU time the candidate's processes spent "
            "meanwhile (Linux /proc); neighbours on a shared VM move it less than req/s"
        )
    print()
    print(report.render())
    return 0


def _selected(candidate: Candidate, only: str) -> bool:
    names = [n.strip() for n in only.split(",") if n.strip()]
    return not names or candidate.name == BASELINE or any(candidate.name.startswith(n) for n in names)


def start(run: h.Stack, candidate: Candidate) -> Server:
    """Start one candidate on a free port, its output in the run's directory; wait for /health."""
    port = h.free_port()
    log_name = re.sub(r"\W+", "-", candidate.name) + ".log"
    saved = dict(run.env)
    run.env.update(candidate.env)  # _spawn starts the process with run.env
    try:
        proc = run._spawn(candidate.argv(port, run.env), log_name)
    finally:
        run.env.clear()
        run.env.update(saved)
    url = f"http://127.0.0.1:{port}"
    h.wait_http(url + "/health", proc=proc)
    return Server(candidate, url, proc.pid)  # it leads its own process group (a new session)


def cached_hit_body(run: h.Stack, servers: list[Server]) -> bytes:
    """Return a get_contact tools/call body for a contact the sandbox holds; fill the cache through every server."""
    client = h.Client(run.sandbox_url)
    try:
        _, raw = client.request("GET", "/api1/contacts?size=1", headers={"Authorization": f"Bearer {h.SANDBOX_KEY}"})
    finally:
        client.close()
    jnid = re.search(r'"jnid":\s*"([^"]+)"', orjson.dumps(raw).decode() if not isinstance(raw, bytes) else raw.decode())
    if jnid is None:
        raise RuntimeError(f"the sandbox listed no contact: {str(raw)[:300]}")
    return h.mcp_call_body("get_contact", {"jnid": jnid.group(1)})


def warm(run: h.Stack, server: Server, body: bytes) -> None:
    """Call once (a miss fills Redis), check a hit answers, then load every worker and thread past its first call."""
    client = h.Client(server.url)
    try:
        for _ in range(3):
            status, answer = client.request("POST", "/mcp", body, h.MCP_HEADERS)
    finally:
        client.close()
    if status != 200 or cache_status(answer) not in ("hit_l1", "hit_l2"):
        raise RuntimeError(f"{server.candidate.name}: no cached answer: {status} {str(answer)[:300]}")
    for path in ("/bench/bare", "/mcp"):
        h.wrk_post(server.url + path, body, h.MCP_HEADERS, 1.0, CONNECTIONS, run.tmp)


def cache_status(body: Any) -> str | None:
    result = body.get("result") if isinstance(body, dict) else None
    if isinstance(result, dict) and "_meta" in result:
        return str(result["_meta"].get("jobnimbus-mcp/cache", {}).get("status"))
    return None


# --- throughput ----------------------------------------------------------------------------------------------


def throughput(run: h.Stack, servers: list[Server], body: bytes, rounds: int, burst_s: float) -> None:
    """Give every server a bare and a cached burst per round, in a rotating order (no server always goes first)."""
    for round_no in range(rounds):
        shift = round_no % len(servers)
        for server in servers[shift:] + servers[:shift]:
            for path, results in (("/bench/bare", server.bare), ("/mcp", server.cached)):
                cpu_before = group_cpu_s(server.group)
                result = h.wrk_post(server.url + path, body, h.MCP_HEADERS, burst_s, CONNECTIONS, run.tmp)
                results.append(result.requests_per_s)
                server.errors += result.errors
                if path == "/mcp":
                    server.cached_per_cpu_s.append(result.requests / max(1e-9, group_cpu_s(server.group) - cpu_before))
        print(f"  round {round_no + 1}/{rounds} done", flush=True)


def report_throughput(report: Report, servers: list[Server], rounds: int) -> None:
    """Add each server's mean req/s and its median same-round ratio against the baseline."""
    base = next(s for s in servers if s.candidate.name == BASELINE)
    for server in servers:
        ratios = [c / b for c, b in zip(server.cached, base.cached, strict=True)]
        name = server.candidate.name
        report.add(
            f"{name}: bare view / cached /mcp, mean of {rounds}",
            f"{statistics.mean(server.bare):,.0f} / {statistics.mean(server.cached):,.0f} req/s "
            f"({server.errors} errors)",
        )
        if server is not base:
            report.add(
                f"{name}: cached /mcp ÷ gthread 4x4, median ({min(ratios):.2f} to {max(ratios):.2f})",
                f"{statistics.median(ratios):.2f}",
                f"≥ {THROUGHPUT_TARGET}",
                statistics.median(ratios) >= THROUGHPUT_TARGET and server.errors == 0,
            )
        per_cpu = statistics.median(server.cached_per_cpu_s) / statistics.median(base.cached_per_cpu_s)
        report.add(
            f"{name}: cached /mcp requests per server CPU-second, median (÷ gthread 4x4)",
            f"{statistics.median(server.cached_per_cpu_s):,.0f} ({per_cpu:.2f})",
        )


# --- cached hits while every miss slot waits on a slow JobNimbus ---------------------------------------------


def miss_gate(env: dict[str, str]) -> str:
    """Return the miss gate's settings as the web processes read them (the engine's defaults unless set)."""
    from cacheops.conf import DEFAULTS

    return ", ".join(
        f"{name} {env.get('CACHE_' + name, DEFAULTS[name])}" for name in ("MISS_CONCURRENCY", "MISS_QUEUE")
    )


def slow_miss_figure(run: h.Stack, server: Server, hit_body: bytes, seconds: float, report: Report) -> None:
    """Hit p99 alone, then with every miss slot held by a 10 s JobNimbus call; report the ratio."""
    alone = hit_latencies(server.url, hit_body, seconds)
    h.Client(run.sandbox_url).request(
        "POST",
        "/__sandbox/faults",
        orjson.dumps({"latency_ms": SLOW_MISS_MS, "path_prefix": "/api1/jobs"}),
        {"Content-Type": "application/json"},
    )
    slots = server.candidate.processes * server.candidate.setting(run.env, "MISS_CONCURRENCY")
    # More clients than slots and queues together: some misses are refused "busy", proof that every slot is held.
    queue = server.candidate.setting(run.env, "MISS_QUEUE")
    misses = SlowMisses(server.url, clients=slots + (queue + 1) * server.candidate.processes)
    jobs_before = sandbox_jobs_requests(run.sandbox_url)
    try:
        misses.start()
        time.sleep(1.5)  # every slot taken, the queues timed out: only slow misses at JobNimbus remain
        during = hit_latencies(server.url, hit_body, seconds)
        in_flight = misses.in_flight
        upstream = sandbox_jobs_requests(run.sandbox_url) - jobs_before
    finally:
        h.Client(run.sandbox_url).request("DELETE", "/__sandbox/faults")
        misses.stop()
    ratio = h.percentile(during.seconds, 99) / h.percentile(alone.seconds, 99)
    name = server.candidate.name
    report.add(
        f"{name}: cached-hit p99 alone → with {slots} miss slots held by +10 s JobNimbus calls",
        f"{h.ms(h.percentile(alone.seconds, 99))} → {h.ms(h.percentile(during.seconds, 99))}: {ratio:.2f}x "
        f"(n={len(alone.seconds)}/{len(during.seconds)}; {upstream} misses reached JobNimbus, {in_flight} clients "
        f"waiting at the end, {misses.refused} misses refused busy; {alone.failed + during.failed} hits failed)",
        f"≤ {LATENCY_TARGET:.0f}x",
        ratio <= LATENCY_TARGET and alone.failed + during.failed == 0 and upstream >= slots,
    )


def sandbox_jobs_requests(sandbox_url: str) -> int:
    """Return how many /api1/jobs requests the sandbox has received (slow ones count when they arrive)."""
    client = h.Client(sandbox_url)
    try:
        _, body = client.request("GET", "/__sandbox/stats")
    finally:
        client.close()
    return sum(n for name, n in body["requests"].items() if "/api1/jobs" in name)


@dataclass
class Latencies:
    seconds: list[float]
    failed: int


def hit_latencies(url: str, body: bytes, seconds: float, readers: int = 2) -> Latencies:
    """Call the cached tool from `readers` threads for `seconds`, each call on a new connection (any worker).

    Every call's time is a sample, failed ones too; the failures are counted besides (a hit must not fail).
    """
    stop_at = time.monotonic() + seconds
    samples: list[float] = []
    failed = [0]
    lock = threading.Lock()

    def read() -> None:
        while time.monotonic() < stop_at:
            client = h.Client(url)
            started = time.perf_counter()
            try:
                status, answer = client.request("POST", "/mcp", body, h.MCP_HEADERS)
                ok = status == 200 and cache_status(answer) in ("hit_l1", "hit_l2")
            except OSError:
                ok = False
            finally:
                client.close()
            with lock:  # a failed hit counts with the time it took: a hit stuck behind misses is not left out
                samples.append(time.perf_counter() - started)
                failed[0] += not ok

    threads = [threading.Thread(target=read) for _ in range(readers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return Latencies(samples, failed[0])


def refused_busy(answer: Any) -> bool:
    """Return True for a miss the gate refused at once (an error result telling the caller to retry)."""
    result = answer.get("result") if isinstance(answer, dict) else None
    return isinstance(result, dict) and bool(result.get("isError")) and "retry in" in str(result.get("content"))


class SlowMisses:
    """Clients that each keep one miss (a get_jobs page nobody asked for yet) in flight until stopped."""

    def __init__(self, url: str, clients: int) -> None:
        self.url = url
        self.clients = clients
        self.in_flight = 0
        self.refused = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._page = 0  # the run's Redis namespace is new: every page is a miss

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(self.clients)]
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(35)

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                self._page += 1
                body = h.mcp_call_body("get_jobs", {"size": 1 + self._page % 50, "from": self._page})
                self.in_flight += 1
            client = h.Client(self.url)
            try:
                _, answer = client.request("POST", "/mcp", body, h.MCP_HEADERS)
            except OSError:
                answer = None
            finally:
                client.close()
            busy = refused_busy(answer)
            with self._lock:
                self.in_flight -= 1
                self.refused += busy
            if busy:
                self._stop.wait(0.2)  # a refused miss comes back shortly, as a client told "retry" would


if __name__ == "__main__":
    sys.exit(main())
