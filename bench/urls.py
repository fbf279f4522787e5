"""The project's URLs plus the benchmark baseline: a bare Django JSON view."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from jobnimbus_site.urls import urlpatterns as project_urlpatterns


@csrf_exempt
def bare(request: HttpRequest) -> JsonResponse:
    """Answer a small fixed JSON object: the cost of Django + gunicorn alone."""
    return JsonResponse({"ok": True, "items": [1, 2, 3]})


urlpatterns = [path("bench/bare", bare), *project_urlpatterns]
