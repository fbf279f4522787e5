"""Django settings, read from the environment only (see README "Configuration").

Defaults make `make run` work on a fresh machine: SQLite, the local sandbox JobNimbus, Redis on
localhost (or the embedded stand-in `make run` starts). Production sets DJANGO_DEBUG=false, which
makes DJANGO_SECRET_KEY mandatory.

How settings are laid out (one convention; docs/architecture.md "Settings"):

- Flat settings are Django's, Celery's and the site's shared facts: what Django, DRF or Celery read (SECRET_KEY,
  DATABASES, CACHES, CELERY_*, LOGGING, REST_FRAMEWORK, ...) and what more than one app reads (TRUSTED_PROXY_COUNT,
  METRICS_TOKEN, JOBNIMBUS_INSTANCES, JOBNIMBUS_BASE_URL; REDIS_URL for tools and tests).
- A component's own options are ONE dict named after it, read only through the accessor of its conf module, whose
  `DEFAULTS` dict is the only place its defaults are written: CACHEOPS_ENGINE (cacheops/conf.py `engine_setting`),
  CACHEOPS_FRESHNESS (cacheops/freshness_conf.py `freshness_setting`), DASHBOARD (dashboard/conf.py
  `dashboard_setting`), JOBNIMBUS_CLIENT (mcp_tools/jobnimbus/config.py `ClientConfig.load`) and MCP
  (mcp_tools/conf.py `mcp_setting`). Accessors merge a partial dict over DEFAULTS and follow override_settings.
- Here such a dict gets only what the environment sets: `e.given(...)` drops the variables left unset (each
  `read_*` validates its variable and names it in the error), plus wiring a lower layer may not write itself
  (dotted paths to mcp_tools' plug-ins). Values that only build other settings (the Redis namespace and timeouts,
  log level and format, beat intervals) are lowercase locals, not settings.
"""

from __future__ import annotations

import re
from pathlib import Path

import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

from cacheops.redis_topology import caches_setting
from jobnimbus_site import env as e

# Lets generic classes such as ModelAdmin[Alert] be subscripted at run time, as the type stubs write them.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = e.read_bool("DJANGO_DEBUG", False)
_secret = e.read_str("DJANGO_SECRET_KEY")
if _secret is None and not DEBUG:
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off")
SECRET_KEY = _secret or "dev-only-insecure-secret-key-change-me"
ALLOWED_HOSTS = e.read_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = e.read_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

# --- HTTPS, proxies, monitors (`manage.py check --deploy` passes; README "Configuration for real use") ------
# The proxy in front that terminates TLS and the header it sets ("X-Forwarded-Proto" or "Name: value"). Set it only
# behind a proxy that always overwrites that header: otherwise a client could claim https.
SECURE_PROXY_SSL_HEADER = e.read_proxy_ssl_header("DJANGO_SECURE_PROXY_SSL_HEADER")
# http → https redirects: by default only when debug is off and the proxy header tells https from http (without it
# every request would look like http and redirect forever). /health and /metrics still answer plain-HTTP probes.
SECURE_SSL_REDIRECT = e.read_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG and SECURE_PROXY_SSL_HEADER is not None)
SECURE_REDIRECT_EXEMPT = [r"^health$", r"^metrics$"]
# Sent on https answers only. includeSubDomains reaches hosts under this server's own name (mcp.example.com's, not
# example.com's); preload is a request to browser vendors that only the domain's owner can make, so it stays off
# and check --deploy's reminder about it (W021) is silenced unless it is turned on.
SECURE_HSTS_SECONDS = e.read_int("DJANGO_SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = e.read_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = e.read_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS: list[str] = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
# http redirect URIs are allowed for loopback callbacks only, enforced by managed.validator (see OAUTH2_PROVIDER).
SILENCED_SYSTEM_CHECKS.append("oauth2_provider.W008")
SESSION_COOKIE_SECURE = e.read_bool("DJANGO_SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = e.read_bool("DJANGO_CSRF_COOKIE_SECURE", not DEBUG)
# How many proxies in front append to X-Forwarded-For: the throttle's budgets and the webhook receiver's count of
# wrong secrets are per client address, which behind proxies is the entry the outermost one added (0: REMOTE_ADDR).
TRUSTED_PROXY_COUNT = e.read_int("TRUSTED_PROXY_COUNT", 0, minimum=0, maximum=10)
# Bearer token for Prometheus and monitors: /metrics, /cache/stats, /cache/health and /health's details also answer
# it, besides staff sign-in. Unset: staff only.
METRICS_TOKEN = e.read_token("METRICS_TOKEN")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "cacheops",
    "mcp_tools",
    "dashboard",
    "sandbox",
    # managed before oauth2_provider: its consent page (oauth2_provider/authorize.html) replaces the toolkit's.
    "managed",
    "oauth2_provider",
]

MIDDLEWARE = [
    "jobnimbus_site.logging.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "jobnimbus_site.urls"
WSGI_APPLICATION = "jobnimbus_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # The site's own chrome (the admin header's dashboard link), ahead of the apps' templates.
        "DIRS": [BASE_DIR / "jobnimbus_site" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": e.read_db_url("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # One pool per process that its request threads borrow from (Django's psycopg pool), instead of a connection
    # kept by each thread: with the Procfile's 64 threads a process would otherwise hold up to 64 connections, and
    # a few hosts exhaust PostgreSQL's max_connections (bench/load hit "too many clients" with one host). A thread
    # waits up to `timeout` for a connection; cached reads use none.
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps connections; Django refuses both at once
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 0,
        "max_size": e.read_int("DATABASE_POOL_MAX_SIZE", 8, minimum=1),
        "timeout": e.read_float("DATABASE_POOL_TIMEOUT_S", 10.0, minimum=0.1),
    }
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # make run's web, worker and beat write to one SQLite file at once. A deferred transaction that reads and then
    # writes fails at once with "database is locked" when another writer got there first (the busy timeout cannot
    # help it); an IMMEDIATE one takes the write lock up front and waits its turn. WAL lets readers go on meanwhile.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# --- Redis, cache and Celery -------------------------------------------------------------------
REDIS_URL = e.read_redis_url()
# Prefix of every Redis key and channel this server writes: cache entries, history, tuning, throttle counters,
# webhook replay records and Celery's queues (when Redis is the broker). Lets several deployments share a Redis.
_namespace = e.read_str("CACHE_KEY_NAMESPACE", "") or ""
if "{" in _namespace or "}" in _namespace:
    # The namespace starts every key: a brace there would be the Redis Cluster hash tag, not the instance.
    raise ImproperlyConfigured(f"CACHE_KEY_NAMESPACE is malformed: no braces allowed, got {_namespace!r}")
# Short socket timeouts: with Redis gone a request must lose milliseconds, not seconds (issue 4).
_redis_socket_timeout_s = e.read_float("REDIS_SOCKET_TIMEOUT_S", 0.25)
_redis_connect_timeout_s = e.read_float("REDIS_CONNECT_TIMEOUT_S", 0.25)

JOBNIMBUS_INSTANCES = e.read_instances()

# Plain, Cluster or Sentinel by REDIS_URL's scheme; an instance with REDIS_URL_<INSTANCE> gets its own Redis (an
# alias per distinct URL, cacheops.redis_topology). The throttle counters and key bindings live in `default` (key
# families in cacheops.keys): same namespace. JSON (orjson) values, never pickle; zstd above 1 KB.
CACHES = caches_setting(
    REDIS_URL,
    (
        "cacheops.serializers.ZstdCompressor"
        if e.read_bool("CACHE_COMPRESSION", True)
        else "django_redis.compressors.identity.IdentityCompressor"
    ),
    instance_urls=e.read_instance_redis_urls(list(JOBNIMBUS_INSTANCES)),
    key_prefix=_namespace.rstrip(":"),
    socket_timeout_s=_redis_socket_timeout_s,
    connect_timeout_s=_redis_connect_timeout_s,
    compress_min_bytes=e.read_int("CACHE_COMPRESS_MIN_BYTES", 1024, minimum=0),
)

CELERY_BROKER_URL = e.read_broker_url(REDIS_URL)
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
# kombu's sentinel:// transport is its Redis one behind a Sentinel look-up: the same options, plus the master.
_broker_master = e.broker_master_name(CELERY_BROKER_URL, REDIS_URL)
if _broker_master is not None:
    CELERY_BROKER_TRANSPORT_OPTIONS["master_name"] = _broker_master
if _namespace and CELERY_BROKER_URL.startswith(("redis", "rediss", "sentinel")):
    CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] = _namespace
if CELERY_BROKER_URL.startswith(("redis", "rediss", "sentinel")):
    # Without a socket timeout a publish (beat's, or anyone's) to a broker that stopped answering waits forever.
    # The worker's BRPOP is not bounded by it (kombu's event loop reads only when the socket is readable). Webhook
    # publishes use the shorter CACHEOPS_FRESHNESS["PUBLISH_TIMEOUT_S"] on their own pooled connections.
    CELERY_BROKER_TRANSPORT_OPTIONS["socket_timeout"] = e.read_float(
        "CELERY_BROKER_SOCKET_TIMEOUT_S", 5.0, minimum=0.01
    )
    CELERY_BROKER_TRANSPORT_OPTIONS["socket_connect_timeout"] = e.read_float(
        "CELERY_BROKER_CONNECT_TIMEOUT_S", 2.0, minimum=0.01
    )
    # A task taken but never acknowledged (its worker killed mid-task: acks are late) goes back to the queue once
    # this long has passed; it must exceed the longest task (CELERY_TASK_TIME_LIMIT), or a slow task runs twice.
    CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] = e.read_float(
        "CELERY_BROKER_VISIBILITY_TIMEOUT_S", 360.0, minimum=1.0
    )
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_TIME_LIMIT = e.read_int("CELERY_TASK_TIME_LIMIT", 300, minimum=1)
CELERY_TASK_SOFT_TIME_LIMIT = e.read_int("CELERY_TASK_SOFT_TIME_LIMIT", 240, minimum=1)
CELERY_TASK_ACKS_LATE = True
# A pool child that dies mid-task (OOM, SIGKILL) sends its task back to the queue instead of acknowledging it: every
# task is idempotent (cacheops.tasks), so a second run is harmless and a lost one is not.
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {}

# --- JobNimbus ---------------------------------------------------------------------------------
JOBNIMBUS_BASE_URL = e.read_url("JOBNIMBUS_BASE_URL", "https://app.jobnimbus.com/api1", ("http", "https"))
# JOBNIMBUS_INSTANCES is read above, with the Redis settings (an instance may have a Redis of its own).
JOBNIMBUS_CLIENT = e.given(
    CONNECT_TIMEOUT_S=e.read_float("JOBNIMBUS_CONNECT_TIMEOUT_S", None),
    READ_TIMEOUT_S=e.read_float("JOBNIMBUS_READ_TIMEOUT_S", None),
    TOTAL_BUDGET_S=e.read_float("JOBNIMBUS_TOTAL_BUDGET_S", None),
    MAX_RETRIES=e.read_int("JOBNIMBUS_MAX_RETRIES", None, minimum=0, maximum=10),
    BACKOFF_BASE_S=e.read_float("JOBNIMBUS_BACKOFF_BASE_S", None),
    BACKOFF_MAX_S=e.read_float("JOBNIMBUS_BACKOFF_MAX_S", None),
    POOL_SIZE=e.read_int("JOBNIMBUS_POOL_SIZE", None, minimum=1),
)

# --- Logging -----------------------------------------------------------------------------------
_log_level = (e.read_str("LOG_LEVEL", "INFO") or "INFO").upper()
if _log_level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(
        f"LOG_LEVEL is malformed: expected DEBUG, INFO, WARNING, ERROR or CRITICAL, got {_log_level!r}"
    )
_log_format = e.read_str("LOG_FORMAT", "text" if DEBUG else "json")
if _log_format not in {"text", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT is malformed: expected text or json, got {_log_format!r}")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "jobnimbus_site.logging.RequestIdFilter"},
        "redact": {"()": "jobnimbus_site.logging.RedactSecretsFilter"},
    },
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": _log_format,
            "filters": ["request_id", "redact"],
        }
    },
    "root": {"handlers": ["console"], "level": _log_level},
    "loggers": {
        "django.server": {"level": "WARNING"},
        # Django logs every request with a Host outside DJANGO_ALLOWED_HOSTS at ERROR with a traceback: anyone could
        # flood the log with them. The client still gets its 400; Django's docs suggest silencing this logger.
        "django.security.DisallowedHost": {"handlers": [], "level": "CRITICAL", "propagate": False},
    },
}

# --- DRF ---------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    # DRF's {"detail": ...} bodies, except for views that answer in their own shape (MCP, webhook receiver).
    "EXCEPTION_HANDLER": "jobnimbus_site.api_errors.exception_handler",
}

# --- MCP (protocol face: mcp_tools.views, mcp_tools.protocol, mcp_tools.throttling, mcp_tools.binding) ------
# Defaults and what each option means: mcp_tools/conf.py. Unset address and instance rates follow a MCP_THROTTLE_RATE
# that is set: twice and five times it (the defaults are twice and five times its default).
_key_rate = e.read_rate("MCP_THROTTLE_RATE")
_key_rate_count, _, _key_rate_period = (_key_rate or "").partition("/")
_binding = e.read_choice("JOBNIMBUS_KEY_INSTANCE_BINDING", ("first-seen", "strict", "off"))
_key_digests: dict[str, frozenset[str]] = {}
for _instance in JOBNIMBUS_INSTANCES:
    _variable = "JOBNIMBUS_KEY_SHA256_" + re.sub(r"[^A-Za-z0-9]", "_", _instance).upper()
    _digests = frozenset(digest.lower() for digest in e.read_list(_variable, []))
    if any(not re.fullmatch(r"[0-9a-f]{64}", digest) for digest in _digests):
        raise ImproperlyConfigured(f"{_variable} is malformed: expected SHA-256 digests (64 hex digits), comma list")
    if _binding == "strict" and not _digests:
        raise ImproperlyConfigured(
            f"{_variable} must be set: JOBNIMBUS_KEY_INSTANCE_BINDING=strict lets only listed keys use {_instance!r}"
        )
    if _digests:
        _key_digests[_instance] = _digests
MCP = e.given(
    ALLOWED_ORIGINS=e.read_list("MCP_ALLOWED_ORIGINS", None),
    MAX_BODY_BYTES=e.read_int("MCP_MAX_BODY_BYTES", None, minimum=1024),
    THROTTLE_RATE=_key_rate,
    THROTTLE_ADDRESS_RATE=e.read_rate("MCP_THROTTLE_ADDRESS_RATE")
    or (_key_rate and f"{2 * int(_key_rate_count)}/{_key_rate_period}"),
    THROTTLE_INSTANCE_RATE=e.read_rate("MCP_THROTTLE_INSTANCE_RATE")
    or (_key_rate and f"{5 * int(_key_rate_count)}/{_key_rate_period}"),
    THROTTLE_ADDRESS_KEYS=e.read_rate("MCP_THROTTLE_ADDRESS_KEYS"),
    THROTTLE_USER_RATE=e.read_rate("MCP_THROTTLE_USER_RATE"),
    THROTTLE_CLIENT_RATE=e.read_rate("MCP_THROTTLE_CLIENT_RATE"),
    KEY_INSTANCE_BINDING=_binding,
    KEY_SHA256=_key_digests or None,
    TOOLS_PAGE_SIZE=e.read_int("MCP_TOOLS_PAGE_SIZE", None, minimum=1, maximum=1000),
    LIST_TTL_MS=e.read_int("MCP_LIST_TTL_MS", None, minimum=0),
    PUBLIC_BASE_URL=e.read_url("PUBLIC_BASE_URL", None, ("http", "https")),
)

# --- Managed mode (OAuth 2.1 in front of server-held JobNimbus keys: the `managed` app, docs/managed-mode.md) -------
# Off: /mcp is the header mode only, and the OAuth endpoints answer 404. On: a request without credentials gets the
# MCP authorization challenge (401 + resource metadata) and bearer tokens issued here run with the key staff mapped
# to their user; callers that send their own JobNimbus key keep working as before.
MANAGED_MODE = e.read_bool("MANAGED_MODE", False)
# Fernet keys that encrypt the stored JobNimbus keys, newest first: the first encrypts, every one decrypts (rotation:
# put a new key first, run `manage.py rotate_key_encryption`, then drop the old one).
MANAGED_KEY_ENCRYPTION_KEYS = e.read_fernet_keys("MANAGED_KEY_ENCRYPTION_KEYS")
if MANAGED_MODE and not MANAGED_KEY_ENCRYPTION_KEYS:
    raise ImproperlyConfigured(
        "MANAGED_KEY_ENCRYPTION_KEYS must be set when MANAGED_MODE is on (see docs/managed-mode.md)"
    )
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth2_provider.Application"
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/admin/"
# django-oauth-toolkit: the authorization server. Only what the MCP authorization spec allows is switched on: the
# authorization code grant with PKCE S256, refresh tokens rotated on use, tokens stored as digests, no implicit or
# password grants; clients register by Client ID Metadata Document or Dynamic Client Registration.
OAUTH2_PROVIDER = {
    "SCOPES": {
        "jobnimbus:read": "Read your JobNimbus records: contacts, jobs, tasks, notes, estimates, invoices, payments",
        "jobnimbus:write": "Create and change JobNimbus records: contacts, jobs, tasks, notes",
    },
    "DEFAULT_SCOPES": ["jobnimbus:read"],
    "READ_SCOPE": "jobnimbus:read",
    "WRITE_SCOPE": "jobnimbus:write",
    "ACCESS_TOKEN_EXPIRE_SECONDS": e.read_int("OAUTH_ACCESS_TOKEN_TTL_S", 3600, minimum=60),
    "REFRESH_TOKEN_EXPIRE_SECONDS": e.read_int("OAUTH_REFRESH_TOKEN_TTL_S", 30 * 86400, minimum=3600),
    "AUTHORIZATION_CODE_EXPIRE_SECONDS": 60,
    "ROTATE_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "PKCE_REQUIRED": True,
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
    "COMPLIANT_BCP_RFC9700_PKCE_REQUIRED": True,
    "REQUEST_APPROVAL_PROMPT": "force",
    # Native clients (Claude Code) receive the code on http://localhost:<any port>; managed.validator refuses plain
    # http for every other host, which is why the toolkit's "http redirect URIs allowed" deploy warning is silenced.
    "ALLOW_LOCALHOST_LOOPBACK": True,
    "ACCESS_TOKEN_GENERATOR": "managed.tokens.access_token",
    "REFRESH_TOKEN_GENERATOR": "managed.tokens.refresh_token",
    "CLIENT_SECRET_GENERATOR_CLASS": "managed.tokens.SecretGenerator",
    "OAUTH2_VALIDATOR_CLASS": "managed.validator.ManagedValidator",
    "OAUTH2_BACKEND_CLASS": "managed.validator.OAuthBackend",
    "OAUTH2_RESPONSE_TYPES_SUPPORTED": ["code"],
    "OAUTH2_GRANT_TYPES_SUPPORTED": ["authorization_code", "refresh_token"],
    "OAUTH2_TOKEN_ENDPOINT_AUTH_METHODS_SUPPORTED": ["none", "client_secret_post", "client_secret_basic"],
    "DCR_ENABLED": True,
    # Open registration, as MCP clients expect: a registered client can do nothing until a user signs in and
    # consents on the page that names it.
    "DCR_REGISTRATION_PERMISSION_CLASSES": ("oauth2_provider.dcr.AllowAllDCRPermission",),
    "CIMD_ENABLED": True,
    "CIMD_METADATA_FETCHER": "managed.cimd.MetadataFetcher",
    "CIMD_REGISTRATION_PERMISSION_CLASSES": ("managed.cimd.ResolveOnlyWhenSignedIn",),
    "CIMD_FETCH_TIMEOUT_SECONDS": 5,
    "CIMD_MAX_DOCUMENT_SIZE": 5 * 1024,
    "OAUTH2_PROTECTED_RESOURCE_NAME": "JobNimbus MCP server",
}
# Attempts per client address at the authorization server's open doors (managed.budgets): 429 beyond. Hosted
# connectors register every user's client from their platform's few addresses, hence the generous registration rate.
MANAGED_DOOR_RATES = {
    "registration": e.read_rate("MANAGED_REGISTRATION_RATE") or "120/hour",
    "sign_in": e.read_rate("MANAGED_SIGN_IN_RATE") or "10/min",
}
# Hosts whose Client ID Metadata Documents may be fetched from private addresses (an intranet client; tests). Empty:
# only public addresses, the default that keeps the fetch from reaching anything inside the network.
MANAGED_CIMD_PRIVATE_HOSTS = e.read_list("MANAGED_CIMD_PRIVATE_HOSTS", [])
# A CA bundle for those fetches besides the system's (a private CA); unset: the system's only.
MANAGED_CIMD_CA_FILE = e.read_str("MANAGED_CIMD_CA_FILE")

# --- Freshness (webhooks, polling, sweep: cacheops.events / webhooks / poller) -----------------
_poll_interval_s = e.read_int("CACHE_POLL_INTERVAL_S", 60, minimum=5)
_sweep_interval_s = e.read_int("CACHE_SWEEP_INTERVAL_S", 60, minimum=5)
CACHEOPS_FRESHNESS = e.given(
    WEBHOOK_MAX_BYTES=e.read_int("CACHE_WEBHOOK_MAX_BYTES", None, minimum=1024),
    AUTH_FAILURES_PER_MIN=e.read_int("CACHE_WEBHOOK_AUTH_FAILURES_PER_MIN", None, minimum=0),
    POLL_OVERLAP_S=e.read_int("CACHE_POLL_OVERLAP_S", None, minimum=0),
    # mcp_tools implements the upstream reader; cacheops may not import it (see cacheops.poller).
    CHANGE_SOURCE="mcp_tools.change_source.build_change_source",
)
CELERY_BEAT_SCHEDULE.update(
    {
        "poll-jobnimbus-changes": {
            "task": "cacheops.poll_changes",
            "schedule": float(_poll_interval_s),
            # A round that waited longer than one interval is superseded by the next one.
            "options": {"expires": float(_poll_interval_s)},
        },
        "sweep-unapplied-invalidation-events": {
            "task": "cacheops.sweep_invalidation_events",
            "schedule": float(_sweep_interval_s),
            "options": {"expires": float(_sweep_interval_s)},
        },
    }
)


# --- Cache engine (cacheops.engine; defaults and meanings in cacheops/conf.py) ------------------
def _ttl_overrides() -> dict[str, int]:
    """Return CACHE_TTL_<POLICY> overrides, refusing names that are not policies."""
    from cacheops.policies import DEFAULT_POLICIES  # the one table of policy names

    overrides: dict[str, int] = {}
    for name in sorted(e.env.ENVIRON):
        if name.startswith("CACHE_TTL_"):
            policy = name.removeprefix("CACHE_TTL_").lower()
            if policy not in DEFAULT_POLICIES:
                known = ", ".join(sorted(DEFAULT_POLICIES))
                raise ImproperlyConfigured(f"{name} is malformed: {policy!r} is not a cache policy (known: {known})")
            overrides[policy] = e.read_int(name, 0, minimum=1, maximum=7 * 86400)
    return overrides


CACHEOPS_ENGINE = e.given(
    # CACHE_ENABLED=false: every read bypasses the cache.
    ENABLED=e.read_bool("CACHE_ENABLED", None),
    KEY_NAMESPACE=_namespace or None,
    MAX_ITEM_SIZE_KB=e.read_int("CACHE_MAX_ITEM_SIZE_KB", None, minimum=1),
    L1_TTL_S=e.read_float("CACHE_L1_TTL_S", None),
    L1_MAX_ENTRIES=e.read_int("CACHE_L1_MAX_ENTRIES", None, minimum=0),
    L1_MAX_BYTES=e.read_int("CACHE_L1_MAX_BYTES", None, minimum=0),
    LOCK_TTL_S=e.read_float("CACHE_LOCK_TTL_S", None, minimum=0.1),
    LOCK_WAIT_S=e.read_float("CACHE_LOCK_WAIT_S", None),
    WRITE_SETTLE_S=e.read_float("CACHE_WRITE_SETTLE_S", None),
    REFRESH_WORKERS=e.read_int("CACHE_REFRESH_WORKERS", None, minimum=1, maximum=64),
    # The web server's request threads per process (Procfile: WEB_THREADS, 64) must exceed these two together (48 + 8).
    MISS_CONCURRENCY=e.read_int("CACHE_MISS_CONCURRENCY", None, minimum=0),
    MISS_QUEUE=e.read_int("CACHE_MISS_QUEUE", None, minimum=0),
    MISS_QUEUE_WAIT_S=e.read_float("CACHE_MISS_QUEUE_WAIT_S", None, minimum=0.0),
    XFETCH_BETA=e.read_float("CACHE_XFETCH_BETA", None),
    REDIS_BREAKER=e.given(
        FAILURES=e.read_int("CACHE_REDIS_BREAKER_FAILURES", None, minimum=1),
        WINDOW_S=e.read_float("CACHE_REDIS_BREAKER_WINDOW_S", None, minimum=0.1),
        OPEN_S=e.read_float("CACHE_REDIS_BREAKER_OPEN_S", None, minimum=0.01),
        HALF_OPEN_SUCCESSES=e.read_int("CACHE_REDIS_BREAKER_SUCCESSES", None, minimum=1),
        PROBE_INTERVAL_S=e.read_float("CACHE_REDIS_BREAKER_PROBE_S", None, minimum=0.0),
    )
    or None,
    UPSTREAM_BREAKER=e.given(
        FAILURES=e.read_int("CACHE_UPSTREAM_BREAKER_FAILURES", None, minimum=1),
        OPEN_S=e.read_float("CACHE_UPSTREAM_BREAKER_OPEN_S", None, minimum=0.01),
        MAX_OPEN_S=e.read_float("CACHE_UPSTREAM_BREAKER_MAX_OPEN_S", None, minimum=0.01),
    )
    or None,
    REFUSED_KEY_TTL_S=e.read_float("CACHE_REFUSED_KEY_TTL_S", None, minimum=1.0),
    KEY_REVALIDATE_S=e.read_float("CACHE_KEY_REVALIDATE_S", None, minimum=1.0),
    KEY_BACKOFF_MAX_S=e.read_float("CACHE_KEY_BACKOFF_MAX_S", None, minimum=1.0),
    TTL_OVERRIDES=_ttl_overrides() or None,
)

# --- Dashboard (metric history, alerts, warming, TTL tuning: dashboard.*, cacheops.history/warming/tuning) --
DASHBOARD = e.given(
    MINUTE_RETENTION_H=e.read_int("DASHBOARD_MINUTE_RETENTION_H", None, minimum=1),
    HOUR_RETENTION_D=e.read_int("DASHBOARD_HOUR_RETENTION_D", None, minimum=1),
    ALERT_WINDOW_MIN=e.read_int("ALERT_WINDOW_MIN", None, minimum=1),
    ALERT_LOW_HIT_RATE=e.read_float("ALERT_LOW_HIT_RATE", None),
    ALERT_MIN_REQUESTS=e.read_int("ALERT_MIN_REQUESTS", None, minimum=0),
    ALERT_INVALIDATIONS_PER_H=e.read_int("ALERT_INVALIDATIONS_PER_H", None, minimum=1),
    ALERT_REDIS_MEMORY_RATIO=e.read_float("ALERT_REDIS_MEMORY_RATIO", None),
    ALERT_UPSTREAM_ERROR_RATE=e.read_float("ALERT_UPSTREAM_ERROR_RATE", None),
    ALERT_P95_CACHED_MS=e.read_float("ALERT_P95_CACHED_MS", None),
    ALERT_EMAILS=e.read_list("ALERT_EMAILS", None),
    SLACK_WEBHOOK_URL=e.read_str("SLACK_WEBHOOK_URL"),
    TUNER_WINDOW_H=e.read_int("TTL_TUNER_WINDOW_H", None, minimum=1),
    WARM_MAX_PER_RUN=e.read_int("CACHE_WARM_MAX_PER_RUN", None, minimum=0, maximum=1000),
    # mcp_tools re-runs a tool with the instance's server-held key; cacheops may not import it.
    WARMER="mcp_tools.warmer.warm_read",
)
_tune_interval_s = e.read_int("TTL_TUNE_INTERVAL_S", 6 * 3600, minimum=60)
CELERY_BEAT_SCHEDULE.update(
    {
        "rollup-cache-metrics": {"task": "dashboard.rollup_metrics", "schedule": 60.0, "options": {"expires": 60.0}},
        "prune-cache-metrics": {"task": "dashboard.prune_metrics", "schedule": 3600.0, "options": {"expires": 3600.0}},
        "evaluate-cache-alerts": {"task": "dashboard.evaluate_alerts", "schedule": 60.0, "options": {"expires": 60.0}},
        "warm-cache": {"task": "dashboard.warm_cache", "schedule": 60.0, "options": {"expires": 60.0}},
        "tune-cache-ttls": {
            "task": "dashboard.tune_ttls",
            "schedule": float(_tune_interval_s),
            "options": {"expires": float(_tune_interval_s)},
        },
    }
)
