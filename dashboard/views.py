"""Staff-facing and operational endpoints."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from dashboard.health import overall_status, run_checks


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """Answer the state of the database and Redis; 503 when a required part is down. No secrets."""
    checks = run_checks()
    status = overall_status(checks)
    return JsonResponse({"status": status, "checks": checks}, status=200 if status != "error" else 503)
