"""Admin pages: alerts (filter, acknowledge), TTL policies (pin, changes with evidence), and the cache dashboard."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from dashboard import alerts, ttl
from dashboard.models import Alert, TtlChange, TtlPolicy

# The admin's front page links the staff cache dashboard (it is a page of its own, not a model).
admin.site.index_template = "dashboard/admin_index.html"


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ("level", "rule", "scope", "message", "suggested_actions", "first_seen", "last_seen", "state")
    list_filter = ("state", "level", "rule")
    search_fields = ("message", "scope")
    readonly_fields = [f.name for f in Alert._meta.fields]
    actions = ("acknowledge",)

    @admin.display(description="suggested actions")
    def suggested_actions(self, obj: Alert) -> str:
        return "; ".join(obj.actions)

    @admin.action(description="Acknowledge selected alerts")
    def acknowledge(self, request: HttpRequest, queryset: QuerySet[Alert]) -> None:
        done = sum(alerts.acknowledge(alert, request.user) for alert in queryset)
        self.message_user(request, f"{done} alert(s) acknowledged.", messages.SUCCESS)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


class TtlChangeInline(admin.TabularInline):
    model = TtlChange
    extra = 0
    can_delete = False
    readonly_fields = ("at", "old_ttl_s", "new_ttl_s", "reason", "evidence")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(TtlPolicy)
class TtlPolicyAdmin(admin.ModelAdmin):
    list_display = ("policy", "ttl_s", "default_ttl_s", "min_ttl_s", "max_ttl_s", "pinned", "last_change", "updated")
    list_editable = ("pinned",)
    list_filter = ("pinned",)
    readonly_fields = ("policy", "default_ttl_s", "updated")
    inlines = (TtlChangeInline,)

    def save_model(self, request: HttpRequest, obj: TtlPolicy, form: Any, change: bool) -> None:
        """Save, record a staff TTL edit with who made it, and publish the TTLs to every process."""
        previous = TtlPolicy.objects.filter(pk=obj.pk).values_list("ttl_s", flat=True).first()
        super().save_model(request, obj, form, change)
        if previous is not None and previous != obj.ttl_s:
            TtlChange.objects.create(
                policy=obj,
                old_ttl_s=previous,
                new_ttl_s=obj.ttl_s,
                reason=f"set by staff ({request.user})",
                evidence={},
                at=timezone.now(),
            )
        ttl.publish_all()

    @admin.display(description="last change and why")
    def last_change(self, obj: TtlPolicy) -> str:
        change = obj.changes.first()
        return f"{change.old_ttl_s}s → {change.new_ttl_s}s: {change.reason}" if change else "—"
