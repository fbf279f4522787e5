"""Staff endpoints over the invalidation history: the list (filtered, paginated) and hourly stats per entity."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cacheops.models import EventSource, InvalidationEvent


class InvalidationEventSerializer(serializers.ModelSerializer[InvalidationEvent]):
    latency_ms = serializers.SerializerMethodField()

    class Meta:
        model = InvalidationEvent
        fields = (
            "id", "instance", "entity", "jnid", "event", "related", "source", "received", "applied",
            "latency_ms", "keys_dropped", "attempts", "error", "duplicate_of",
        )  # fmt: skip

    def get_latency_ms(self, event: InvalidationEvent) -> float | None:
        """Return milliseconds from receipt to applied, or None while unapplied."""
        return _latency_ms(event.received, event.applied)


class HistoryPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class InvalidationHistoryView(ListAPIView[InvalidationEvent]):
    """GET /cache/invalidations?instance=&entity=&source=&page=: newest first."""

    serializer_class = InvalidationEventSerializer
    pagination_class = HistoryPagination

    def get_queryset(self) -> QuerySet[InvalidationEvent]:
        """Return the history narrowed by the query's instance, entity and source."""
        params = self.request.query_params
        source = params.get("source")
        if source and source not in EventSource.values:
            raise ValidationError({"source": f"expected one of {', '.join(EventSource.values)}"})
        filters = {name: params[name] for name in ("instance", "entity", "source") if params.get(name)}
        return InvalidationEvent.objects.filter(**filters).order_by("-received", "-id")


class InvalidationStatsView(APIView):
    """GET /cache/invalidations/stats?hours=24&instance=: per entity and hour, events, keys and latency."""

    def get(self, request: Request) -> Response:
        """Answer the stats for the last `hours` hours (1 to 168)."""
        hours = _hours(request.query_params.get("hours", "24"))
        since = timezone.now() - timedelta(hours=hours)
        rows = InvalidationEvent.objects.filter(received__gte=since, duplicate_of__isnull=True)
        if request.query_params.get("instance"):
            rows = rows.filter(instance=request.query_params["instance"])
        values = rows.values_list("entity", "received", "applied", "keys_dropped")
        return Response({"since": since, "hours": hours, "buckets": hourly_buckets(values)})


def _hours(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 168:
        raise ValidationError({"hours": "expected a whole number of hours from 1 to 168"})
    return int(raw)


def hourly_buckets(rows: Any) -> list[dict[str, Any]]:
    """Group (entity, received, applied, keys_dropped) rows by entity and hour with latency percentiles."""
    groups: dict[tuple[str, datetime], list[tuple[datetime, datetime | None, int]]] = defaultdict(list)
    for entity, received, applied, dropped in rows:
        groups[(entity, received.replace(minute=0, second=0, microsecond=0))].append((received, applied, dropped))
    return [_bucket(entity, hour, members) for (entity, hour), members in sorted(groups.items())]


def _bucket(entity: str, hour: datetime, members: list[tuple[datetime, datetime | None, int]]) -> dict[str, Any]:
    latencies = sorted(ms for received, applied, _ in members if (ms := _latency_ms(received, applied)) is not None)
    return {
        "entity": entity,
        "hour": hour,
        "events": len(members),
        "unapplied": sum(1 for _, applied, _ in members if applied is None),
        "keys_dropped": sum(dropped for _, _, dropped in members),
        "latency_ms_p50": percentile(latencies, 50),
        "latency_ms_p99": percentile(latencies, 99),
    }


def percentile(ordered: Sequence[float], pct: float) -> float | None:
    """Return the nearest-rank percentile of an ascending sequence, or None when empty."""
    if not ordered:
        return None
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def _latency_ms(received: datetime, applied: datetime | None) -> float | None:
    return None if applied is None else round((applied - received).total_seconds() * 1000, 3)
