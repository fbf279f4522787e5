"""In-process cost of the DRF views against the plain ones (issue 12): a cached call through Django's WSGI handler.

    python bench/profile_views.py                  # CPU µs per request, DRF and plain, for /mcp and the compat call
    python bench/profile_views.py --profile compat # also cProfile the DRF compat call (sorted by own time)

No server and no sandbox: Django's WSGI handler (the middleware included) is called in this process, JobNimbus is a
fixed in-memory page, the cache is the real Redis (BENCH_REDIS_URL, default 127.0.0.1:6379) under a namespace of
the run, deleted at the end. Each figure is the mean of the fastest quarter of 40 interleaved rounds of thread CPU
time (the VM's speed drifts); the garbage collector's collections and collected objects per request are counted
too. bench/figures_views.py measures the same pair over HTTP in gunicorn; this one is for finding where the time
goes.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness as h

ROUTES = {"mcp": ("/mcp", "/bench/plain/mcp"), "compat": ("/mcp/tools/call", "/bench/plain/mcp/tools/call")}
BODIES = {
    "mcp": h.mcp_call_body("get_jobs", {"size": 20}),
    "compat": orjson.dumps({"name": "get_jobs", "arguments": {"size": 20}}),
}


class FixedJobNimbus:
    """Answers every list with the same page of 20 jobs (only the first call is ever made: the rest are hits)."""

    def list(self, resource: str, **kwargs: Any) -> Any:
        from mcp_tools.jobnimbus.client import Page

        jobs = [{"jnid": f"j{i}", "name": f"Job {i}", "status_name": "Lead", "is_active": True} for i in range(20)]
        return Page(count=20, records=jobs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=12_000, help="requests per view and route")
    parser.add_argument("--profile", choices=sorted(ROUTES), help="cProfile the DRF view of this route")
    args = parser.parse_args(argv)
    namespace = f"benchprof{int(time.time())}-{os.getpid()}:"
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    tmp = Path(tempfile.mkdtemp(prefix="jn-prof-"))
    queue = f"{namespace}queue"  # never used: the run starts no Celery worker
    env = h.base_environment(tmp, namespace, redis_url, queue)
    env["LOG_LEVEL"] = "ERROR"
    h.setup_django(env)
    from django.core.handlers.wsgi import WSGIHandler

    from mcp_tools.catalog import runtime

    runtime.make_client = lambda ctx: FixedJobNimbus()  # type: ignore[assignment,return-value]
    handler = WSGIHandler()
    try:
        for route, (drf, plain) in ROUTES.items():
            body = BODIES[route]
            answers = [_call(handler, path, body) for path in (drf, drf, plain)]  # the first fills the cache
            if answers[1][0] != 200 or answers[1] != answers[2]:
                raise RuntimeError(f"{route}: DRF and plain answer differently: {answers[1:]}")
            for _ in range(3):  # unmeasured
                _cpu_us(handler, drf, body, 300)
                _cpu_us(handler, plain, body, 300)
            rounds: dict[str, list[float]] = {"DRF": [], "plain": []}
            for _ in range(40):
                rounds["DRF"].append(_cpu_us(handler, drf, body, args.requests // 40))
                rounds["plain"].append(_cpu_us(handler, plain, body, args.requests // 40))
            fast = {name: statistics.mean(sorted(values)[:10]) for name, values in rounds.items()}
            collected = {name: _collected(handler, path, body, 2000) for name, path in (("DRF", drf), ("plain", plain))}
            print(
                f"{route}: DRF {fast['DRF']:.1f} µs, plain {fast['plain']:.1f} µs, DRF - plain "
                f"{fast['DRF'] - fast['plain']:.1f} µs, plain ÷ DRF {fast['plain'] / fast['DRF']:.3f}; "
                f"cyclic garbage per request: DRF {collected['DRF']:.1f}, plain {collected['plain']:.1f} objects"
            )
        if args.profile:
            path, body = ROUTES[args.profile][0], BODIES[args.profile]
            profile = cProfile.Profile()
            profile.enable()
            for _ in range(args.requests // 4):
                _call(handler, path, body)
            profile.disable()
            pstats.Stats(profile).sort_stats("tottime").print_stats(40)
    finally:
        deleted = h.delete_namespace(redis_url, namespace, queue)
        print(f"deleted the run's {deleted} Redis keys", file=sys.stderr)
    return 0


def _environ(path: str, body: bytes) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in h.MCP_HEADERS.items() if k != "Content-Type"},
    }


def _call(handler: Any, path: str, body: bytes) -> tuple[int, Any]:
    """Return the status and the answer without its cache `_meta` (whose age differs from call to call)."""
    status: list[str] = []
    chunks = handler(_environ(path, body), lambda s, headers, exc_info=None: status.append(s))
    content = b"".join(chunks)
    chunks.close()
    answer = orjson.loads(content)
    if isinstance(answer.get("result"), dict):
        answer["result"].pop("_meta", None)
    return int(status[0].split()[0]), answer


def _cpu_us(handler: Any, path: str, body: bytes, n: int) -> float:
    started = time.thread_time()
    for _ in range(n):
        chunks = handler(_environ(path, body), lambda s, headers, exc_info=None: None)
        b"".join(chunks)
        chunks.close()
    return (time.thread_time() - started) / max(1, n) * 1e6


def _collected(handler: Any, path: str, body: bytes, n: int) -> float:
    """Return the objects the cyclic garbage collector freed per request (what reference counting could not)."""
    gc.collect()
    before = sum(s["collected"] for s in gc.get_stats())
    for _ in range(n):
        _cpu_us(handler, path, body, 1)
    gc.collect()
    return (sum(s["collected"] for s in gc.get_stats()) - before) / n


if __name__ == "__main__":
    sys.exit(main())
