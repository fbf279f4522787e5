"""Routes of managed mode: discovery documents at the root, the OAuth endpoints under /oauth/, sign-in pages."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import include, path
from oauth2_provider import views as oauth_views

from managed import views
from managed.views import managed_only

_oauth = (
    [
        path("authorize/", managed_only(views.Authorize.as_view()), name="authorize"),
        path("token/", managed_only(oauth_views.TokenView.as_view()), name="token"),
        path("revoke/", managed_only(oauth_views.RevokeTokenView.as_view()), name="revoke-token"),
        path("register/", managed_only(views.Register.as_view()), name="dcr-register"),
        path(
            "register/<str:client_id>/",
            managed_only(oauth_views.DynamicClientRegistrationManagementView.as_view()),
            name="dcr-register-management",
        ),
    ],
    "oauth2_provider",
)

_prm = managed_only(views.ProtectedResourceMetadata.as_view())
_asm = managed_only(oauth_views.OAuthServerMetadataView.as_view())

urlpatterns = [
    path("oauth/", include(_oauth)),
    path(".well-known/oauth-protected-resource", _prm, name="oauth-resource-metadata"),
    path(".well-known/oauth-protected-resource/<path:resource_path>", _prm),
    path(".well-known/oauth-authorization-server", _asm, name="oauth-server-metadata"),
    path(".well-known/oauth-authorization-server/<path:issuer_path>", _asm),
    path("accounts/login/", managed_only(views.SignIn.as_view()), name="login"),
    # Before the admin's own routes (jobnimbus_site.urls includes these first), in either mode.
    path("admin/login/", views.admin_sign_in),
    path("accounts/logout/", managed_only(auth_views.LogoutView.as_view()), name="logout"),
]
