"""The JobNimbus keys staff register: encrypted at rest, decrypted only to make a call, chosen per user.

Encryption is Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`) under MANAGED_KEY_ENCRYPTION_KEYS, which
lives in the environment, never in the database: a database dump alone reveals no key. MultiFernet encrypts with
the first key and decrypts with any, which is what rotation needs (`manage.py rotate_key_encryption`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured

from managed.models import JobNimbusKey, KeyAssignment

_KEY_FORMAT_HINT = "16 to 256 letters, digits, '_' or '-'"


class NoKeyMapped(LookupError):
    """The user has no usable JobNimbus key: none mapped, the key disabled, or two groups mapped to two keys."""


@dataclass(frozen=True)
class HeldKey:
    """A decrypted key with what it belongs to; the secret stays out of repr."""

    key_id: int
    instance: str
    label: str
    secret: str = field(repr=False)


@lru_cache(maxsize=4)
def _cipher(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("MANAGED_KEY_ENCRYPTION_KEYS is not set: stored JobNimbus keys cannot be used")
    return MultiFernet([Fernet(key.encode("ascii")) for key in keys])


def cipher() -> MultiFernet:
    """Return the cipher of the configured keys (the first encrypts)."""
    return _cipher(tuple(settings.MANAGED_KEY_ENCRYPTION_KEYS))


def encrypt(secret: str) -> str:
    return cipher().encrypt(secret.encode()).decode("ascii")


def decrypt(ciphertext: str) -> str:
    try:
        return cipher().decrypt(ciphertext.encode("ascii")).decode()
    except InvalidToken:
        raise ImproperlyConfigured(
            "A stored JobNimbus key cannot be decrypted with MANAGED_KEY_ENCRYPTION_KEYS: was the key that "
            "encrypted it dropped before `manage.py rotate_key_encryption` ran?"
        ) from None


def store(key: JobNimbusKey, secret: str) -> None:
    """Set `key`'s secret (encrypted, with its hint); the caller saves the row."""
    key.ciphertext = encrypt(secret)
    key.hint = secret[-4:]


def reencrypt_all() -> int:
    """Re-encrypt every stored key under the first encryption key; return how many rows were rewritten."""
    rotated = 0
    for key in JobNimbusKey.objects.all().only("pk", "ciphertext"):
        key.ciphertext = cipher().rotate(key.ciphertext.encode("ascii")).decode("ascii")
        key.save(update_fields=["ciphertext"])
        rotated += 1
    return rotated


def key_for_user(user: User | int) -> HeldKey:
    """Return the key `user`'s calls run with; raise NoKeyMapped saying why there is none."""
    assignment = KeyAssignment.objects.select_related("key").filter(user=user).first()
    if assignment is not None:
        return held(assignment.key.pk, assignment.key.instance, assignment.key.label, assignment.key.ciphertext,
                    enabled=assignment.key.enabled)  # fmt: skip
    keys = {a.key_id: a.key for a in KeyAssignment.objects.select_related("key").filter(group__user=user)}
    if len(keys) > 1:
        raise NoKeyMapped(
            "your groups are mapped to different JobNimbus keys; ask the server's staff to map your user to one"
        )
    if not keys:
        raise NoKeyMapped("no JobNimbus key is mapped to your user or groups; ask the server's staff to map one")
    key = next(iter(keys.values()))
    return held(key.pk, key.instance, key.label, key.ciphertext, enabled=key.enabled)


def held(key_id: int, instance: str, label: str, ciphertext: str, *, enabled: bool) -> HeldKey:
    """Return a stored key decrypted, or raise NoKeyMapped when staff disabled it."""
    if not enabled:
        raise NoKeyMapped("the JobNimbus key mapped to you is disabled; ask the server's staff")
    return HeldKey(key_id=key_id, instance=instance, label=label, secret=decrypt(ciphertext))
