"""Staff-facing and operational endpoints: /health, and the cache dashboard page with its SVG charts."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.contrib.admin.views.decorators import staff_member_required
from django.db.models import Count
from django.db.models.functions import TruncDay, TruncHour, TruncMinute
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import render
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.views.decorators.http import require_GET

from cacheops.errors import CacheBackendError
from cacheops.models import InvalidationEvent
from cacheops.reporting import may_monitor
from dashboard import charts, reports
from dashboard.health import overall_status, public_checks, run_checks
from dashboard.models import Alert

# metric -> (title, unit of the y axis: '%' for rates, 'ms', '' for counts)
CHARTS: dict[str, tuple[str, str]] = {
    "hit_rate": ("Hit rate", "%"),
    "requests": ("Requests by outcome", ""),
    "latency": ("Latency, cached vs uncached", "ms"),
    "upstream": ("JobNimbus calls made vs saved", ""),
    "invalidations": ("Invalidations by source", ""),
    "alerts": ("Alerts opened", ""),
}
# Series of a trends point: (legend, field, fallback field when the point has not the first); counts zero-filled.
SERIES: dict[str, list[tuple[str, str, str | None]]] = {
    "hit_rate": [("hit rate", "hit_rate", None)],
    "requests": [
        ("L1 hits", "hit_l1", None),
        ("L2 hits", "hit_l2", None),
        ("misses", "miss", None),
        ("stale", "stale", None),
    ],
    "latency": [
        ("cached p50", "p50_cached_ms", "avg_cached_ms"),
        ("cached p95", "p95_cached_ms", None),
        ("uncached p50", "p50_uncached_ms", "avg_uncached_ms"),
        ("uncached p95", "p95_uncached_ms", None),
    ],
    "upstream": [("made", "upstream_calls", None), ("saved", "upstream_calls_saved", None)],
}
COUNTS = {"requests", "upstream", "invalidations", "alerts"}
REFRESH_S = 10
PERIOD_WORDS = {"1h": "last hour", "24h": "last 24 h", "7d": "last 7 days", "30d": "last 30 days"}


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
    data = reports.overview("24h")
    alert_rows = reports.alert_rows()
    for a in alert_rows:
        a["rule_text"] = a.get("title") or str(a["rule"]).replace("_", " ").capitalize()
        a["first_seen_text"] = a.get("first_seen_local") or human_time(a["first_seen"])
        a["last_seen_text"] = a.get("last_seen_local") or human_time(a["last_seen"])
        a["actions_list"] = a.get("actions_list") or a.get("actions") or []
    context = {
        "title": "Cache dashboard",
        "data": data,
        "page": page_figures(data),
        "alerts": alert_rows,
        "top_queries": _top_queries(),
        "charts": [{"metric": m, "title": t} for m, (t, _) in CHARTS.items()],
        "periods": [{"key": p, "words": PERIOD_WORDS.get(p, p)} for p in reports.PERIODS],
    }
    return render(request, "dashboard/cache_dashboard.html", context)


def human_time(value: str | datetime | None) -> str:
    """Return a timestamp as the server's local time to the minute with its zone: 'Dec 08, 01:14 UTC'."""
    if not value:
        return "—"
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return timezone.localtime(at).strftime("%b %d, %H:%M %Z")


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


def ms(value: float | None) -> str:
    """Return milliseconds as the page's script writes them: three significant digits under 10 ms."""
    if value is None:
        return "—"
    return f"{value:.0f} ms" if value >= 100 else f"{value:.1f} ms" if value >= 10 else f"{value:.3g} ms"


def duration(seconds: int | None) -> str:
    if seconds is None:
        return "—"
    days, rest = divmod(int(seconds), 86400)
    text = f"{rest // 3600} h {rest % 3600 // 60} min"
    return f"{days} d {text}" if days else text


BREAKER_WORDS = {"closed": "reachable", "open": "failing, calls paused", "half_open": "recovering, trying again"}


def breaker_words(states: dict[str, Any]) -> list[dict[str, str]]:
    """Return each breaker as words ('JobNimbus demo: reachable') with the jargon kept for a tooltip."""
    out = []
    for name, state in states.items():
        raw = str(getattr(state, "value", state)).lower()
        label = "Redis" if name == "redis" else "JobNimbus " + name.partition(":")[2] if ":" in name else name
        out.append({"text": f"{label}: {BREAKER_WORDS.get(raw, raw)}", "detail": f"circuit breaker {name} is {raw}"})
    return out


def page_figures(data: dict[str, Any]) -> dict[str, Any]:
    """Return the overview's figures as the page first shows them (the script rewrites them on each refresh)."""
    t = data["totals"]
    redis = data.get("redis") or {}
    return {
        "window": data.get("window") or PERIOD_WORDS.get(data.get("period", "24h"), "last 24 h"),
        "generated": data.get("generated_local") or human_time(data.get("generated")),
        "refresh_s": REFRESH_S,
        "hit_rate": pct(t.get("hit_rate")),
        "improvement": pct(t.get("improvement")),
        "avg_cached": ms(t.get("avg_cached_ms")),
        "avg_uncached": ms(t.get("avg_uncached_ms")),
        "p95_cached": ms(t.get("p95_cached_ms")),
        "p95_uncached": ms(t.get("p95_uncached_ms")),
        "max_memory": "no limit" if not redis.get("maxMemory") else filesizeformat(redis["maxMemory"]),
        "uptime": (data.get("uptime") or {}).get("text") or duration(data.get("uptime_s")),
        "breakers": data.get("reachability") or breaker_words(data.get("breakers") or {}),
        "tools": [
            {
                "tool": row["tool"],
                "requests": row["requests"],
                "hit_rate": pct(row.get("hit_rate")),
                "miss": row.get("miss"),
                "avg_cached": ms(row.get("avg_cached_ms")),
                "avg_uncached": ms(row.get("avg_uncached_ms")),
                "p95_cached": ms(row.get("p95_cached_ms")),
            }
            for row in data.get("tools", [])
        ],
        "invalidations": [
            {
                "iso": row["hour"],
                "hour": row.get("hour_local") or human_time(row["hour"]),
                "source": row["source"],
                "count": row["count"],
            }
            for row in data.get("invalidations_per_hour", [])
        ],
    }


def _top_queries() -> list[dict[str, Any]] | None:
    """Return the ten most-read queries of the day as tool and arguments (never a cache key), or None when Redis
    cannot be read (the page still renders)."""
    try:
        rows = reports.top_queries("24h", 10)
    except CacheBackendError:
        return None
    return [{"tool": q.get("tool"), "query": query_words(q), "reads": q.get("reads")} for q in rows]


def query_words(q: dict[str, Any]) -> str:
    """Return a top query as its tool and arguments in words (the report's "query"), never its cache key."""
    if isinstance(q.get("query"), str) and q["query"]:
        return str(q["query"])
    return f"{q.get('tool') or 'a tool'}: a read (arguments not recorded)"


@require_GET
@staff_member_required
def chart_svg(request: HttpRequest) -> HttpResponse:
    """Answer one chart of the period as SVG: ?metric=<one of CHARTS>&period=<one of reports.PERIODS>."""
    metric, period = request.GET.get("metric", "hit_rate"), request.GET.get("period", "24h")
    if metric not in CHARTS or period not in reports.PERIODS:
        return HttpResponseBadRequest(
            f"metric must be one of {', '.join(CHARTS)} and period one of {', '.join(reports.PERIODS)}",
            content_type="text/plain",
        )
    return HttpResponse(chart_document(metric, period, timezone.now()), content_type="image/svg+xml")


def chart_document(metric: str, period: str, now: datetime) -> str:
    """Return the SVG of `metric` over `period` up to `now`, bucketed at the resolution the period needs."""
    title, unit = CHARTS[metric]
    start = now - reports.PERIODS[period]
    step = charts.resolution(now - start)
    times = charts.buckets(start, now, step)
    index = {at: i for i, at in enumerate(times)}
    points = reports.trends(period).get("points", [])
    observed = len(points)
    values: dict[str, list[float | None]] = {}

    def add(name: str, at: datetime, value: float | None) -> None:
        i = index.get(charts.floor_time(at, step))
        column = values.setdefault(name, [0.0 if metric in COUNTS else None] * len(times))
        if i is not None and value is not None:
            column[i] = (column[i] or 0) + value if metric in COUNTS else value

    if metric in SERIES:
        fields = _fields(metric, points)
        title = title if metric != "upstream" or fields[0][1] == "upstream_calls" else "JobNimbus errors"
        for legend, _ in fields:
            values.setdefault(legend, [0.0 if metric in COUNTS else None] * len(times))
        for p in points:
            at = datetime.fromisoformat(p["t"])
            for legend, field in fields:
                add(legend, at, p.get(field))
    elif metric == "invalidations":
        trunc = TruncMinute if step < timedelta(hours=1) else TruncHour if step < timedelta(days=1) else TruncDay
        rows = (
            InvalidationEvent.objects.filter(received__gte=start)
            .annotate(at=trunc("received"))
            .values("at", "source")
            .annotate(n=Count("id"))
        )
        for row in rows:
            add(row["source"], row["at"], row["n"])
        values = values or {"events": [0.0] * len(times)}
    else:  # alerts
        values["alerts"] = [0.0] * len(times)
        for at in Alert.objects.filter(first_seen__gte=start).values_list("first_seen", flat=True):
            add("alerts", at, 1)
    series = [charts.Series(name, column) for name, column in values.items()]
    window = PERIOD_WORDS.get(period, period)
    return charts.line_chart(f"{title}, {window}", times, series, unit=unit, start=start, end=now, observed=observed)


def _fields(metric: str, points: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Return (legend, field) of the metric's series that the points carry (the fallback field when only it is)."""
    present = set().union(*(p.keys() for p in points)) if points else set()
    chosen = []
    for legend, field, fallback in SERIES[metric]:
        if field in present or not points:
            chosen.append((legend, field))
        elif fallback and fallback in present:
            chosen.append((legend.replace("p50", "average"), fallback))
    if not chosen and metric == "requests":
        chosen = [("requests", "requests")]
    if not chosen and metric == "upstream":
        chosen = [("JobNimbus errors", "errors")]
    return chosen


@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    """Answer the site's icon (a small SVG) so browsers asking for /favicon.ico do not log a 404."""
    return HttpResponse(FAVICON, content_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"})


FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" '
    'fill="#417690"/><path d="M3 12 L6 8 L9 10 L13 4" stroke="#fff" stroke-width="2" fill="none"/></svg>'
)
