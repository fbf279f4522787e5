"""The resource server's side: turn a bearer token into the user, client, scopes and JobNimbus key it acts with.

Every call looks the token up in the database (by its SHA-256 digest: tokens are stored as digests), so a revoked,
expired or deleted token, a disabled user or key, or a changed mapping takes effect on the very next call; nothing
about a token is cached between requests.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db.models import F
from django.utils import timezone
from oauth2_provider.models import get_access_token_model

from managed import vault
from managed.models import Connection

logger = logging.getLogger(__name__)

READ_SCOPE = "jobnimbus:read"
WRITE_SCOPE = "jobnimbus:write"
ALL_SCOPES = (READ_SCOPE, WRITE_SCOPE)
_USAGE_EVERY_S = 60.0  # a connection's last-used time is written at most this often per process


class TokenRefused(Exception):
    """The token cannot be used here; `reason` says why (for the 401's error_description)."""

    def __init__(self, reason: str, *, error: str = "invalid_token") -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error


@dataclass(frozen=True)
class Principal:
    """Who a managed token acts for, and with what."""

    user_id: int
    username: str
    application_id: int
    client_name: str
    scopes: frozenset[str]
    key: vault.HeldKey = field(repr=False)
    user_rate: str | None = None  # staff's budget for this user or client (RateLimit), None: the default
    client_rate: str | None = None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


# One query per call: the token with its user, client, the user's own key mapping and both rate overrides (the
# three separate lookups this replaced cost most of a managed call's overhead in Django's query building).
_ROW = (
    "expires",
    "scope",
    "resource",
    "user_id",
    "user__username",
    "user__is_active",
    "application_id",
    "application__name",
    "application__client_id",
    "user__jobnimbus_key__key_id",
    "user__jobnimbus_key__key__instance",
    "user__jobnimbus_key__key__label",
    "user__jobnimbus_key__key__ciphertext",
    "user__jobnimbus_key__key__enabled",
    "user__mcp_rate_limit__rate",
    "application__mcp_rate_limit__rate",
)


def authenticate(token: str, resource: str) -> Principal:
    """Return the principal of `token` for this server's `resource`; raise TokenRefused saying why not."""
    checksum = hashlib.sha256(token.encode()).hexdigest()
    row = get_access_token_model().objects.filter(token_checksum=checksum).values(*_ROW).first()
    if row is None or row["user_id"] is None or row["application_id"] is None:
        raise TokenRefused("The access token is unknown or was revoked")
    if row["expires"] is None or timezone.now() >= row["expires"]:
        raise TokenRefused("The access token has expired")
    if resource not in (row["resource"] or []):
        raise TokenRefused(f"The access token was not issued for this resource ({resource})")
    if not row["user__is_active"]:
        raise TokenRefused("The user of this access token is disabled")
    principal = Principal(
        user_rate=row["user__mcp_rate_limit__rate"],
        client_rate=row["application__mcp_rate_limit__rate"],
        user_id=row["user_id"],
        username=row["user__username"],
        application_id=row["application_id"],
        client_name=row["application__name"] or row["application__client_id"],
        scopes=frozenset(row["scope"].split()),
        key=_key_of(row),
    )
    _usage.note(principal)
    return principal


def _key_of(row: dict[str, Any]) -> vault.HeldKey:
    """Return the key the row's user runs with: their own mapping (in the row), else their groups' (a query)."""
    username = row["user__username"]
    try:
        if row["user__jobnimbus_key__key_id"] is None:
            return vault.key_for_user(row["user_id"])
        return vault.held(
            row["user__jobnimbus_key__key_id"],
            row["user__jobnimbus_key__key__instance"],
            row["user__jobnimbus_key__key__label"],
            row["user__jobnimbus_key__key__ciphertext"],
            enabled=row["user__jobnimbus_key__key__enabled"],
        )
    except vault.NoKeyMapped as exc:
        raise TokenRefused(f"Signed in as {username}, but {exc}", error="no_key") from None
    except ImproperlyConfigured:
        # The stored key cannot be decrypted (an encryption key dropped too early): staff must act, the person cannot.
        logger.error("The JobNimbus key mapped to %s cannot be decrypted", username, exc_info=True)
        raise TokenRefused(
            f"Signed in as {username}, but the JobNimbus key mapped to you cannot be used on this server right now; "
            "ask the server's staff",
            error="no_key",
        ) from None


class _Usage:
    """Writes each (user, client)'s last use and call count, at most once a minute per process and pair."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[tuple[int, int], tuple[int, float | None]] = {}

    def note(self, principal: Principal) -> None:
        pair = (principal.user_id, principal.application_id)
        now = time.monotonic()
        with self._lock:
            calls, written = self._pending.get(pair, (0, None))
            calls += 1
            due = written is None or now - written >= _USAGE_EVERY_S
            self._pending[pair] = (0, now) if due else (calls, written)
        if due:
            self._write(pair, calls)

    def _write(self, pair: tuple[int, int], calls: int) -> None:
        user_id, application_id = pair
        now = timezone.now()
        try:
            updated = Connection.objects.filter(user_id=user_id, application_id=application_id).update(
                last_used=now, calls=F("calls") + calls
            )
            if not updated:
                Connection.objects.get_or_create(
                    user_id=user_id, application_id=application_id, defaults={"last_used": now, "calls": calls}
                )
        except Exception:  # usage is bookkeeping: a failure to record it must not fail the call
            logger.warning("Could not record the last use of a managed connection", exc_info=True)


_usage = _Usage()
