"""Cache engine endpoints: health, stats and /metrics (staff or the metrics token), clear and invalidate (staff).

Health, stats and metrics name the instances, the traffic per tool, breaker states and Redis figures: staff read them
signed in (session or DRF token), monitors with `Authorization: Bearer <METRICS_TOKEN>`. The public liveness answer
is /health (dashboard.views), which says only whether the parts are up.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework import serializers
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission, IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cacheops import keys, metrics
from cacheops.engine import engine
from cacheops.errors import CacheBackendError
from cacheops.rest import CacheUnavailable
from cacheops.status import health, stats

INSTANCE_RE = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
# Globs over the key tail `{tenant}:{entity}:{op}:{hash}`; no path to other instances or other apps' keys.
KEY_PATTERN_RE = r"^[A-Za-z0-9_:*?\-]{1,200}$"


def _on_redis(action: Callable[[], Any]) -> Any:
    """Run an admin action on Redis; its failure is a 503 for the caller (the one mapping)."""
    try:
        return action()
    except CacheBackendError as exc:
        raise CacheUnavailable from exc


class InstanceField(serializers.RegexField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(INSTANCE_RE, max_length=64, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        """Return the instance name when it is configured."""
        value: str = super().to_internal_value(data)
        if value not in settings.JOBNIMBUS_INSTANCES:
            raise serializers.ValidationError(f"unknown instance {value!r}")
        return value


class ClearSerializer(serializers.Serializer[Any]):
    instance = InstanceField(required=False)


class InvalidateSerializer(serializers.Serializer[Any]):
    instance = InstanceField()
    tags = serializers.ListField(
        child=serializers.CharField(max_length=200), min_length=1, max_length=1000, required=False
    )
    entity = serializers.RegexField(r"^[a-z_]{1,40}$", required=False)
    key_pattern = serializers.RegexField(KEY_PATTERN_RE, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Require exactly one of tags, entity and key_pattern."""
        given = [name for name in ("tags", "entity", "key_pattern") if name in attrs]
        if not given:
            raise serializers.ValidationError({"tags": "give one of tags, entity or key_pattern"})
        if len(given) > 1:
            raise serializers.ValidationError({given[1]: f"give only one of tags, entity or key_pattern, not {given}"})
        return attrs


def metrics_token_matches(request: HttpRequest) -> bool:
    """Tell whether the request carries `Authorization: Bearer <METRICS_TOKEN>` (never true when it is unset)."""
    expected = getattr(settings, "METRICS_TOKEN", None)
    scheme, _, given = request.META.get("HTTP_AUTHORIZATION", "").strip().partition(" ")
    if not expected or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8", "surrogatepass"), str(expected).encode())


def may_monitor(request: HttpRequest) -> bool:
    """Tell whether the request may read operational figures: a staff member (session or DRF token) or a monitor."""
    if metrics_token_matches(request):
        return True
    user = getattr(request, "user", None)
    if user is not None and user.is_active and user.is_staff:
        return True
    try:
        authenticated = TokenAuthentication().authenticate(request)  # type: ignore[arg-type]
    except (AuthenticationFailed, UnicodeError):
        return False
    return authenticated is not None and bool(authenticated[0].is_active and authenticated[0].is_staff)


class StaffOrMetricsToken(BasePermission):
    """DRF permission: a staff member, or a monitor with the metrics token."""

    message = "Sign in as staff, or send Authorization: Bearer <METRICS_TOKEN>."

    def has_permission(self, request: Request, view: Any) -> bool:
        """Allow staff and the metrics token."""
        return bool(request.user and request.user.is_staff) or metrics_token_matches(request._request)


class CacheHealthView(APIView):
    """GET /cache/health."""

    permission_classes = [StaffOrMetricsToken]

    def get(self, request: Request) -> Response:
        """Return the cache's health."""
        return Response(health())


class CacheStatsView(APIView):
    """GET /cache/stats."""

    permission_classes = [StaffOrMetricsToken]

    def get(self, request: Request) -> Response:
        """Return hit/miss/write figures by tier and tool, breaker states and Redis figures."""
        return Response(stats())


class CacheClearView(APIView):
    """POST /cache/clear {"instance"?}: delete this app's keys (never FLUSHDB)."""

    permission_classes = [IsAdminUser]

    def post(self, request: Request) -> Response:
        """Delete every key of the app, or of one instance."""
        body = ClearSerializer(data=request.data or {})
        body.is_valid(raise_exception=True)
        instance = body.validated_data.get("instance")
        deleted = _on_redis(lambda: engine().clear_matching(instance))
        return Response({"deleted": deleted, "instance": instance})


class CacheInvalidateView(APIView):
    """POST /cache/invalidate {"instance", "tags" | "entity" | "key_pattern"}."""

    permission_classes = [IsAdminUser]

    def post(self, request: Request) -> Response:
        """Invalidate by tags (atomic, generation-guarded), by entity (its implicit tag) or by key pattern (SCAN)."""
        body = InvalidateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        instance = data["instance"]
        if "key_pattern" in data:
            dropped = _on_redis(lambda: engine().clear_matching(instance, data["key_pattern"]))
            return Response({"instance": instance, "dropped": dropped})
        tags = data["tags"] if "tags" in data else [keys.entity_tag(data["entity"])]
        dropped = _on_redis(lambda: engine().invalidate(instance, tags))
        return Response({"instance": instance, "tags": tags, "dropped": dropped})


def metrics_view(request: HttpRequest) -> HttpResponse:
    """GET /metrics: Prometheus text of every process, for staff and the metrics token (403 otherwise)."""
    if not may_monitor(request):
        return JsonResponse({"detail": StaffOrMetricsToken.message}, status=403)
    body, content_type = metrics.render()
    return HttpResponse(body, content_type=content_type)
