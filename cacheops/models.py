"""What freshness remembers: every change event it heard of, and how far polling has read each entity."""

from __future__ import annotations

from django.db import models


class EventSource(models.TextChoices):
    WEBHOOK = "webhook", "webhook"
    POLL = "poll", "poll"
    WRITE = "write", "write"
    MANUAL = "manual", "manual"


class ChangeKind(models.TextChoices):
    CREATED = "created", "created"
    UPDATED = "updated", "updated"
    DELETED = "deleted", "deleted"


class InvalidationEvent(models.Model):
    """One reported change, stored before it is applied so that nothing a source reports is ever lost.

    `applied` stays null until the rules table's tags were dropped; `claimed_at` marks a worker applying it (a
    conditional UPDATE sets it, so two workers never both apply one event). A duplicate is stored with
    `duplicate_of` set and `applied` filled at once: recorded, not re-applied.
    """

    instance = models.CharField(max_length=64)
    entity = models.CharField(max_length=32)
    jnid = models.CharField(max_length=128, blank=True)
    event = models.CharField(max_length=16, choices=ChangeKind.choices)
    related = models.JSONField(default=list, blank=True)
    source = models.CharField(max_length=16, choices=EventSource.choices)
    payload_digest = models.CharField(max_length=64)
    received = models.DateTimeField()
    claimed_at = models.DateTimeField(null=True, blank=True)
    applied = models.DateTimeField(null=True, blank=True)
    keys_dropped = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    duplicate_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ("-received", "-id")
        indexes = (
            # The sweep: only unapplied rows, oldest first; partial so it stays tiny however long the history.
            models.Index(
                fields=("received",), condition=models.Q(applied__isnull=True), name="cacheops_inval_unapplied"
            ),
            models.Index(fields=("instance", "-received"), name="cacheops_inval_history"),
            models.Index(fields=("instance", "entity", "-received"), name="cacheops_inval_entity"),
            models.Index(fields=("instance", "source", "-received"), name="cacheops_inval_source"),
            models.Index(fields=("instance", "payload_digest", "-received"), name="cacheops_inval_digest"),
        )

    def __str__(self) -> str:
        return f"{self.instance} {self.entity} {self.jnid or '*'} {self.event} ({self.source})"


class PollWatermark(models.Model):
    """The newest `date_updated` polling has processed for one instance and entity."""

    instance = models.CharField(max_length=64)
    entity = models.CharField(max_length=32)
    last_seen = models.DateTimeField()
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = (models.UniqueConstraint(fields=("instance", "entity"), name="cacheops_watermark_unique"),)

    def __str__(self) -> str:
        return f"{self.instance} {self.entity} @ {self.last_seen.isoformat()}"


class SeenSignature(models.Model):
    """A webhook signature already accepted, kept against replays when Redis is unavailable."""

    digest = models.CharField(max_length=64, unique=True)
    expires = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.digest
