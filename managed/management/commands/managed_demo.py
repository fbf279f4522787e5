"""Set up managed mode's demo (what `make run-managed` signs in with): two keys of the sandbox and two people.

- "Office (full access)": the sandbox's admin key, mapped to the user `demo`;
- "Sales rep (Dana Reyes)": the sandbox's sales key (it sees only Dana Reyes's contacts and jobs), mapped to `rep`.

Idempotent: a run creates what is missing, sets the two passwords to the ones given (when they differ), re-maps
the two users, and re-encrypts a key only when its stored secret is not the one given (or no longer decrypts under
the configured MANAGED_KEY_ENCRYPTION_KEYS); anything else staff set up is left alone. The users are ordinary
accounts (no staff rights): they can sign in to the consent page, not to the admin.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from managed import vault
from managed.models import JobNimbusKey, KeyAssignment

FULL_LABEL = "Office (full access)"
SALES_LABEL = "Sales rep (Dana Reyes)"
# The sandbox's built-in keys (sandbox/access.py: ADMIN_KEY, SALES_KEY), written out because managed may not
# import sandbox (the import layers in pyproject.toml).
SANDBOX_FULL_KEY = "sandboxadminkey0001"
SANDBOX_SALES_KEY = "sandboxsaleskey0001"


class Command(BaseCommand):
    help = (
        "Create or refresh managed mode's demo: keys 'Office (full access)' and 'Sales rep (Dana Reyes)' of one "
        "instance, and the users demo and rep mapped to them. Run again at will."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--instance", required=True, help="the JobNimbus instance the two keys belong to")
        parser.add_argument("--demo-password", required=True, help="the password of `demo` (full access)")
        parser.add_argument("--rep-password", required=True, help="the password of `rep` (the sales rep's key)")
        parser.add_argument("--full-key", default=SANDBOX_FULL_KEY, help="the full-access key (default: sandbox's)")
        parser.add_argument("--sales-key", default=SANDBOX_SALES_KEY, help="the sales rep's key (default: sandbox's)")

    def handle(self, *args: Any, **options: Any) -> None:
        instance = options["instance"]
        with transaction.atomic():
            full = _key(instance, FULL_LABEL, options["full_key"])
            sales = _key(instance, SALES_LABEL, options["sales_key"])
            _user("demo", options["demo_password"], full)
            _user("rep", options["rep_password"], sales)
        self.stdout.write(f"Managed demo ready on instance {instance!r}: demo -> {FULL_LABEL}; rep -> {SALES_LABEL}.")


def _key(instance: str, label: str, secret: str) -> JobNimbusKey:
    """Return the key `label` of `instance` holding `secret`, enabled; create or re-encrypt it only when needed."""
    key = JobNimbusKey.objects.filter(instance=instance, label=label).first() or JobNimbusKey(
        instance=instance, label=label
    )
    if key.pk is None or not _holds(key, secret):
        vault.store(key, secret)
        key.enabled = True
        key.save()
    elif not key.enabled:
        key.enabled = True
        key.save(update_fields=["enabled"])
    return key


def _holds(key: JobNimbusKey, secret: str) -> bool:
    try:
        return vault.decrypt(key.ciphertext) == secret
    except ImproperlyConfigured:  # encrypted under a key no longer configured: the demo's own rows are rewritten
        return False


def _user(username: str, password: str, key: JobNimbusKey) -> None:
    """Create `username` (or take the existing one), set its password, activate it, and map it to `key`."""
    user, created = get_user_model().objects.get_or_create(username=username)
    if created or not user.is_active or not user.check_password(password):
        user.set_password(password)
        user.is_active = True
        user.save()
    KeyAssignment.objects.update_or_create(user=user, defaults={"key": key, "group": None})
