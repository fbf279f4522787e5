"""Re-encrypt every stored JobNimbus key under the first MANAGED_KEY_ENCRYPTION_KEYS key (after adding a new one)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from managed import vault


class Command(BaseCommand):
    help = (
        "Re-encrypt the stored JobNimbus keys with the first key of MANAGED_KEY_ENCRYPTION_KEYS. Put the new key "
        "first (keep the old one after it), run this, then remove the old key."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        rotated = vault.reencrypt_all()
        self.stdout.write(f"Re-encrypted {rotated} JobNimbus key(s) under the first MANAGED_KEY_ENCRYPTION_KEYS key.")
