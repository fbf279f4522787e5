"""Staff-facing and operational endpoints: /health, and the cache dashboard page with its SVG charts."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from cacheops.errors import CacheBackendError
from cacheops.reporting import may_monitor
from dashboard import charts, reports
from dashboard.health import overall_status, public_checks, run_checks

# metric -> (title, unit, field of a trends point)
CHARTS: dict[str, tuple[str, str, str]] = {
    "hit_rate": ("Hit rate", "", "hit_rate"),
    "requests": ("Requests", "", "requests"),
    "latency": ("Average cached latency", " ms", "avg_cached_ms"),
    "errors": ("JobNimbus errors", "", "errors"),
}


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """Answer the state of the database and Redis; 503 when a required part is down.

    Anyone gets the status and whether each part is up; staff and the metrics token also get latencies and error
    types. Never a secret or a connection string.
    """
    checks = run_checks()
    status = overall_status(checks)
    shown = checks if may_monitor(request) else public_checks(checks)
    return JsonResponse({"status": status, "checks": shown}, status=200 if status != "error" else 503)


@require_GET
@staff_member_required
def dashboard_page(request: HttpRequest) -> HttpResponse:
    """Render the cache dashboard (figures refresh every 30 s from /cache/dashboard, charts are SVG images)."""
    context = {
        "title": "Cache dashboard",
        "data": reports.overview("24h"),
        "alerts": reports.alert_rows(),
        "top_queries": _top_queries(),
        "charts": list(CHARTS),
        "periods": ["24h", "7d"],
    }
    return render(request, "dashboard/cache_dashboard.html", context)


def _top_queries() -> list[dict[str, object]] | None:
    """Return the ten most-read keys of the day, or None when Redis cannot be read (the page still renders)."""
    try:
        return reports.top_queries("24h", 10)
    except CacheBackendError:
        return None


@require_GET
@staff_member_required
def chart_svg(request: HttpRequest) -> HttpResponse:
    """Answer one chart of the trends as SVG: ?metric=hit_rate|requests|latency|errors&period=24h|7d|30d."""
    metric, period = request.GET.get("metric", "hit_rate"), request.GET.get("period", "24h")
    if metric not in CHARTS or period not in reports.PERIODS:
        return HttpResponseBadRequest(
            f"metric must be one of {', '.join(CHARTS)} and period one of {', '.join(reports.PERIODS)}",
            content_type="text/plain",
        )
    title, unit, field = CHARTS[metric]
    points = reports.trends(period)["points"]
    svg = charts.line_chart(f"{title} ({period})", [p["t"][:16] for p in points], [p[field] for p in points], unit)
    return HttpResponse(svg, content_type="image/svg+xml")
