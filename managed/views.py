"""The authorization server's pages and documents, on django-oauth-toolkit's views.

All of them answer 404 while MANAGED_MODE is off, so a header-mode deployment exposes no OAuth surface.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseBase, JsonResponse
from oauth2_provider import views as oauth_views
from oauth2_provider.settings import oauth2_settings

from managed import budgets, resource_id
from managed.resource import ALL_SCOPES

View = Callable[..., HttpResponseBase]


def managed_only(view: View) -> View:
    """Answer 404 unless managed mode is on."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not settings.MANAGED_MODE:
            raise Http404("Managed mode is off on this server")
        return view(request, *args, **kwargs)

    return guarded


class ProtectedResourceMetadata(oauth_views.OAuthProtectedResourceMetadataView):
    """RFC 9728: this server's `/mcp` is the resource; its authorization server is this same site."""

    def get_resource(self, request: HttpRequest) -> str:
        return resource_id.for_request(request)

    def get_authorization_servers(self, request: HttpRequest) -> list[str]:
        return [request.build_absolute_uri("/").rstrip("/")]  # the issuer as RFC 8414 metadata states it

    def get_scopes_supported(self) -> list[str]:
        return list(ALL_SCOPES)


class Authorize(oauth_views.AuthorizationView):
    """The consent page (templates/oauth2_provider/authorize.html), refusing a resource other than this server's."""

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        ours = resource_id.for_request(request)
        foreign = [r for r in request.GET.getlist("resource") if r.rstrip("/") != ours]
        if foreign:
            return HttpResponseBadRequest(
                f"invalid_target: this server issues tokens for {ours} only, not {foreign[0][:200]!r}",
                content_type="text/plain",
            )
        method = request.GET.get("code_challenge_method")
        if method is not None and method != "S256":
            # Refused before the consent page, not after the person allowed it (the toolkit checks at the code).
            return HttpResponseBadRequest(
                f"invalid_request: PKCE code_challenge_method must be S256, not {method[:20]!r}",
                content_type="text/plain",
            )
        return super().get(request, *args, **kwargs)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        redirect_uri = self.oauth2_data.get("redirect_uri", "") if hasattr(self, "oauth2_data") else ""
        context["redirect_host"] = urlsplit(redirect_uri).netloc
        context["site_header"] = "JobNimbus MCP server"
        return context


class Register(oauth_views.DynamicClientRegistrationView):
    """RFC 7591 registration, refusing what the toolkit lets through: a client_name that is not a string (it stored
    str() of it) and grant types this server does not serve (open registration handed out client_credentials
    clients, whose user-less tokens the token endpoint then issued)."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        wait = budgets.refusal_wait("registration", request)
        if wait is not None:
            return _too_many(JsonResponse, "client registrations", wait)
        try:
            metadata = json.loads(request.body)
        except ValueError:
            metadata = None  # the toolkit answers a body that is not JSON
        if isinstance(metadata, dict):
            problem = _unserved_metadata(metadata)
            if problem:
                return JsonResponse({"error": "invalid_client_metadata", "error_description": problem}, status=400)
        return super().post(request, *args, **kwargs)


def _unserved_metadata(metadata: dict[str, Any]) -> str:
    if not isinstance(metadata.get("client_name", ""), str):
        return "client_name must be a string"
    grants = metadata.get("grant_types", [])
    served = oauth2_settings.OAUTH2_GRANT_TYPES_SUPPORTED
    if isinstance(grants, list):
        for grant in grants:
            if isinstance(grant, str) and grant not in served:
                return f"Unsupported grant_type: {grant[:64]!r}; this server serves {', '.join(served)}"
    return ""


class SignIn(auth_views.LoginView):
    """Sign-in for any active account (the admin's own sign-in takes staff only)."""

    template_name = "registration/login.html"
    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        wait = budgets.refusal_wait("sign_in", request)
        if wait is not None:
            return _too_many(HttpResponse, "sign-in attempts", wait)
        return super().post(request, *args, **kwargs)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.update(app_path=self.request.get_full_path(), site_header="JobNimbus MCP server")
        return context


def _too_many(kind: type[HttpResponse], what: str, wait: int) -> HttpResponse:
    """Return the 429 of a door whose per-address budget is spent: JSON for registration, text for sign-in."""
    text = f"Too many {what} from your address; retry in {wait} s"
    if kind is JsonResponse:
        response: HttpResponse = JsonResponse({"error": "invalid_request", "error_description": text}, status=429)
    else:
        response = HttpResponse(text, status=429, content_type="text/plain")
    response["Retry-After"] = str(wait)
    return response
