"""Cache routes: the engine's (health, stats, clear, invalidate, metrics) and freshness's (webhooks, history)."""

from __future__ import annotations

from django.urls import include, path

urlpatterns = [
    path("", include("cacheops.urls_engine")),
    path("", include("cacheops.urls_freshness")),
]
