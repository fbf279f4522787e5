"""Which Redis the cache runs on, chosen by URL: the one place a Redis URL becomes a topology, CACHES entries
(django-redis) and raw clients, and where a JobNimbus instance's keys are routed.

URL forms (the scheme decides the topology):

- plain: `redis://[[user]:password@]host:port/db`, `rediss://...` (TLS), `unix:///path?db=N`;
- Redis Cluster: `redis+cluster://[[user]:password@]host:port,host:port,.../[0][?options]` (`rediss+cluster://`
  for TLS): seed nodes, the rest is discovered. A cluster has database 0 only;
- Sentinel: `redis+sentinel://[[user]:password@]host:port,host:port,.../service[/db][?options]`
  (`rediss+sentinel://` for TLS to the master): the sentinels, the monitored master's name, its database. The
  password is the master's; `?sentinel_password=` gives the sentinels' own.

Per-instance routing: an instance with its own URL (REDIS_URL_<INSTANCE>) gets a CACHES alias `redis-<instance>`
naming the instances it serves (`INSTANCES`, one alias per distinct URL); `alias_for(instance)` reads CACHES, so a
test that swaps CACHES swaps the routing with it. The codec and every global key family stay on `default`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, unquote

import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django_redis.client import DefaultClient
from django_redis.exceptions import ConnectionInterrupted
from django_redis.pool import ConnectionFactory
from redis.cluster import ClusterNode, RedisCluster
from redis.sentinel import Sentinel

Kind = Literal["plain", "cluster", "sentinel"]

PLAIN_SCHEMES = ("redis", "rediss", "unix")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
SCHEMES = PLAIN_SCHEMES + CLUSTER_SCHEMES + SENTINEL_SCHEMES
DEFAULT_ALIAS = "default"
# The CACHES entry key listing the instances an alias serves (Django and django-redis ignore unknown keys).
INSTANCES = "INSTANCES"
ZSTD = "cacheops.serializers.ZstdCompressor"
# What django-redis turns into ConnectionInterrupted (and the cache's IGNORE_EXCEPTIONS may swallow).
_CLIENT_ERRORS = (redis.ConnectionError, redis.TimeoutError, redis.ResponseError)


@dataclass(frozen=True)
class Topology:
    """One Redis deployment as a URL names it."""

    kind: Kind
    url: str
    tls: bool = False
    nodes: tuple[tuple[str, int], ...] = ()  # cluster seed nodes, or the sentinels
    service: str = ""  # the Sentinel master's name
    db: int = 0
    username: str | None = None
    password: str | None = None
    options: dict[str, str] = field(default_factory=dict)

    @property
    def location(self) -> str:
        """Return django-redis's LOCATION: the URL itself (plain, cluster) or `redis://[auth@]service/db`."""
        if self.kind != "sentinel":
            return self.url
        return f"{'rediss' if self.tls else 'redis'}://{_userinfo(self)}{self.service}/{self.db}"


def _userinfo(t: Topology) -> str:
    if t.password is None and t.username is None:
        return ""
    return f"{quote(t.username or '', safe='')}:{quote(t.password or '', safe='')}@"


# --- parsing -------------------------------------------------------------------------------------------------


def parse(url: str, name: str = "REDIS_URL") -> Topology:
    """Return the topology `url` names; raise ImproperlyConfigured naming the variable `name` when malformed."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in SCHEMES:
        expected = ", ".join(f"{s}://" for s in SCHEMES)
        raise ImproperlyConfigured(f"{name} is malformed: expected a URL starting {expected}, got {_redacted(url)!r}")
    if scheme in PLAIN_SCHEMES:
        return Topology("plain", url, tls=scheme == "rediss")
    body, _, query = rest.partition("?")
    netloc, _, path = body.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    username, password = _credentials(userinfo) if at else (None, None)
    nodes = tuple(_node(part, name) for part in hosts.split(",") if part.strip())
    if not nodes:
        raise ImproperlyConfigured(f"{name} is malformed: name at least one host:port in {_redacted(url)!r}")
    options = dict(parse_qsl(query, keep_blank_values=True))
    segments = [s for s in path.split("/") if s]
    tls = scheme.startswith("rediss")
    if scheme in CLUSTER_SCHEMES:
        db = _db(segments[0] if segments else "0", name)
        if db != 0 or len(segments) > 1:
            raise ImproperlyConfigured(f"{name} is malformed: a Redis Cluster has database 0 only, got {path!r}")
        return Topology("cluster", url, tls, nodes, "", 0, username, password, options)
    if not segments or len(segments) > 2:
        raise ImproperlyConfigured(
            f"{name} is malformed: expected redis+sentinel://host:port,host:port/service[/db], got {_redacted(url)!r}"
        )
    db = _db(segments[1] if len(segments) == 2 else "0", name)
    return Topology("sentinel", url, tls, nodes, segments[0], db, username, password, options)


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    user, colon, password = userinfo.partition(":")
    if not colon:  # redis://secret@host: redis-py reads a lone userinfo as the password
        return None, unquote(user) or None
    return unquote(user) or None, unquote(password)


def _node(part: str, name: str) -> tuple[str, int]:
    host, colon, port = part.strip().rpartition(":")
    if not colon or not host:
        raise ImproperlyConfigured(f"{name} is malformed: expected host:port, got {part!r}")
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 < number < 65536:
        raise ImproperlyConfigured(f"{name} is malformed: {part!r} has no valid port")
    return host.strip("[]"), number


def _db(text: str, name: str) -> int:
    if not text.isdigit():
        raise ImproperlyConfigured(f"{name} is malformed: the database must be a number, got {text!r}")
    return int(text)


def _redacted(url: str) -> str:
    """Return `url` without its password (error messages end up in logs)."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, tail = rest.partition("@")
    if not at or "/" in userinfo:
        return url
    return f"{scheme}{sep}***@{tail}"


# --- CACHES entries ------------------------------------------------------------------------------------------


def cache_entry(
    url: str,
    compressor: str = ZSTD,
    pool_kwargs: Mapping[str, Any] | None = None,
    *,
    socket_timeout_s: float = 0.25,
    connect_timeout_s: float = 0.25,
    compress_min_bytes: int = 1024,
    name: str = "REDIS_URL",
) -> dict[str, Any]:
    """Return one django-redis CACHES entry on `url`, whatever its topology (JSON values, never pickle)."""
    topology = parse(url, name)
    options: dict[str, Any] = {
        "CLIENT_CLASS": "django_redis.client.DefaultClient",
        "SOCKET_TIMEOUT": socket_timeout_s,
        "SOCKET_CONNECT_TIMEOUT": connect_timeout_s,
        "SERIALIZER": "cacheops.serializers.OrjsonSerializer",
        "COMPRESSOR": compressor,
        "COMPRESS_MIN_LENGTH": compress_min_bytes,
    }
    if pool_kwargs:
        options["CONNECTION_POOL_KWARGS"] = dict(pool_kwargs)
    if topology.kind == "cluster":
        options["CLIENT_CLASS"] = "cacheops.redis_topology.ClusterClient"
        options["CONNECTION_FACTORY"] = "cacheops.redis_topology.ClusterConnectionFactory"
    elif topology.kind == "sentinel":
        # django-redis's own Sentinel support; its client writes (and backend.client() runs) on the master.
        options["CLIENT_CLASS"] = "django_redis.client.SentinelClient"
        options["CONNECTION_FACTORY"] = "django_redis.pool.SentinelConnectionFactory"
        options["SENTINELS"] = list(topology.nodes)
        options["SENTINEL_KWARGS"] = _sentinel_kwargs(topology, socket_timeout_s, connect_timeout_s)
    # A list of one: django-redis splits a LOCATION string at commas (read replicas), and a cluster URL has them.
    location = [topology.location] if topology.kind == "cluster" else topology.location
    return {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": location, "OPTIONS": options}


def _sentinel_kwargs(t: Topology, socket_timeout_s: float, connect_timeout_s: float) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"socket_timeout": socket_timeout_s, "socket_connect_timeout": connect_timeout_s}
    if t.options.get("sentinel_password"):
        kwargs["password"] = t.options["sentinel_password"]
    return kwargs


def caches_setting(
    url: str,
    compressor: str = ZSTD,
    pool_kwargs: Mapping[str, Any] | None = None,
    *,
    instance_urls: Mapping[str, str] | None = None,
    key_prefix: str = "",
    **entry_kwargs: Any,
) -> dict[str, Any]:
    """Return the CACHES setting: `default` on `url`, plus an alias per distinct instance Redis (routing).

    `instance_urls` maps an instance to its own Redis URL; an instance whose URL is `url` stays on `default`.
    Keyword options are `cache_entry`'s (timeouts, compression threshold).
    """
    default = cache_entry(url, compressor, pool_kwargs, **entry_kwargs)
    if key_prefix:
        # The throttle counters and key bindings live in `default` (cacheops.keys): under the same namespace.
        default["KEY_PREFIX"] = key_prefix
    caches: dict[str, Any] = {DEFAULT_ALIAS: default}
    by_url: dict[str, dict[str, Any]] = {}
    for instance, instance_url in (instance_urls or {}).items():
        if instance_url == url:
            continue
        entry = by_url.get(instance_url)
        if entry is None:
            name = f"REDIS_URL_{instance_env_suffix(instance)}"
            entry = by_url[instance_url] = cache_entry(instance_url, compressor, pool_kwargs, name=name, **entry_kwargs)
            entry[INSTANCES] = []
            caches[f"redis-{instance}"] = entry
        entry[INSTANCES].append(instance)
    return caches


def instance_env_suffix(instance: str) -> str:
    """Return the suffix of an instance's own environment variables (as jobnimbus_site.env.read_instances)."""
    return "".join(c if c.isalnum() else "_" for c in instance).upper()


# --- routing -------------------------------------------------------------------------------------------------


def alias_for(instance: str | None) -> str:
    """Return the CACHES alias holding `instance`'s keys (`default` unless it has a Redis of its own)."""
    if instance is None:
        return DEFAULT_ALIAS
    for alias, entry in settings.CACHES.items():
        if instance in entry.get(INSTANCES, ()):
            return str(alias)
    return DEFAULT_ALIAS


def aliases() -> list[str]:
    """Return every Redis the cache uses: `default` first, then each instance Redis."""
    return [DEFAULT_ALIAS, *(str(a) for a, entry in settings.CACHES.items() if entry.get(INSTANCES))]


def redis_targets() -> list[str | None]:
    """Return one routing instance per Redis the cache uses (None: `default`), to reach each Redis once."""
    return [None, *(str(entry[INSTANCES][0]) for entry in settings.CACHES.values() if entry.get(INSTANCES))]


# --- clients -------------------------------------------------------------------------------------------------


def raw_client(url: str, **kwargs: Any) -> Any:
    """Return a raw redis-py client of `url`: a Redis, a RedisCluster, or the master of a Sentinel set."""
    topology = parse(url)
    if topology.kind == "plain":
        return redis.Redis.from_url(url, **kwargs)
    if topology.kind == "cluster":
        return cluster_client(topology, **kwargs)
    return sentinel_master(topology, **kwargs)


def cluster_client(t: Topology, **kwargs: Any) -> RedisCluster:
    """Return a RedisCluster on the seed nodes of `t`."""
    params: dict[str, Any] = {"username": t.username, "password": t.password, "ssl": t.tls, **kwargs}
    for option, value in t.options.items():
        params.setdefault(option, _option_value(value))
    return RedisCluster(startup_nodes=[ClusterNode(host, port) for host, port in t.nodes], **params)


def sentinel_master(t: Topology, **kwargs: Any) -> redis.Redis:
    """Return the client of the master `t` names (it follows a failover: the sentinels are asked again)."""
    # The sentinels themselves answer at once: bounded by the caller's timeouts, or a second. The master's
    # connections take redis-py's defaults (5 s read timeout in redis-py 8, as redis.Redis.from_url) unless given.
    sentinel_kwargs = {"socket_timeout": kwargs.get("socket_timeout") or 1.0}
    if kwargs.get("socket_connect_timeout"):
        sentinel_kwargs["socket_connect_timeout"] = kwargs["socket_connect_timeout"]
    if t.options.get("sentinel_password"):
        sentinel_kwargs["password"] = t.options["sentinel_password"]
    sentinel = Sentinel(list(t.nodes), sentinel_kwargs=sentinel_kwargs)
    master: redis.Redis = sentinel.master_for(
        t.service, db=t.db, username=t.username, password=t.password, ssl=t.tls, **kwargs
    )
    return master


def _option_value(value: str) -> Any:
    """Return a URL option as redis-py wants it: numbers and booleans typed."""
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return float(value) if "." in value else int(value)
    except ValueError:
        return value


class ClusterConnectionFactory(ConnectionFactory):
    """django-redis's CONNECTION_FACTORY for `redis+cluster://` LOCATIONs: a RedisCluster per URL and process.

    django-redis builds a client per cache object (one per thread); a RedisCluster learns the slot map on creation,
    so one is kept per URL (thread-safe: it pools a connection per node) instead of discovering it each time.
    """

    _clusters: dict[tuple[int, str, str], RedisCluster] = {}

    def connect(self, url: str) -> Any:
        params = self.make_connection_params(url)
        extra = {k: v for k, v in params.items() if k in ("socket_timeout", "socket_connect_timeout")}
        extra.update(self.pool_cls_kwargs)
        # Per process (a forked child must not share its parent's sockets) and per options (two caches on one
        # cluster with different timeouts get their own).
        key = (os.getpid(), url, repr(sorted(extra.items())))
        client = self._clusters.get(key)
        if client is None:
            client = self._clusters[key] = cluster_client(parse(url), **extra)
        return client

    def disconnect(self, connection: Any) -> None:
        connection.disconnect_connection_pools()


class ClusterClient(DefaultClient):
    """django-redis's CLIENT_CLASS on a cluster: Django's many-key calls split by slot (their keys hash anywhere).

    Every single-key call (get, set, add, incr: the throttle's and the bindings') is DefaultClient's own.
    """

    def get_many(self, keys: Any, version: int | None = None, client: Any = None) -> dict[Any, Any]:
        client = client or self.get_client(write=False)
        wanted = {self.make_key(key, version=version): key for key in keys}
        if not wanted:
            return {}
        try:
            values = client.mget_nonatomic(list(wanted))
        except _CLIENT_ERRORS as exc:
            raise ConnectionInterrupted(connection=client) from exc
        return {wanted[k]: self.decode(v) for k, v in zip(wanted, values, strict=True) if v is not None}
