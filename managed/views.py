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
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseBase, JsonResponse
from oauth2_provider import views as oauth_views
from oauth2_provider.settings import oauth2_settings

from managed import budgets, resource_id

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


class Authorize(oauth_views.AuthorizationView):
    """The consent page (templates/oauth2_provider/authorize.html), refusing a resource other than this server's."""

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        problem = _unservable(request)
        if problem:
            # Refused before the consent page, not after the person allowed it (the toolkit checks at the code).
            return HttpResponseBadRequest(problem, content_type="text/plain")
        # The consent page is shown every time (REQUEST_APPROVAL_PROMPT "force"); the toolkit would let a client's own
        # approval_prompt=auto skip it for a person who already holds a token.
        if "approval_prompt" in request.GET:
            query = request.GET.copy()
            del query["approval_prompt"]
            request.GET = query  # type: ignore[assignment]  # a mutable copy where the stubs expect the immutable kind
        return super().get(request, *args, **kwargs)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        redirect_uri = self.oauth2_data.get("redirect_uri", "") if hasattr(self, "oauth2_data") else ""
        context["redirect_host"] = urlsplit(redirect_uri).netloc
        context["site_header"] = "JobNimbus MCP server"
        return context


def _unservable(request: HttpRequest) -> str:
    """Return why this authorization request can never be granted (a foreign resource, PKCE other than S256)."""
    ours = resource_id.for_request(request)
    foreign = [r for r in request.GET.getlist("resource") if r.rstrip("/") != ours]
    if foreign:
        return f"invalid_target: this server issues tokens for {ours} only, not {foreign[0][:200]!r}"
    if not request.GET.get("code_challenge"):
        return "invalid_request: PKCE is required: send code_challenge with code_challenge_method=S256"
    method = request.GET.get("code_challenge_method", "plain")  # RFC 7636: no method means plain
    if method != "S256":
        return f"invalid_request: PKCE code_challenge_method must be S256, not {method[:20]!r}"
    return ""


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

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        wait = budgets.refusal_wait("sign_in", request)
        if wait is not None:
            return _too_many(HttpResponse, "sign-in attempts", wait)
        return super().post(request, *args, **kwargs)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.update(app_path=self.request.get_full_path(), site_header="JobNimbus MCP server")
        return context


def admin_sign_in(request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
    """The admin's own sign-in, under the same per-address budget: it checks the same accounts, staff included."""
    if request.method == "POST":
        wait = budgets.refusal_wait("sign_in", request)
        if wait is not None:
            return _too_many(HttpResponse, "sign-in attempts", wait)
    return admin.site.login(request, extra_context)


def _too_many(kind: type[HttpResponse], what: str, wait: int) -> HttpResponse:
    """Return the 429 of a door whose per-address budget is spent: JSON for registration, text for sign-in."""
    text = f"Too many {what} from your address; retry in {wait} s"
    if kind is JsonResponse:
        response: HttpResponse = JsonResponse({"error": "invalid_request", "error_description": text}, status=429)
    else:
        response = HttpResponse(text, status=429, content_type="text/plain")
    response["Retry-After"] = str(wait)
    return response
