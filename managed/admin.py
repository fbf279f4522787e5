"""Staff control of managed mode: JobNimbus keys (written, never read back), who runs with which key, connected
clients and revoking them, rate limits, and the write audit trail (read-only).

The token tables are django-oauth-toolkit's own admin; its access and refresh token lists are re-registered here
because their token column is blank under hashed token storage (COMPLIANT_BCP_RFC9700_TOKEN_STORAGE).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Count, IntegerField, Model, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters
from oauth2_provider.admin import AccessTokenAdmin, RefreshTokenAdmin
from oauth2_provider.models import get_access_token_model, get_grant_model, get_refresh_token_model
from oauth2_provider.settings import oauth2_settings

from managed.forms import JobNimbusKeyForm, KeyAssignmentForm, RateLimitForm
from managed.models import Connection, JobNimbusKey, KeyAssignment, RateLimit, WriteAudit


@admin.register(JobNimbusKey)
class JobNimbusKeyAdmin(admin.ModelAdmin[JobNimbusKey]):
    form = JobNimbusKeyForm
    list_display = ("instance", "label", "hint_shown", "enabled", "users", "groups", "created_at")
    list_display_links = ("label",)
    list_filter = ("instance", "enabled")
    search_fields = ("label", "instance")
    readonly_fields = ("hint_shown", "created_at", "replaced_at")

    def get_fields(self, request: HttpRequest, obj: JobNimbusKey | None = None) -> tuple[str, ...]:
        editable = ("instance", "label", "secret", "enabled")
        return editable if obj is None else (*editable, "hint_shown", "created_at", "replaced_at")

    # The POST carries the secret: keep it out of Django's error reports should saving fail.
    @method_decorator(sensitive_post_parameters("secret"))
    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        return super().changeform_view(request, object_id, form_url, extra_context)

    def get_queryset(self, request: HttpRequest) -> QuerySet[JobNimbusKey]:
        return (
            super()
            .get_queryset(request)
            .annotate(user_count=Count("assignments__user"), group_count=Count("assignments__group"))
        )

    @admin.display(description="key ends with")
    def hint_shown(self, obj: JobNimbusKey) -> str:
        return f"…{obj.hint}" if obj.hint else "—"

    @admin.display(description="users", ordering="user_count")
    def users(self, obj: Any) -> int:
        return int(obj.user_count)

    @admin.display(description="groups", ordering="group_count")
    def groups(self, obj: Any) -> int:
        return int(obj.group_count)


@admin.register(KeyAssignment)
class KeyAssignmentAdmin(admin.ModelAdmin[KeyAssignment]):
    form = KeyAssignmentForm
    list_display = ("who", "key")
    list_filter = ("key", "key__instance")
    list_select_related = ("key", "user", "group")
    search_fields = ("user__username", "group__name", "key__label")
    autocomplete_fields = ("user", "group")  # a user list can be long; keys are few, so `key` stays a plain select

    @admin.display(description="user or group")
    def who(self, obj: KeyAssignment) -> str:
        return f"user {obj.user}" if obj.user else f"group {obj.group}"


def _count(model: type[Model], *conditions: Q, **filters: Any) -> Coalesce:
    """Count `model` rows of the outer connection's user and client (one subquery, not a query per row)."""
    rows = model._default_manager.filter(
        *conditions, user=OuterRef("user"), application=OuterRef("application"), **filters
    )
    return Coalesce(
        Subquery(rows.values("user").annotate(n=Count("pk")).values("n")[:1]), 0, output_field=IntegerField()
    )


def revoke_connection(user_id: int, application_id: int) -> dict[str, int]:
    """Delete every token and pending authorization code of one user for one client; return how many of each.

    Deleted rather than marked revoked: nothing of the pair is left for refresh-token reuse detection to guard, and
    /mcp looks the token up on each call (managed.resource), so the next call is refused. The codes go too, or one
    issued a minute ago could still be exchanged for a fresh token.
    """
    pair = {"user_id": user_id, "application_id": application_id}
    with transaction.atomic():
        grants, _ = get_grant_model().objects.filter(**pair).delete()
        refresh, _ = get_refresh_token_model().objects.filter(**pair).delete()
        access, _ = get_access_token_model().objects.filter(**pair).delete()
    return {"access": access, "refresh": refresh, "grants": grants}


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin[Connection]):
    list_display = ("user", "application", "first_used", "last_used", "calls", "live_tokens")
    list_filter = ("application",)
    list_select_related = ("user", "application")
    search_fields = ("user__username", "application__name", "application__client_id")
    date_hierarchy = "last_used"
    readonly_fields = ("user", "application", "first_used", "last_used", "calls", "live_tokens")
    actions = ("revoke_tokens",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Connection]:
        now = timezone.now()
        live_refresh = Q(revoked__isnull=True, access_token__isnull=False)
        refresh_ttl = oauth2_settings.REFRESH_TOKEN_EXPIRE_SECONDS
        if refresh_ttl:  # a refresh token dies that long after its access token expires (the toolkit's rule)
            live_refresh &= Q(access_token__expires__gt=now - timedelta(seconds=refresh_ttl))
        return (
            super()
            .get_queryset(request)
            .annotate(
                live_access=_count(get_access_token_model(), expires__gt=now),
                live_refresh=_count(get_refresh_token_model(), live_refresh),
            )
        )

    @admin.display(description="live tokens")
    def live_tokens(self, obj: Any) -> str:
        return f"{obj.live_access} access, {obj.live_refresh} refresh"

    @admin.action(description="Revoke this user's tokens for this client", permissions=("revoke",))
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[Connection]) -> None:
        for connection in queryset.select_related("user", "application"):
            gone = revoke_connection(connection.user_id, connection.application_id)
            self.message_user(
                request,
                f"Revoked {connection}: {gone['access']} access and {gone['refresh']} refresh token(s) deleted; "
                "the client's next call is refused and it must ask the user to sign in again.",
                messages.SUCCESS,
            )

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        user: Any = request.user
        return bool(
            user.has_perm("oauth2_provider.delete_accesstoken") and user.has_perm("oauth2_provider.delete_refreshtoken")
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # connections are recorded by /mcp as clients call it

    def has_change_permission(self, request: HttpRequest, obj: Connection | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Connection | None = None) -> bool:
        return False  # deleting the record would look like disconnecting while the tokens still work: revoke instead


@admin.register(RateLimit)
class RateLimitAdmin(admin.ModelAdmin[RateLimit]):
    form = RateLimitForm
    list_display = ("__str__", "user", "application", "rate")
    list_select_related = ("user", "application")
    search_fields = ("user__username", "application__name", "application__client_id")
    autocomplete_fields = ("user", "application")


@admin.register(WriteAudit)
class WriteAuditAdmin(admin.ModelAdmin[WriteAudit]):
    """Read-only for everyone, superusers included: a trail its readers can edit or prune is no evidence. Old rows
    are removed by the database's owner (or a retention job), never from this page."""

    list_display = ("at", "username", "client_name", "instance", "key_label", "tool", "record", "succeeded")
    list_filter = ("succeeded", "instance", "tool", "client_name")
    search_fields = ("username", "client_name", "key_label", "tool", "record")
    date_hierarchy = "at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: WriteAudit | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: WriteAudit | None = None) -> bool:
        return False


# The toolkit's lists show a masked token column, blank when tokens are stored as digests; show what tells tokens
# apart instead. Its revoke actions, its hidden token fields and its refusal to add or raw-delete are kept.
class ManagedAccessTokenAdmin(AccessTokenAdmin):
    list_display = ("pk", "user", "application", "scope", "expires", "resource", "created")
    list_filter = ("application", "expires")
    date_hierarchy = "created"


class ManagedRefreshTokenAdmin(RefreshTokenAdmin):
    list_display = ("pk", "user", "application", "created", "revoked")
    list_filter = ("application", "revoked")


for _model, _admin in (
    (get_access_token_model(), ManagedAccessTokenAdmin),
    (get_refresh_token_model(), ManagedRefreshTokenAdmin),
):
    admin.site.unregister(_model)
    admin.site.register(_model, _admin)
