"""What managed mode stores: JobNimbus keys (encrypted), who runs with which key, who connected with what, and the
audit trail of writes.

Decisions:
- A key's secret is stored only as Fernet ciphertext (`managed.vault`); the row also keeps a hint (its last four
  characters) so staff can tell keys apart, and never the key itself.
- A user runs with the key mapped to them, else with the key mapped to their groups, and only when that is one key:
  a user in two groups mapped to different keys gets an error naming the fix, never a guess at which access profile
  fits them (`managed.vault.key_for_user`).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q


class JobNimbusKey(models.Model):
    """One JobNimbus API key of one instance, encrypted at rest."""

    instance = models.CharField(max_length=64, help_text="The JobNimbus instance (account) this key belongs to.")
    label = models.CharField(max_length=120, help_text="What this key's access profile is, e.g. 'Sales reps'.")
    ciphertext = models.TextField(editable=False)
    hint = models.CharField(max_length=8, editable=False, help_text="The key's last four characters.")
    enabled = models.BooleanField(default=True, help_text="Disabled: every call mapped to this key is refused.")
    created_at = models.DateTimeField(auto_now_add=True)
    replaced_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "JobNimbus key"
        constraints = [models.UniqueConstraint(fields=["instance", "label"], name="managed_key_label_per_instance")]

    def __str__(self) -> str:
        return f"{self.instance}: {self.label} (…{self.hint})"


class KeyAssignment(models.Model):
    """Maps one user, or one group, to the key their calls run with."""

    key = models.ForeignKey(JobNimbusKey, on_delete=models.CASCADE, related_name="assignments")
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="jobnimbus_key"
    )
    group = models.OneToOneField(Group, null=True, blank=True, on_delete=models.CASCADE, related_name="jobnimbus_key")

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, group__isnull=True) | Q(user__isnull=True, group__isnull=False),
                name="managed_assignment_user_xor_group",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user or self.group} → {self.key}"


class Connection(models.Model):
    """A user's use of one OAuth client: when it first and last called the server, and how often."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="mcp_connections")
    application = models.ForeignKey(
        settings.OAUTH2_PROVIDER_APPLICATION_MODEL, on_delete=models.CASCADE, related_name="mcp_connections"
    )
    first_used = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField()
    calls = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "application"], name="managed_connection_once")]

    def __str__(self) -> str:
        return f"{self.user} with {self.application}"


class RateLimit(models.Model):
    """A budget of tool calls for one user or one client, instead of the default (MCP_THROTTLE_USER_RATE /
    MCP_THROTTLE_CLIENT_RATE)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="mcp_rate_limit"
    )
    application = models.OneToOneField(
        settings.OAUTH2_PROVIDER_APPLICATION_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="mcp_rate_limit",
    )
    rate = models.CharField(
        max_length=32,
        help_text="Requests per period, e.g. 120/min or 5000/day.",
        validators=[
            RegexValidator(
                r"^[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)$",
                "Write the rate as a count per period: 120/min, 10/s, 5000/day.",
            )
        ],
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, application__isnull=True)
                | Q(user__isnull=True, application__isnull=False),
                name="managed_rate_user_xor_client",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user or self.application}: {self.rate}"


class WriteAudit(models.Model):
    """One write tool call made with a managed token: who, through which client, what, on which record, when.

    The arguments are not kept: they may hold personal data and free text; the record id says what was touched.
    """

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    username = models.CharField(max_length=150)
    application = models.ForeignKey(
        settings.OAUTH2_PROVIDER_APPLICATION_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    client_name = models.CharField(max_length=255)
    instance = models.CharField(max_length=64)
    key_label = models.CharField(max_length=120)
    tool = models.CharField(max_length=64)
    record = models.CharField(max_length=64, blank=True)
    succeeded = models.BooleanField()

    class Meta:
        ordering = ["-at"]
        verbose_name = "write audit entry"
        verbose_name_plural = "write audit trail"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.username} {self.tool} {self.record}"
