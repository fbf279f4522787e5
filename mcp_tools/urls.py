"""Routes of the MCP face: the Streamable HTTP endpoint and the plain-JSON compatibility endpoints."""

from __future__ import annotations

from django.urls import path

from mcp_tools import views

urlpatterns = [
    path("mcp", views.mcp_endpoint, name="mcp"),
    path("mcp/", views.mcp_endpoint),
    path("mcp/tools/list", views.compat_tools_list, name="mcp-tools-list"),
    path("mcp/tools/call", views.compat_tools_call, name="mcp-tools-call"),
]
