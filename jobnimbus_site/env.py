"""Read configuration from the environment, failing at start-up with the variable's name.

Settings read the environment through these helpers and nothing else does. django-environ does the
parsing; this module only makes every failure name the variable and the expected form, so a typo in a
deployment stops the process with a message an operator can act on.

Every `read_*` returns its `default` when the variable is unset; a component's options pass `None` there and go
through `given()`, so only what the environment sets reaches the settings dict and the component's `DEFAULTS`
supply the rest (see the top of settings.py).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import environ
from django.core.exceptions import ImproperlyConfigured

from cacheops import redis_topology

T = TypeVar("T")
D = TypeVar("D")  # a default: the setting's own value, or None for "unset, the component's DEFAULTS decide"
_RATE_RE = re.compile(r"[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)")

env = environ.Env()

INSTANCE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_TOKEN_RE = re.compile(r"[A-Za-z0-9._~+/=-]+")
_HEADER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
_CURRENCY_RE = re.compile(r"[A-Z]{3}")


def _parse(name: str, expected: str, parse: Callable[[], T]) -> T:
    try:
        return parse()
    except ImproperlyConfigured:
        raise
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(f"{name} is malformed: expected {expected} ({exc})") from exc


def read_str(name: str, default: str | None = None) -> str | None:
    """Return the variable's text, or the default when it is unset or empty."""
    value = env.str(name, default="")
    return value if value != "" else default


def given(**values: Any) -> dict[str, Any]:
    """Return the options the environment set: `values` without the None ones (their variables are unset)."""
    return {key: value for key, value in values.items() if value is not None}


def read_bool(name: str, default: D) -> bool | D:
    """Return a boolean from true/false, yes/no, on/off or 1/0."""
    raw = read_str(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} is malformed: expected true or false, got {raw!r}")


def read_int(name: str, default: D, *, minimum: int | None = None, maximum: int | None = None) -> int | D:
    """Return an integer within the given bounds."""
    raw = read_str(name)
    if raw is None:
        return default
    value = _parse(name, "a whole number", lambda: int(raw))
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} is malformed: must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name} is malformed: must be at most {maximum}, got {value}")
    return value


def read_float(name: str, default: D, *, minimum: float = 0.0) -> float | D:
    """Return a number no smaller than minimum."""
    raw = read_str(name)
    if raw is None:
        return default
    value = _parse(name, "a number", lambda: float(raw))
    if value < minimum:
        raise ImproperlyConfigured(f"{name} is malformed: must be at least {minimum}, got {value}")
    return value


def read_token(name: str, *, min_length: int = 16) -> str | None:
    """Return a shared secret sent as a bearer token (letters, digits, `._~+/=-`, at least min_length), or None."""
    raw = read_str(name)
    if raw is None:
        return None
    if len(raw) < min_length or not _TOKEN_RE.fullmatch(raw):
        raise ImproperlyConfigured(
            f"{name} is malformed: expected at least {min_length} letters, digits or ._~+/=- (no spaces)"
        )
    return raw


def read_fernet_keys(name: str) -> list[str]:
    """Return a comma list of Fernet keys (url-safe base64 of 32 bytes), newest first; [] when unset."""
    keys = read_list(name, [])
    for position, key in enumerate(keys, start=1):
        try:
            decoded = base64.urlsafe_b64decode(key.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            decoded = b""
        if len(decoded) != 32:
            raise ImproperlyConfigured(
                f"{name} is malformed: key {position} is not a Fernet key (url-safe base64 of 32 bytes; make one with "
                '`python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`)'
            )
    return keys


def read_proxy_ssl_header(name: str) -> tuple[str, str] | None:
    """Return Django's SECURE_PROXY_SSL_HEADER from `Header-Name` (value https) or `Header-Name: value`, or None."""
    raw = read_str(name)
    if raw is None:
        return None
    header, _, value = raw.partition(":")
    header, value = header.strip(), value.strip() or "https"
    if not _HEADER_RE.fullmatch(header) or not _TOKEN_RE.fullmatch(value):
        raise ImproperlyConfigured(
            f"{name} is malformed: expected a header name, optionally with the value that means https "
            f"(X-Forwarded-Proto or X-Forwarded-Proto: https), got {raw!r}"
        )
    return f"HTTP_{header.upper().replace('-', '_')}", value


def read_list(name: str, default: list[str] | D) -> list[str] | D:
    """Return a comma-separated list with blanks dropped."""
    raw = read_str(name)
    if raw is None:
        return list(default) if isinstance(default, list) else default
    return [item.strip() for item in raw.split(",") if item.strip()]


def read_db_url(name: str, default: str) -> dict[str, Any]:
    """Return a Django DATABASES entry parsed from a database URL."""
    raw = read_str(name, default) or default
    expected = "a database URL such as postgres://user@host:5432/db or sqlite:///path"
    if "://" not in raw:
        raise ImproperlyConfigured(f"{name} is malformed: expected {expected}")
    return _parse(name, expected, lambda: env.db_url_config(raw))


def read_url(name: str, default: str | D, schemes: tuple[str, ...]) -> str | D:
    """Return a URL whose scheme is one of schemes (a default given as text is checked too)."""
    raw = read_str(name)
    if raw is None:
        if not isinstance(default, str):
            return default
        raw = default
    scheme = raw.split("://", 1)[0] if "://" in raw else ""
    if scheme not in schemes:
        expected = " or ".join(f"{scheme}://" for scheme in schemes)
        raise ImproperlyConfigured(f"{name} is malformed: expected a URL starting {expected}, got {raw!r}")
    return raw.rstrip("/")


def read_rate(name: str) -> str | None:
    """Return a throttle rate `N/second|minute|hour|day` (s, sec, m, min, h, d too), or None when unset."""
    raw = read_str(name)
    if raw is not None and not _RATE_RE.fullmatch(raw):
        raise ImproperlyConfigured(f"{name} is malformed: expected N/second|minute|hour|day, got {raw!r}")
    return raw


def read_choice(name: str, choices: tuple[str, ...]) -> str | None:
    """Return one of `choices`, or None when unset."""
    raw = read_str(name)
    if raw is not None and raw not in choices:
        expected = ", ".join(choices[:-1]) + f" or {choices[-1]}"
        raise ImproperlyConfigured(f"{name} is malformed: expected {expected}, got {raw!r}")
    return raw


def read_redis_url(name: str = "REDIS_URL") -> str:
    """Return REDIS_URL, or one built from the plan's REDIS_HOST/PORT/PASSWORD/DB/TLS_ENABLED.

    Any topology cacheops.redis_topology reads: redis://, rediss://, unix://, redis+cluster://, redis+sentinel://.
    """
    raw = read_str(name)
    if raw is not None:
        redis_topology.parse(raw, name)  # fails at start-up, naming the variable
        return raw.rstrip("/") if raw.startswith(redis_topology.PLAIN_SCHEMES) else raw
    host = read_str("REDIS_HOST", "127.0.0.1")
    port = read_int("REDIS_PORT", 6379, minimum=1, maximum=65535)
    db = read_int("REDIS_DB", 0, minimum=0)
    password = read_str("REDIS_PASSWORD")
    scheme = "rediss" if read_bool("REDIS_TLS_ENABLED", False) else "redis"
    auth = f":{quote(password, safe='')}@" if password else ""
    return f"{scheme}://{auth}{host}:{port}/{db}"


def read_instance_redis_urls(instances: list[str]) -> dict[str, str]:
    """Return {instance: its own Redis URL} from REDIS_URL_<INSTANCE> (instances without one are left out)."""
    urls: dict[str, str] = {}
    for name in instances:
        variable = f"REDIS_URL_{redis_topology.instance_env_suffix(name)}"
        if read_str(variable) is not None:
            urls[name] = read_redis_url(variable)
    return urls


BROKER_SCHEMES = ("redis", "rediss", "redis+socket", "sentinel", "amqp", "amqps", "memory")


def read_broker_url(redis_url: str) -> str:
    """Return CELERY_BROKER_URL, by default the broker on REDIS_URL (none for a cluster: kombu has no transport)."""
    if read_str("CELERY_BROKER_URL") is not None:
        return str(read_url("CELERY_BROKER_URL", "", BROKER_SCHEMES))
    return broker_url_for(redis_url)


def broker_url_for(redis_url: str) -> str:
    """Return the Celery broker URL for a Redis URL (kombu spells a unix socket `redis+socket://`, a Sentinel set
    `sentinel://host:port;sentinel://host:port/db` with the master's name in the transport options)."""
    topology = redis_topology.parse(redis_url)
    if topology.kind == "cluster":
        raise ImproperlyConfigured(
            "CELERY_BROKER_URL must be set: REDIS_URL is a Redis Cluster (redis+cluster://), which Celery's broker "
            "(kombu) cannot use; point CELERY_BROKER_URL at a plain Redis (redis://), a Sentinel set (sentinel://) "
            "or AMQP"
        )
    if topology.kind == "sentinel":
        auth = f":{quote(topology.password, safe='')}@" if topology.password else ""
        nodes = ";".join(f"sentinel://{auth}{host}:{port}" for host, port in topology.nodes)
        return f"{nodes}/{topology.db}"
    if not redis_url.startswith("unix://"):
        return redis_url
    path, _, query = redis_url.removeprefix("unix://").partition("?")
    db = dict(part.split("=", 1) for part in query.split("&") if "=" in part).get("db", "0")
    return f"redis+socket://{path}?virtual_host={db}"


def broker_master_name(broker_url: str, redis_url: str) -> str | None:
    """Return the Sentinel master a `sentinel://` broker uses: CELERY_BROKER_MASTER_NAME, else REDIS_URL's service."""
    if not broker_url.startswith("sentinel"):
        return None
    given = read_str("CELERY_BROKER_MASTER_NAME")
    if given is not None:
        return given
    topology = redis_topology.parse(redis_url)
    if topology.kind != "sentinel":
        raise ImproperlyConfigured(
            "CELERY_BROKER_MASTER_NAME must be set: CELERY_BROKER_URL is a Sentinel set (sentinel://) and REDIS_URL "
            "names no Sentinel master to borrow"
        )
    return topology.service


def read_instances() -> dict[str, dict[str, str | None]]:
    """Return the configured JobNimbus instances: optional server-held key and webhook secret, time zone, currency."""
    names = read_list("JOBNIMBUS_INSTANCES", ["demo"])
    if not names:
        raise ImproperlyConfigured("JOBNIMBUS_INSTANCES is malformed: name at least one instance")
    instances: dict[str, dict[str, str | None]] = {}
    for name in names:
        if not INSTANCE_NAME_RE.match(name):
            raise ImproperlyConfigured(
                f"JOBNIMBUS_INSTANCES is malformed: {name!r} is not a valid instance name "
                "(letters, digits, '_' and '-', up to 64 characters)"
            )
        suffix = redis_topology.instance_env_suffix(name)
        instances[name] = {
            "api_key": read_str(f"JOBNIMBUS_API_KEY_{suffix}"),
            "webhook_secret": read_str(f"JOBNIMBUS_WEBHOOK_SECRET_{suffix}"),
            "time_zone": read_time_zone(f"JOBNIMBUS_TIME_ZONE_{suffix}", "UTC"),
            "currency": read_currency(f"JOBNIMBUS_CURRENCY_{suffix}", "USD"),
        }
    return instances


def read_time_zone(name: str, default: str) -> str:
    """Return an IANA time zone name (America/Chicago) the zone database knows."""
    raw = read_str(name)
    if raw is None:
        return default
    value = raw.strip()
    if value.upper() == "UTC":
        return "UTC"
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ImproperlyConfigured(
            f"{name} is malformed: expected an IANA time zone name such as America/Chicago or UTC, got {raw!r} "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    return value


def read_currency(name: str, default: str) -> str:
    """Return an ISO 4217 currency code (three letters, upper-cased)."""
    raw = read_str(name)
    if raw is None:
        return default
    value = raw.strip().upper()
    if not _CURRENCY_RE.fullmatch(value):
        raise ImproperlyConfigured(f"{name} is malformed: expected an ISO 4217 currency code such as USD, got {raw!r}")
    return value
