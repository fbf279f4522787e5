"""Redis topologies by URL (cacheops.redis_topology): parsing and its errors, the CACHES it builds, the hash tags
that keep an instance's keys on one cluster slot, and per-instance routing to a Redis of its own."""

from __future__ import annotations

import uuid
from typing import Any

import fakeredis
import pytest
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from redis.cluster import key_slot

from cacheops import backend, breakers, keys, redis_topology
from cacheops import engine as engine_module
from cacheops.api import CacheScope, ReadRequest, list_tag, read_through, record_tag
from cacheops.engine import generation_keys, plan
from jobnimbus_site import env
from tests.fixtures.redis import IDENTITY, engine_setting_for, require_real_redis

CLUSTER = "redis+cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002"
SENTINEL = "redis+sentinel://127.0.0.1:26390,127.0.0.1:26391,127.0.0.1:26392/jnmaster/0"


# --- parsing -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "rediss://:pw@cache:6380/2", "unix:///tmp/r.sock?db=1"])
def test_plain_urls_stay_as_they_are(url: str) -> None:
    topology = redis_topology.parse(url)
    assert (topology.kind, topology.location) == ("plain", url)
    assert redis_topology.cache_entry(url)["LOCATION"] == url


def test_a_cluster_url_names_its_seed_nodes_and_options() -> None:
    topology = redis_topology.parse("redis+cluster://:s%40cret@10.0.0.1:7000,10.0.0.2:7001/0?read_from_replicas=true")
    assert topology.kind == "cluster"
    assert topology.nodes == (("10.0.0.1", 7000), ("10.0.0.2", 7001))
    assert (topology.password, topology.db, topology.options) == ("s@cret", 0, {"read_from_replicas": "true"})
    assert redis_topology.parse(CLUSTER).nodes[2] == ("127.0.0.1", 7002)
    assert redis_topology.parse("rediss+cluster://h:1").tls


def test_a_cluster_has_database_0_only() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"REDIS_URL is malformed: a Redis Cluster has database 0 only"):
        redis_topology.parse(CLUSTER + "/1")


def test_a_sentinel_url_names_sentinels_service_and_database() -> None:
    topology = redis_topology.parse("redis+sentinel://:pw@s1:26390,s2:26391/jnmaster/3?sentinel_password=x")
    assert (topology.kind, topology.service, topology.db, topology.password) == ("sentinel", "jnmaster", 3, "pw")
    assert topology.nodes == (("s1", 26390), ("s2", 26391))
    assert topology.location == "redis://:pw@jnmaster/3"
    assert redis_topology.parse(SENTINEL.removesuffix("/0")).db == 0


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("http://h:1/0", "expected a URL starting redis://"),
        ("redis+cluster:///0", "name at least one host:port"),
        ("redis+cluster://h/0", "expected host:port"),
        ("redis+cluster://h:99999", "has no valid port"),
        ("redis+sentinel://h:26379", "service"),
        ("redis+sentinel://h:26379/m/x", "the database must be a number"),
    ],
)
def test_malformed_urls_name_the_variable(url: str, said: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="REDIS_URL_ACME is malformed") as caught:
        redis_topology.parse(url, "REDIS_URL_ACME")
    assert said in str(caught.value)


def test_an_error_never_shows_the_password() -> None:
    with pytest.raises(ImproperlyConfigured) as caught:
        redis_topology.parse("http://user:hunter2@h:1/0")
    assert "hunter2" not in str(caught.value)


# --- CACHES entries ------------------------------------------------------------------------------------------


def test_a_cluster_entry_plugs_into_django_redis() -> None:
    entry = redis_topology.cache_entry(CLUSTER, IDENTITY)
    assert entry["LOCATION"] == [CLUSTER]  # a list: django-redis would split the string at its commas
    assert entry["OPTIONS"]["CONNECTION_FACTORY"] == "cacheops.redis_topology.ClusterConnectionFactory"
    assert entry["OPTIONS"]["CLIENT_CLASS"] == "cacheops.redis_topology.ClusterClient"
    assert entry["OPTIONS"]["COMPRESSOR"] == IDENTITY


def test_a_sentinel_entry_uses_django_redis_own_sentinel_support() -> None:
    options = redis_topology.cache_entry(SENTINEL, socket_timeout_s=0.5)["OPTIONS"]
    assert redis_topology.cache_entry(SENTINEL)["LOCATION"] == "redis://jnmaster/0"
    assert options["CLIENT_CLASS"] == "django_redis.client.SentinelClient"
    assert options["CONNECTION_FACTORY"] == "django_redis.pool.SentinelConnectionFactory"
    assert options["SENTINELS"] == [("127.0.0.1", 26390), ("127.0.0.1", 26391), ("127.0.0.1", 26392)]
    assert options["SENTINEL_KWARGS"]["socket_timeout"] == 0.5


def test_caches_get_one_alias_per_distinct_instance_redis() -> None:
    caches = redis_topology.caches_setting(
        "redis://main:6379/0",
        instance_urls={"acme": CLUSTER, "beta": CLUSTER, "gamma": SENTINEL, "demo": "redis://main:6379/0"},
        key_prefix="ns",
    )
    assert set(caches) == {"default", "redis-acme", "redis-gamma"}
    assert caches["redis-acme"]["INSTANCES"] == ["acme", "beta"]
    assert caches["default"]["KEY_PREFIX"] == "ns"


# --- hash tags -----------------------------------------------------------------------------------------------


def test_every_key_of_one_instance_maps_to_one_cluster_slot(settings: Any) -> None:
    settings.CACHEOPS_ENGINE = {"KEY_NAMESPACE": "prod:"}
    entry = keys.entry_key("acme", "t1", "contact", "list", {"size": 10})
    family = [
        entry,
        keys.tag_index_key("acme", "rec:c1"),
        keys.generation_key("acme", "list:contact"),
        keys.epoch_key("acme"),
        keys.lock_key(entry),
        keys.waiters_key(entry),
        keys.caller_key("acme", "t1"),
        keys.caller_backoff_key("acme", "t1"),
    ]
    assert {key_slot(key.encode()) for key in family} == {key_slot(b"acme")}
    assert {keys.hash_tag(key) for key in family} == {"acme"}
    request = ReadRequest(CacheScope("acme", "t1"), "contact", "list", "contacts", {"size": 10}, "get_contacts")
    p = plan(request)
    assert {key_slot(k.encode()) for k in [p.key, *generation_keys(p)]} == {key_slot(b"acme")}


def test_global_keys_carry_no_hash_tag(settings: Any) -> None:
    settings.CACHEOPS_ENGINE = {"KEY_NAMESPACE": "prod:"}
    for key in (
        keys.history_minute_key(60),
        keys.tuned_ttls_key(),
        keys.signature_key("d"),
        keys.auth_failure_key("a"),
    ):
        assert keys.hash_tag(key) is None


# --- the environment -----------------------------------------------------------------------------------------


def test_redis_urls_of_every_topology_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", CLUSTER)
    monkeypatch.setenv("REDIS_URL_ACME_EU", SENTINEL)
    assert env.read_redis_url() == CLUSTER
    assert env.read_instance_redis_urls(["demo", "acme-eu"]) == {"acme-eu": SENTINEL}
    monkeypatch.setenv("REDIS_URL_ACME_EU", "redis+cluster://h:1/2")
    with pytest.raises(ImproperlyConfigured, match="REDIS_URL_ACME_EU is malformed"):
        env.read_instance_redis_urls(["acme-eu"])


def test_the_broker_follows_redis_url_or_must_be_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    monkeypatch.delenv("CELERY_BROKER_MASTER_NAME", raising=False)
    broker = env.read_broker_url(SENTINEL)
    assert broker == "sentinel://127.0.0.1:26390;sentinel://127.0.0.1:26391;sentinel://127.0.0.1:26392/0"
    assert env.broker_master_name(broker, SENTINEL) == "jnmaster"
    with pytest.raises(ImproperlyConfigured, match="CELERY_BROKER_URL must be set: REDIS_URL is a Redis Cluster"):
        env.read_broker_url(CLUSTER)
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://broker:6379/1")
    assert env.read_broker_url(CLUSTER) == "redis://broker:6379/1"
    with pytest.raises(ImproperlyConfigured, match="CELERY_BROKER_MASTER_NAME must be set"):
        env.broker_master_name("sentinel://s:26379", CLUSTER)


# --- per-instance routing ------------------------------------------------------------------------------------


def _fake(server: fakeredis.FakeServer) -> dict[str, Any]:
    return {"connection_class": fakeredis.FakeRedisConnection, "server": server}


@pytest.fixture
def two_redis(settings: Any) -> Any:
    """`default` and instance acme's own Redis, two fake servers: yield their raw clients."""
    main, acme = fakeredis.FakeServer(), fakeredis.FakeServer()
    main_url, acme_url = (f"redis://fake-{uuid.uuid4().hex[:12]}:6379/0" for _ in range(2))
    caches = redis_topology.caches_setting(main_url, IDENTITY, _fake(main), instance_urls={"acme": acme_url})
    caches["redis-acme"]["OPTIONS"]["CONNECTION_POOL_KWARGS"] = _fake(acme)
    settings.CACHES = caches
    settings.CACHEOPS_ENGINE = engine_setting_for(f"test-{uuid.uuid4().hex[:10]}:")
    engine_module.reset_engine()
    yield fakeredis.FakeRedis(server=main), fakeredis.FakeRedis(server=acme)
    engine_module.reset_engine()


def _request(instance: str) -> ReadRequest:
    tags = (list_tag("contact"), record_tag("c1"))
    return ReadRequest(CacheScope(instance, "t1"), "contact", "list", "contacts", {"size": 1}, "get_contacts", tags)


def test_an_instance_with_its_own_redis_is_cached_there(two_redis: Any) -> None:
    main, acme = two_redis
    assert (redis_topology.alias_for("acme"), redis_topology.alias_for("demo")) == ("redis-acme", "default")
    assert read_through(_request("acme"), lambda: {"n": 1}).status == "miss"
    assert read_through(_request("demo"), lambda: {"n": 2}).status == "miss"
    assert acme.exists(plan(_request("acme")).key)
    assert not main.exists(plan(_request("acme")).key)
    assert main.exists(plan(_request("demo")).key)
    assert not acme.exists(plan(_request("demo")).key)
    eng = engine_module.engine()
    eng.l1.clear()
    assert read_through(_request("acme"), lambda: {"n": 3}).status == "hit_l2"
    assert eng.invalidate("acme", [record_tag("c1")]) == 1
    assert not acme.exists(plan(_request("acme")).key)
    assert main.exists(plan(_request("demo")).key)  # another instance, another Redis: untouched
    assert eng.clear_matching(None) >= 1  # every Redis is scanned; each instance's epoch is bumped on its own
    assert not main.exists(plan(_request("demo")).key)
    assert main.get(keys.epoch_key("demo")) == b"1"
    assert acme.get(keys.epoch_key("acme")) == b"1"


def test_one_instance_redis_failing_opens_its_breaker_only(two_redis: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    main, _ = two_redis
    for _ in range(10):
        breakers.redis_breaker("redis-acme").record_failure()
    states = breakers.all_states()
    assert (states["redis-acme"], states["redis"]) == ("OPEN", "CLOSED")
    assert read_through(_request("acme"), lambda: {"n": 1}).status == "miss"  # degraded: upstream, no L2
    assert read_through(_request("demo"), lambda: {"n": 2}).status == "miss"
    assert main.exists(plan(_request("demo")).key)
    assert breakers.redis_breaker() is breakers.redis_breaker("default")


def test_the_engine_listens_on_every_redis(two_redis: Any) -> None:
    eng = engine_module.engine()
    read_through(_request("acme"), lambda: {"n": 1})
    assert [listener.target for listener in eng.subscriber.listeners] == [None, "acme"]
    assert all(listener.ready.wait(5) for listener in eng.subscriber.listeners)
    assert backend.ping("redis-acme") is not None


# --- a real server of any topology (TEST_REAL_REDIS_URL) -----------------------------------------------------


@pytest.mark.topology
def test_django_cache_api_works_on_the_real_topology(settings: Any) -> None:
    """The throttle counters and key bindings go through Django's cache API: it works on every topology, many-key
    calls included (a cluster spreads their keys over slots)."""
    url = require_real_redis()
    settings.CACHES = redis_topology.caches_setting(url, IDENTITY, key_prefix=f"test-{uuid.uuid4().hex[:10]}")
    cache = caches["default"]
    names = [f"k{i}" for i in range(20)]
    try:
        cache.set_many({name: {"n": i} for i, name in enumerate(names)}, 30)
        if redis_topology.parse(url).kind == "sentinel":
            backend.client().wait(1, 2000)  # django-redis's SentinelClient reads from a replica: let it catch up
        assert cache.get_many(names) == {name: {"n": i} for i, name in enumerate(names)}
        assert cache.add("counter", 1, 30)
        assert cache.incr("counter", 2) == 3
        assert backend.client().ping()
    finally:
        cache.delete_many([*names, "counter"])
