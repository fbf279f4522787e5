"""django-oauth-toolkit's request validator, narrowed to what this server issues tokens for.

The authorization server serves one protected resource: this server's `/mcp`. A token request that names another
resource is refused (`invalid_target`), and one that names none is bound to `/mcp` anyway, so every token this
server issues carries its audience and the resource server can insist on it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.http import HttpRequest
from oauth2_provider.oauth2_backends import OAuthLibCore
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauth2_provider.settings import oauth2_settings
from oauthlib.oauth2.rfc6749 import errors

from managed import resource_id

_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class ManagedValidator(OAuth2Validator):
    def validate_redirect_uri(self, client_id: str, redirect_uri: str, request: Any, *args: Any, **kwargs: Any) -> bool:
        # Plain http only for a loopback callback (RFC 8252: a native client such as Claude Code listens on
        # localhost); anywhere else the code would cross the network in the clear.
        parts = urlsplit(redirect_uri)
        if parts.scheme == "http" and parts.hostname not in _LOOPBACK_HOSTS:
            return False
        return bool(super().validate_redirect_uri(client_id, redirect_uri, request, *args, **kwargs))

    def _validate_resource_uris(self, request: Any, resources: list[str]) -> None:
        super()._validate_resource_uris(request, resources)
        ours = resource_id.for_uri(request.uri)
        for resource in resources:
            if resource.rstrip("/") != ours:
                raise errors.CustomOAuth2Error(
                    error="invalid_target",
                    description=f"This authorization server issues tokens for {ours} only, not {resource!r}",
                    request=request,
                )

    def validate_grant_type(
        self, client_id: str, grant_type: str, client: Any, request: Any, *args: Any, **kwargs: Any
    ) -> bool:
        # Only the grants this server serves, whatever a client was registered for: a client_credentials token
        # would act for no user.
        if grant_type not in oauth2_settings.OAUTH2_GRANT_TYPES_SUPPORTED:
            return False
        return bool(super().validate_grant_type(client_id, grant_type, client, request, *args, **kwargs))

    def _check_and_set_request_resource(self, request: Any) -> None:
        super()._check_and_set_request_resource(request)
        request.resource = [resource_id.for_uri(request.uri)]


class OAuthBackend(OAuthLibCore):
    """Hands oauthlib the request's absolute URL (the toolkit passes the path only), so the validator can tell which
    host the client reached, as `build_absolute_uri` sees it behind a TLS-terminating proxy."""

    def _get_escaped_full_path(self, request: HttpRequest) -> str:
        return request.build_absolute_uri(super()._get_escaped_full_path(request))

    def create_token_response(self, request: HttpRequest) -> Any:
        # An error raised while the token is saved (invalid_target from the resource check above) comes back with
        # the error's own headers only: without these the JSON error went out as text/html (RFC 6749 5.1, 5.2).
        uri, headers, body, status = super().create_token_response(request)
        headers = {"Content-Type": "application/json", "Cache-Control": "no-store", "Pragma": "no-cache", **headers}
        return uri, headers, body, status
