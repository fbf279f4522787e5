"""The site's one DRF exception handler (REST_FRAMEWORK["EXCEPTION_HANDLER"]).

Each family of JSON endpoint keeps the error shape its clients know, so the shape belongs to the view: a view with
an `error_response(exc)` method answers its own failures (the MCP views JSON-RPC errors or `{"success": false}`,
the webhook receiver `{"error", "message"}`); every other view gets DRF's `{"detail": ...}` bodies, as before. The
handler lives here, in the wiring, because the views that shape their errors live in apps that may not import each
other (cacheops never imports mcp_tools).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django.http import HttpResponseBase
from rest_framework.views import exception_handler as drf_exception_handler

ErrorResponse = Callable[[Exception], HttpResponseBase | None]


def exception_handler(exc: Exception, context: Mapping[str, Any]) -> HttpResponseBase | None:
    """Return the view's own answer to `exc` when it shapes its errors, else DRF's; None lets Django answer 500."""
    shape: ErrorResponse | None = getattr(context.get("view"), "error_response", None)
    if shape is not None:
        return shape(exc)
    return drf_exception_handler(exc, dict(context))
