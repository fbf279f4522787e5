"""Staff JSON endpoints of the dashboard (DRF: session or token auth, IsAdminUser by default).

Views parse and answer; the figures come from dashboard.reports, actions from alerts/ttl/cacheops.reporting (warming).
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cacheops.errors import CacheBackendError
from cacheops.reporting import run_warming
from cacheops.rest import CacheUnavailable
from dashboard import alerts, reports, ttl
from dashboard.conf import configured_warmer, dashboard_setting
from dashboard.models import Alert, AlertState

# The one 503 for Redis being away (cacheops.rest), saying what it costs here.
FIGURES_UNAVAILABLE = "Redis is unavailable; the figures that live there cannot be read now, retry shortly."


class StaffView(APIView):
    """A dashboard endpoint: staff only (the project default), Redis failures answered 503 in this one place."""

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, CacheBackendError):
            exc = CacheUnavailable(FIGURES_UNAVAILABLE)
        return super().handle_exception(exc)


class PeriodSerializer(serializers.Serializer[Any]):
    period = serializers.ChoiceField(choices=list(reports.PERIODS), default="24h")
    limit = serializers.IntegerField(min_value=1, max_value=500, default=20)


class AlertFilterSerializer(serializers.Serializer[Any]):
    state = serializers.ChoiceField(choices=AlertState.values, required=False)


class WarmSerializer(serializers.Serializer[Any]):
    limit = serializers.IntegerField(min_value=0, max_value=1000, required=False)


def _query(serializer_class: type[serializers.Serializer[Any]], data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class DashboardView(StaffView):
    def get(self, request: Request) -> Response:
        """Answer everything the dashboard page shows."""
        return Response(reports.overview(_query(PeriodSerializer, request.query_params)["period"]))


class TrendsView(StaffView):
    def get(self, request: Request) -> Response:
        """Answer the series of the period (24h, 7d, 30d)."""
        return Response(reports.trends(_query(PeriodSerializer, request.query_params)["period"]))


class TopQueriesView(StaffView):
    def get(self, request: Request) -> Response:
        """Answer the most-read keys of the period."""
        q = _query(PeriodSerializer, request.query_params)
        return Response({"period": q["period"], "queries": reports.top_queries(q["period"], q["limit"])})


class PerformanceView(StaffView):
    def get(self, request: Request) -> Response:
        """Answer requests, time saved, JobNimbus calls avoided and per-tool latency before/after."""
        return Response(reports.performance(_query(PeriodSerializer, request.query_params)["period"]))


class RecommendationsView(StaffView):
    def get(self, request: Request) -> Response:
        """Answer TTL proposals with evidence, key normalisation hints and warming candidates."""
        return Response(reports.recommendations())


class AlertsView(StaffView):
    def get(self, request: Request) -> Response:
        """Answer the alerts, optionally of one state."""
        return Response(
            {"alerts": reports.alert_rows(_query(AlertFilterSerializer, request.query_params).get("state"))}
        )


class AcknowledgeView(StaffView):
    def post(self, request: Request, alert_id: int) -> Response:
        """Acknowledge an open alert as the requesting user; 404 unknown, 409 when not open."""
        alert = Alert.objects.filter(pk=alert_id).first()
        if alert is None:
            return Response({"detail": f"no alert with id {alert_id}"}, status=404)
        if not alerts.acknowledge(alert, request.user):
            return Response(
                {"detail": f"alert {alert_id} is {alert.state}, only open alerts can be acknowledged"}, status=409
            )
        alert.refresh_from_db()
        return Response(reports.alert_json(alert))


class OptimizeView(StaffView):
    def post(self, request: Request) -> Response:
        """Run the TTL tuner now; answer every decision with its evidence."""
        decisions = ttl.tune()
        return Response(
            {"changed": sum(d.changes for d in decisions), "decisions": [reports.decision_json(d) for d in decisions]}
        )


class WarmingView(StaffView):
    def post(self, request: Request) -> Response:
        """Warm the most-used keys now (bounded); answer what the run did."""
        limit = _query(WarmSerializer, request.data).get("limit")
        limit = int(dashboard_setting("WARM_MAX_PER_RUN")) if limit is None else limit
        report = run_warming(limit, configured_warmer())
        return Response(report.as_dict())
