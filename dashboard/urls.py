from __future__ import annotations

from django.urls import path

from dashboard import api, views

urlpatterns = [
    path("health", views.health, name="health"),
    path("cache/dashboard", api.DashboardView.as_view(), name="cache-dashboard"),
    path("cache/trends", api.TrendsView.as_view(), name="cache-trends"),
    path("cache/analytics/top-queries", api.TopQueriesView.as_view(), name="cache-top-queries"),
    path("cache/analytics/performance", api.PerformanceView.as_view(), name="cache-performance"),
    path("cache/analytics/recommendations", api.RecommendationsView.as_view(), name="cache-recommendations"),
    path("cache/alerts", api.AlertsView.as_view(), name="cache-alerts"),
    path("cache/alerts/<int:alert_id>/acknowledge", api.AcknowledgeView.as_view(), name="cache-alert-acknowledge"),
    path("cache/optimize", api.OptimizeView.as_view(), name="cache-optimize"),
    path("cache/warming", api.WarmingView.as_view(), name="cache-warming"),
    path("staff/cache-dashboard", views.dashboard_page, name="cache-dashboard-page"),
    path("staff/cache-dashboard/chart.svg", views.chart_svg, name="cache-dashboard-chart"),
    path("favicon.ico", views.favicon, name="favicon"),
]
