"""Freshness routes: the JobNimbus webhook receiver and the staff invalidation history."""

from __future__ import annotations

from django.urls import URLPattern, path

from cacheops.views_freshness import InvalidationHistoryView, InvalidationStatsView
from cacheops.webhooks import receive_webhook

urlpatterns: list[URLPattern] = [
    path("webhooks/jobnimbus", receive_webhook, name="jobnimbus-webhook"),
    path("webhooks/jobnimbus/<str:instance>", receive_webhook, name="jobnimbus-webhook-instance"),
    path("cache/invalidations", InvalidationHistoryView.as_view(), name="cache-invalidations"),
    path("cache/invalidations/stats", InvalidationStatsView.as_view(), name="cache-invalidation-stats"),
]
