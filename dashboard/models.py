"""What the dashboard remembers: metric history, alerts, and the TTL tuner's policies and changes."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Dimension(models.TextChoices):
    TOOL = "tool", "tool"
    POLICY = "policy", "cache policy"


class StatFields(models.Model):
    """Counters of one tool (or cache policy) over one period; latency as histograms {bucket_ms: count}."""

    dimension = models.CharField(max_length=8, choices=Dimension.choices, default=Dimension.TOOL)
    name = models.CharField(max_length=64)
    requests = models.PositiveIntegerField(default=0)
    hit_l1 = models.PositiveIntegerField(default=0)
    hit_l2 = models.PositiveIntegerField(default=0)
    miss = models.PositiveIntegerField(default=0)
    stale = models.PositiveIntegerField(default=0)
    coalesced = models.PositiveIntegerField(default=0)
    bypass = models.PositiveIntegerField(default=0)
    upstream_ok = models.PositiveIntegerField(default=0)
    upstream_error = models.PositiveIntegerField(default=0)
    upstream_unavailable = models.PositiveIntegerField(default=0)
    upstream_breaker_open = models.PositiveIntegerField(default=0)
    cached_us = models.PositiveBigIntegerField(default=0)
    uncached_us = models.PositiveBigIntegerField(default=0)
    cached_hist = models.JSONField(default=dict, blank=True)
    uncached_hist = models.JSONField(default=dict, blank=True)

    class Meta:
        abstract = True


class MinuteStat(StatFields):
    minute = models.DateTimeField()

    class Meta:
        constraints = (models.UniqueConstraint(fields=("minute", "dimension", "name"), name="dashboard_minute_uniq"),)
        indexes = (models.Index(fields=("minute",), name="dashboard_minute_at"),)

    def __str__(self) -> str:
        return f"{self.minute:%Y-%m-%d %H:%M} {self.dimension} {self.name}"


class HourStat(StatFields):
    hour = models.DateTimeField()

    class Meta:
        constraints = (models.UniqueConstraint(fields=("hour", "dimension", "name"), name="dashboard_hour_uniq"),)
        indexes = (models.Index(fields=("hour",), name="dashboard_hour_at"),)

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} {self.dimension} {self.name}"


class AlertLevel(models.TextChoices):
    INFO = "info", "info"
    WARNING = "warning", "warning"
    CRITICAL = "critical", "critical"


class AlertState(models.TextChoices):
    OPEN = "open", "open"
    ACKNOWLEDGED = "acknowledged", "acknowledged"
    RESOLVED = "resolved", "resolved"


class Alert(models.Model):
    """One occurrence of a rule's condition for a scope; at most one unresolved row per rule and scope."""

    rule = models.CharField(max_length=32)
    scope = models.CharField(max_length=128, default="global")
    level = models.CharField(max_length=16, choices=AlertLevel.choices)
    message = models.TextField()
    actions = models.JSONField(default=list, blank=True)
    figures = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=16, choices=AlertState.choices, default=AlertState.OPEN)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-last_seen", "-id")
        constraints = (
            models.UniqueConstraint(
                fields=("rule", "scope"),
                condition=~models.Q(state="resolved"),
                name="dashboard_alert_one_unresolved",
            ),
        )

    def __str__(self) -> str:
        return f"[{self.level}] {self.rule} {self.scope}: {self.state}"


class TtlPolicy(models.Model):
    """The fresh TTL in force for one cache policy, its bounds, and whether staff pinned it."""

    policy = models.CharField(max_length=32, unique=True)
    default_ttl_s = models.PositiveIntegerField()
    ttl_s = models.PositiveIntegerField()
    min_ttl_s = models.PositiveIntegerField()
    max_ttl_s = models.PositiveIntegerField()
    pinned = models.BooleanField(default=False, help_text="A pinned TTL is never changed by the tuner.")
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("policy",)
        verbose_name = "TTL policy"
        verbose_name_plural = "TTL policies"

    def __str__(self) -> str:
        return f"{self.policy}: {self.ttl_s}s"


class TtlChange(models.Model):
    """One decision of the tuner (or of staff) with the evidence it was taken on."""

    policy = models.ForeignKey(TtlPolicy, on_delete=models.CASCADE, related_name="changes")
    old_ttl_s = models.PositiveIntegerField()
    new_ttl_s = models.PositiveIntegerField()
    reason = models.TextField()
    evidence = models.JSONField(default=dict)
    at = models.DateTimeField()

    class Meta:
        ordering = ("-at", "-id")

    def __str__(self) -> str:
        return f"{self.policy.policy}: {self.old_ttl_s}s -> {self.new_ttl_s}s"
