"""The account's clock and money: each instance's time zone and currency, and timestamps in and out of it.

JobNimbus sends and takes unix seconds; a model reads and writes wall-clock times. Answers carry ISO 8601 with the
offset in force at that instant in the account's zone (`JOBNIMBUS_TIME_ZONE_<NAME>`, default UTC), and a datetime
argument without an offset is read in that zone, with a note saying so. Amounts of money are in the account's
currency (`JOBNIMBUS_CURRENCY_<NAME>`, ISO 4217, default USD). Both are validated at start-up by
`jobnimbus_site.env.read_instances`; an instance not configured (a test's made-up one) gets the defaults.
"""

from __future__ import annotations

import contextvars
import functools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.signals import setting_changed

DEFAULT_TIME_ZONE = "UTC"
DEFAULT_CURRENCY = "USD"
# Above this a timestamp is taken as milliseconds (1e11 seconds is the year 5138; 1e11 ms is March 1973).
_MILLISECONDS_FROM = 100_000_000_000
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class AccountLocale:
    """An instance's time zone (IANA name) and currency (ISO 4217 code)."""

    time_zone: str = DEFAULT_TIME_ZONE
    currency: str = DEFAULT_CURRENCY

    @property
    def zone(self) -> tzinfo:
        return _zone(self.time_zone)


UTC_LOCALE = AccountLocale()


@functools.lru_cache(maxsize=64)
def _zone(name: str) -> tzinfo:
    return UTC if name == "UTC" else ZoneInfo(name)


_locales: dict[str, AccountLocale] = {}


def instance_locale(instance: str) -> AccountLocale:
    """Return the time zone and currency configured for `instance` (UTC and USD when it names none)."""
    try:
        return _locales[instance]
    except KeyError:
        pass
    config = settings.JOBNIMBUS_INSTANCES.get(instance) or {}
    locale = AccountLocale(
        time_zone=config.get("time_zone") or DEFAULT_TIME_ZONE, currency=config.get("currency") or DEFAULT_CURRENCY
    )
    _locales[instance] = locale
    return locale


def _forget_locales(*, setting: str, **_: Any) -> None:
    if setting == "JOBNIMBUS_INSTANCES":
        _locales.clear()


setting_changed.connect(_forget_locales, dispatch_uid="mcp_tools.timezones.forget_locales")


# The locale of the tool call being answered (the registry sets it per call), read where no caller is at hand:
# shaping a cached value, translating a date argument. Outside a call: UTC and USD.
_current: contextvars.ContextVar[AccountLocale] = contextvars.ContextVar("account_locale", default=UTC_LOCALE)


def current_locale() -> AccountLocale:
    """Return the locale of the instance the current tool call is for (UTC and USD outside a call)."""
    return _current.get()


@contextmanager
def using_locale(locale: AccountLocale) -> Iterator[AccountLocale]:
    """Answer the block in `locale` (the registry wraps each tool call in its instance's)."""
    token = _current.set(locale)
    try:
        yield locale
    finally:
        _current.reset(token)


def from_unix(value: Any, zone: tzinfo) -> datetime | None:
    """Return unix seconds (or milliseconds) `value` as an aware datetime in `zone`; None for unset (0) or absurd."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    seconds = value / 1000 if value >= _MILLISECONDS_FROM else value
    try:
        return datetime.fromtimestamp(seconds, zone)
    except (OverflowError, OSError, ValueError):
        return None


def iso(value: Any, zone: tzinfo) -> str | None:
    """Return unix seconds `value` as ISO 8601 with the offset in force in `zone`, e.g. 2026-12-03T15:00:00-06:00."""
    moment = from_unix(value, zone)
    if moment is None:
        return None
    return moment.isoformat(timespec="seconds" if moment.microsecond == 0 else "milliseconds")


def offset_name(moment: datetime) -> str:
    """Return 'UTC-06:00' for a moment in a zone six hours behind UTC."""
    offset = moment.utcoffset()
    minutes = int(offset.total_seconds()) // 60 if offset is not None else 0
    hours, minutes = divmod(abs(minutes), 60)
    return f"UTC{'-' if offset is not None and offset.total_seconds() < 0 else '+'}{hours:02d}:{minutes:02d}"


@dataclass(frozen=True)
class Moment:
    """An argument read as an instant: its unix seconds, and a note when the account's zone had to be assumed."""

    epoch: int
    note: str | None = None


def read_moment(name: str, value: Any, locale: AccountLocale, *, end_of_day: bool = False) -> Moment:
    """Return argument `name` (unix seconds, ISO date or ISO datetime) as a Moment; raise ValueError if unreadable.

    An offset (or Z) is honoured. Without one the datetime is the account's wall-clock time; a bare date is the
    whole day there (its first second for a lower bound, its last for an upper bound). Either way the note says
    which zone and offset were used. A wall-clock time a DST change skips is moved forward by the gap.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return Moment(value)
    text = str(value).strip()
    if text.isdigit():
        return Moment(int(text))
    zone = locale.zone
    if _ISO_DATE.match(text):
        day = date.fromisoformat(text)
        moment = _settled(datetime.combine(day, time.max if end_of_day else time.min, tzinfo=zone), zone)
        edge = "up to" if end_of_day else "from"
        shown = moment.isoformat(timespec="seconds")
        note = f"{name}={text!r} is a date: read as the whole day in {locale.time_zone}, {edge} {shown}."
        return Moment(int(moment.timestamp()), note)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is not None:
        return Moment(int(moment.timestamp()))
    moment = _settled(moment.replace(tzinfo=zone), zone)
    note = (
        f"{name}={text!r} has no UTC offset: read in the account's time zone {locale.time_zone} "
        f"({offset_name(moment)}) as {moment.isoformat(timespec='seconds')}."
    )
    return Moment(int(moment.timestamp()), note)


def _settled(moment: datetime, zone: tzinfo) -> datetime:
    """Return the real instant of a wall-clock `moment` in `zone` (a time in a DST gap becomes the one after it)."""
    return moment.astimezone(UTC).astimezone(zone)


def in_account_zone(
    record: dict[str, Any], names: tuple[str, ...], locale: AccountLocale | None = None
) -> dict[str, Any]:
    """Return `record` with its ISO 8601 timestamps `names` (this server's own, in UTC) shown in the account's zone."""
    zone = (locale or current_locale()).zone
    shown = dict(record)
    for name in names:
        value = shown.get(name)
        if isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                continue
            if moment.tzinfo is not None:
                shown[name] = moment.astimezone(zone).isoformat()
    return shown
