"""URL wiring: each app owns its routes."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    # managed first: its admin/login/ (the admin's sign-in under a per-address budget) comes before the admin's own.
    path("", include("managed.urls")),
    path("admin/", admin.site.urls),
    path("", include("mcp_tools.urls")),
    path("", include("cacheops.urls")),
    path("", include("dashboard.urls")),
]
