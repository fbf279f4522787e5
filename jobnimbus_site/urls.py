"""URL wiring: each app owns its routes."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("mcp_tools.urls")),
    path("", include("cacheops.urls")),
    path("", include("dashboard.urls")),
    path("", include("managed.urls")),
]
