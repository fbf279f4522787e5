"""Admin pages: alerts (filter, acknowledge), TTL policies (pin, changes with evidence, warm now, tune now), and
the cache dashboard linked from the admin's front page and header."""

from __future__ import annotations

import contextlib
from typing import Any, cast

from django.contrib import admin, messages
from django.contrib.admin.exceptions import NotRegistered
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.urls import URLPattern, path, reverse, reverse_lazy
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST
from kombu.exceptions import OperationalError as BrokerError
from rest_framework.authtoken.models import TokenProxy

from dashboard import alerts, reports, tasks, ttl
from dashboard.models import Alert, TtlChange, TtlPolicy

# The admin's front page links the staff cache dashboard (it is a page of its own, not a model), and the header's
# "View site" leads there too: the server has no public site of its own.
admin.site.index_template = "dashboard/admin_index.html"
admin.site.site_url = cast(str, reverse_lazy("cache-dashboard-page"))

# DRF's tokens authenticate API scripts (TokenAuthentication); they are made with `make manage ARGS="drf_create_token
# <user>"`, so the unrelated "Tokens" app is kept out of the admin.
with contextlib.suppress(NotRegistered):
    admin.site.unregister(TokenProxy)


def figure_text(name: str, value: Any) -> str:
    """Return one alert figure in words with its unit: rates as %, *_ms as ms, memory as MB, counts with commas."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if "rate" in name or "share" in name or "ratio" in name:
        return f"{value * 100:.1f} %"
    if name.endswith("_ms"):
        return f"{value:.3g} ms" if value < 10 else f"{value:,.0f} ms"
    if name.endswith("_per_h"):
        return f"{value:,.4g} per hour"
    if name.endswith("_h"):
        return f"{value:g} h"
    if name.endswith("_min"):
        return f"{value:g} min"
    if name.endswith("_s"):
        return f"{value:g} s"
    if name in ("used", "max", "memory") or "bytes" in name or "memory" in name:
        return "no limit" if value == 0 else str(filesizeformat(value))
    return f"{value:,}" if isinstance(value, int) else f"{value:,.4g}"


FIGURE_NAMES = {"window_min": "window", "ping_ms": "Redis ping", "used": "memory used", "max": "memory limit"}


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ("level", "rule", "scope", "message", "seen", "state")
    list_display_links = ("rule",)
    list_filter = ("state", "level", "rule")
    search_fields = ("message", "scope", "rule")
    date_hierarchy = "last_seen"
    fields = (
        ("level", "rule", "scope", "state"),
        "message",
        "suggested_actions",
        "figures_list",
        ("first_seen", "last_seen", "resolved_at"),
        ("acknowledged_by", "acknowledged_at"),
    )
    readonly_fields = (
        "level",
        "rule",
        "scope",
        "state",
        "message",
        "suggested_actions",
        "figures_list",
        "first_seen",
        "last_seen",
        "resolved_at",
        "acknowledged_by",
        "acknowledged_at",
    )
    actions = ("acknowledge",)

    class Media:
        css = {"all": ("dashboard/admin.css",)}

    @admin.display(description="suggested actions")
    def suggested_actions(self, obj: Alert) -> str:
        if not obj.actions:
            return "—"
        return format_html(
            '<ul class="alert-list">{}</ul>', format_html_join("", "<li>{}</li>", ((a,) for a in obj.actions))
        )

    @admin.display(description="figures when it fired")
    def figures_list(self, obj: Alert) -> str:
        if not obj.figures:
            return "—"
        rows = reports.alert_json(obj).get("figures_list") or [
            {"label": FIGURE_NAMES.get(str(k), str(k).replace("_", " ")), "text": figure_text(str(k), v)}
            for k, v in obj.figures.items()
        ]
        return format_html(
            '<ul class="alert-list">{}</ul>',
            format_html_join("", "<li>{}: {}</li>", ((r["label"], r["text"]) for r in rows)),
        )

    @admin.display(description="seen (first → last)", ordering="last_seen")
    def seen(self, obj: Alert) -> str:
        first, last = timezone.localtime(obj.first_seen), timezone.localtime(obj.last_seen)
        end = f"{last:%H:%M}" if first.date() == last.date() else f"{last:%b %d, %H:%M}"
        return f"{first:%b %d, %H:%M} → {end} {last:%Z}"

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
    fields = ("at", "old_ttl_s", "new_ttl_s", "reason", "evidence_list")
    readonly_fields = fields

    @admin.display(description="evidence")
    def evidence_list(self, obj: TtlChange) -> str:
        if not obj.evidence:
            return "—"
        rows = ((str(k).replace("_", " "), figure_text(str(k), v)) for k, v in obj.evidence.items())
        return format_html('<ul class="alert-list">{}</ul>', format_html_join("", "<li>{}: {}</li>", rows))

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(TtlPolicy)
class TtlPolicyAdmin(admin.ModelAdmin):
    list_display = ("policy", "ttl_s", "default_ttl_s", "min_ttl_s", "max_ttl_s", "pinned", "last_change", "updated")
    list_editable = ("pinned",)
    list_filter = ("pinned",)
    search_fields = ("policy",)
    readonly_fields = ("policy", "default_ttl_s", "updated")
    inlines = (TtlChangeInline,)
    change_list_template = "dashboard/ttlpolicy_change_list.html"

    class Media:
        css = {"all": ("dashboard/admin.css",)}

    def get_urls(self) -> list[URLPattern]:
        own = [
            path("warm-now/", self.admin_site.admin_view(require_POST(self.warm_now)), name="dashboard_warm_now"),
            path("tune-now/", self.admin_site.admin_view(require_POST(self.tune_now)), name="dashboard_tune_now"),
        ]
        return own + super().get_urls()

    def warm_now(self, request: HttpRequest) -> HttpResponse:
        """Queue the warming job (the beat's `dashboard.warm_cache`) and answer at once."""
        self._queue(request, tasks.warm_cache, "Warming", "keys re-read")
        return HttpResponseRedirect(reverse("admin:dashboard_ttlpolicy_changelist"))

    def tune_now(self, request: HttpRequest) -> HttpResponse:
        """Queue the TTL tuner (the beat's `dashboard.tune_ttls`) and answer at once."""
        self._queue(request, tasks.tune_ttls, "TTL tuning", "policies changed")
        return HttpResponseRedirect(reverse("admin:dashboard_ttlpolicy_changelist"))

    def _queue(self, request: HttpRequest, task: Any, what: str, counted: str) -> None:
        if not self.has_change_permission(request):
            self.message_user(request, f"{what} needs the permission to change TTL policies.", messages.ERROR)
            return
        try:
            task.apply_async(retry=False)  # answer at once: no retrying against a broker that is away
        except (BrokerError, OSError) as exc:  # the broker refused: run it here so the button still does its job
            done = task()
            self.message_user(
                request,
                f"{what} could not be queued ({type(exc).__name__}: the Celery broker refused), so it ran here "
                f"instead: {done} {counted}.",
                messages.WARNING,
            )
            return
        self.message_user(
            request,
            f"{what} queued; a Celery worker runs it within moments (see its results here and on the dashboard).",
            messages.SUCCESS,
        )

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
        if not change:
            return "—"
        at = timezone.localtime(change.at).strftime("%b %d, %H:%M %Z")
        return f"{change.old_ttl_s} s → {change.new_ttl_s} s on {at}: {change.reason}"
