"""Cache engine routes: health, stats, clear, invalidate, and the Prometheus metrics."""

from __future__ import annotations

from django.urls import URLPattern, path
from django.views.decorators.http import require_GET

from cacheops.views_engine import (
    CacheClearView,
    CacheHealthView,
    CacheInvalidateView,
    CacheStatsView,
    metrics_view,
)

urlpatterns: list[URLPattern] = [
    path("cache/health", CacheHealthView.as_view(), name="cache-health"),
    path("cache/stats", CacheStatsView.as_view(), name="cache-stats"),
    path("cache/clear", CacheClearView.as_view(), name="cache-clear"),
    path("cache/invalidate", CacheInvalidateView.as_view(), name="cache-invalidate"),
    path("metrics", require_GET(metrics_view), name="metrics"),
]
