"""The project's URLs plus the benchmark views: a bare Django JSON view, a per-worker probe, and the MCP endpoints
as the plain Django functions they were before they became DRF views (`bench.plain_views`, under /bench/plain/)."""

from __future__ import annotations

import os

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from bench import plain_views
from jobnimbus_site.urls import urlpatterns as project_urlpatterns


@csrf_exempt
def bare(request: HttpRequest) -> JsonResponse:
    """Answer a small fixed JSON object: the cost of Django + gunicorn alone."""
    return JsonResponse({"ok": True, "items": [1, 2, 3]})


def probe(request: HttpRequest) -> JsonResponse:
    """Answer which worker process this is and its breakers, L1 figures and RSS (no Redis call, nothing secret).

    The fault figures poll it over new connections to learn every web worker's state (bench.urls only).
    """
    from cacheops.breakers import all_states
    from cacheops.engine import engine

    return JsonResponse(
        {"pid": os.getpid(), "breakers": all_states(), "l1": engine().l1.stats(), "rss_bytes": _rss_bytes()}
    )


def _rss_bytes() -> int:
    """Return this process's resident set size (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


urlpatterns = [
    path("bench/bare", bare),
    path("bench/probe", probe),
    path("bench/plain/mcp", plain_views.mcp_endpoint),
    path("bench/plain/mcp/tools/list", plain_views.compat_tools_list),
    path("bench/plain/mcp/tools/call", plain_views.compat_tools_call),
    *project_urlpatterns,
]
