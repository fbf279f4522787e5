"""API keys and their access profiles.

JobNimbus ties each key to an access profile, so two keys of one account may see different records. The sandbox
has two profiles:
- `all`: every record.
- `sales_rep:<user id>`: the contacts and jobs whose `sales_rep` is that user, and the records linked to one of them
  through `primary` or `related` (their notes, tasks, files, estimates, invoices, orders, payments, budgets).
  Records linked to nothing (the product catalog) are account-wide and visible; users and settings are too.
  A record outside the profile answers 404 on GET/PUT, as if it did not exist. A contact or job such a key creates
  without a `sales_rep` gets the key's user as its rep.
Built-in keys: `sandboxadminkey0001` (all) and `sandboxsaleskey0001` (sales_rep: Dana Reyes, the first user).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sandbox.query import Record
from sandbox.store import Store

ADMIN_KEY = "sandboxadminkey0001"
SALES_KEY = "sandboxsaleskey0001"
KEY_SHAPE = re.compile(r"^[A-Za-z0-9_-]{16,256}$")
PARENT_TYPES = ("contact", "job")


def bearer_key(authorization: str | None) -> str | None:
    """Return the key of an `Authorization: Bearer <key>` header, or None when the header is not one."""
    scheme, _, key = (authorization or "").partition(" ")
    return key.strip() if scheme.lower() == "bearer" else None


class InvalidKey(ValueError):
    """A key or profile the control API cannot add."""


@dataclass(frozen=True)
class Profile:
    """What one key may see: everything, or one sales rep's book."""

    sales_rep: str | None = None

    def visibility(self, store: Store) -> Callable[[Record], bool]:
        """Return a predicate telling whether this profile sees a record."""
        if self.sales_rep is None:
            return lambda _record: True
        owned = store.sales_rep_ids(self.sales_rep)

        def visible(record: Record) -> bool:
            if record.get("type") in PARENT_TYPES:
                return record["jnid"] in owned
            links = [record.get("primary") or {}, *record.get("related", [])]
            ids = [link.get("id") for link in links if link.get("id")]
            return not ids or any(i in owned for i in ids)

        return visible

    def describe(self) -> str:
        """Return the profile as written in the control API."""
        return "all" if self.sales_rep is None else f"sales_rep:{self.sales_rep}"


class Keys:
    """The keys the sandbox accepts, built-in ones plus those added at run time."""

    def __init__(self, sales_rep: str) -> None:
        self.lock = threading.Lock()
        self.keys = {ADMIN_KEY: Profile(), SALES_KEY: Profile(sales_rep)}

    def profile(self, authorization: str | None) -> Profile | None:
        """Return the profile of an `Authorization: Bearer <key>` header, or None when it is not accepted."""
        key = bearer_key(authorization)
        if key is None:
            return None
        with self.lock:
            return self.keys.get(key)

    def add(self, key: object, profile: object, user_ids: set[str]) -> Profile:
        """Add a key with a profile written as `all` or `sales_rep:<user id>`."""
        if not isinstance(key, str) or not KEY_SHAPE.match(key):
            raise InvalidKey("'key' must be 16-256 characters of A-Z, a-z, 0-9, '_' or '-'")
        parsed = parse_profile(profile, user_ids)
        with self.lock:
            self.keys[key] = parsed
        return parsed

    def listing(self) -> list[dict[str, str]]:
        """Return every key with its profile."""
        with self.lock:
            return [{"key": k, "profile": p.describe()} for k, p in self.keys.items()]


def parse_profile(profile: object, user_ids: set[str]) -> Profile:
    """Return the Profile written as `all` or `sales_rep:<user id>`."""
    if profile in (None, "all"):
        return Profile()
    if isinstance(profile, str) and profile.startswith("sales_rep:"):
        user = profile.removeprefix("sales_rep:")
        if user not in user_ids:
            raise InvalidKey(f"profile {profile!r} names no user of this account (see GET /api1/account/users)")
        return Profile(user)
    raise InvalidKey(f"'profile' must be 'all' or 'sales_rep:<user id>', got {profile!r}")
