"""Routes of the MCP face: the Streamable HTTP endpoint and the plain-JSON compatibility endpoints."""

from __future__ import annotations

from django.urls import path

from mcp_tools import views

mcp_endpoint = views.McpEndpoint.as_view()

urlpatterns = [
    path("mcp", mcp_endpoint, name="mcp"),
    path("mcp/", mcp_endpoint),
    path("mcp/tools/list", views.CompatToolsList.as_view(), name="mcp-tools-list"),
    path("mcp/tools/call", views.CompatToolsCall.as_view(), name="mcp-tools-call"),
]
