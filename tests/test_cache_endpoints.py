"""Cache engine endpoints: health, stats, metrics (staff or the metrics token), clear and invalidate (staff only,
precise 400s)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from cacheops import engine, keys
from cacheops.api import list_tag, record_tag
from cacheops.breakers import redis_breaker
from tests.fixtures.redis import IDENTITY, CacheEnv, caches_setting

pytestmark = [pytest.mark.django_db, pytest.mark.parametrize("cache_backend", ["fake"], indirect=True)]


@pytest.fixture
def staff() -> APIClient:
    """An owner: staff, authenticated by token."""
    user = User.objects.create_user("owner", password="pw-owner-123", is_staff=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def teammate() -> APIClient:
    """A signed-in user who is not staff."""
    user = User.objects.create_user("teammate", password="pw-teammate-123")
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def outsider() -> APIClient:
    """Nobody signed in."""
    return APIClient()


@pytest.fixture
def monitor(settings: Any) -> APIClient:
    """A monitor (Prometheus, an uptime check): no user, the metrics token as a bearer token."""
    settings.METRICS_TOKEN = "metrics-token-0123456789"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer metrics-token-0123456789")
    return client


@pytest.fixture
def demo_instances(settings: Any) -> None:
    settings.JOBNIMBUS_INSTANCES = {"demo": {"api_key": "server-held-key-1", "webhook_secret": "hook-secret-1"}}


def fill(env: CacheEnv) -> None:
    env.read()
    env.read(env.request(tenant="tenant-b"))
    env.read(env.request(entity="job", policy="jobs", tool="get_jobs", tags=(list_tag("job"),)))


def test_health_reveals_nothing_secret(cache_backend: CacheEnv, monitor: APIClient, settings: Any) -> None:
    settings.SECRET_KEY = "a-long-server-secret-that-must-not-leak"
    response = monitor.get("/cache/health")
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "healthy"
    assert body["connected"] is True
    assert body["circuitState"] == "CLOSED"
    text = response.content.decode()
    assert settings.SECRET_KEY not in text
    assert "redis://" not in text


def test_health_reports_degraded_and_unavailable(cache_backend: CacheEnv, monitor: APIClient, settings: Any) -> None:
    for _ in range(5):
        redis_breaker().record_failure()
    assert monitor.get("/cache/health").json()["status"] == "degraded"
    settings.CACHES = caches_setting("redis://127.0.0.1:1/0", IDENTITY)
    engine.reset_engine()
    body = monitor.get("/cache/health").json()
    assert (body["status"], body["connected"]) == ("unavailable", False)


def test_stats_count_hits_misses_and_writes_by_tier_and_tool(cache_backend: CacheEnv, staff: APIClient) -> None:
    before = staff.get("/cache/stats").json()
    fill(cache_backend)
    cache_backend.read()
    after = staff.get("/cache/stats").json()
    assert after["misses"] - before["misses"] == 3
    assert after["hits"] - before["hits"] == 1
    assert after["byTier"]["l1"] - before["byTier"]["l1"] == 1
    assert after["writes"]["l2"] - before["writes"].get("l2", 0) == 3
    assert after["byTool"]["get_jobs"]["misses"] >= 1
    assert 0 < after["hitRate"] < 1
    assert after["breakers"]["redis"] == "CLOSED"
    assert after["redis"]["keys"] >= 3


def test_metrics_are_prometheus_text(cache_backend: CacheEnv, monitor: APIClient) -> None:
    cache_backend.read()
    response = monitor.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert b'jn_cache_reads_total{status="miss",tool="get_contacts"}' in response.content


@pytest.mark.parametrize("path", ["/cache/clear", "/cache/invalidate"])
def test_admin_actions_need_staff(
    cache_backend: CacheEnv, outsider: APIClient, teammate: APIClient, path: str, demo_instances: None
) -> None:
    body = {"instance": "demo", "tags": ["list:contact"]}
    assert outsider.post(path, body, format="json").status_code == 403
    assert teammate.post(path, body, format="json").status_code == 403
    assert cache_backend.calls == []


def test_clear_deletes_only_this_apps_keys(cache_backend: CacheEnv, staff: APIClient) -> None:
    fill(cache_backend)
    cache_backend.raw.set("someone-else:key", b"kept")
    response = staff.post("/cache/clear", {}, format="json")
    assert response.status_code == 200
    assert response.json()["deleted"] >= 3
    generations = f"{cache_backend.namespace}{keys.VERSION}:gen:".encode()
    # The dashboard's history (flushed by a background thread, so present or not by now) is not cache: it stays.
    history = f"{cache_backend.namespace}jn:hist:".encode()
    assert [k for k in cache_backend.app_keys() if not k.startswith((generations, history))] == []
    assert cache_backend.raw.get("someone-else:key") == b"kept"
    assert cache_backend.read().status == "miss"  # L1 was emptied too


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tags": ["list:contact"]}, "instance"),
        ({"instance": "nowhere", "tags": ["list:contact"]}, "instance"),
        ({"instance": "../demo", "tags": ["list:contact"]}, "instance"),
        ({"instance": "demo"}, "tags"),
        ({"instance": "demo", "tags": "list:contact"}, "tags"),
        ({"instance": "demo", "tags": []}, "tags"),
        ({"instance": "demo", "tags": ["list:contact"], "entity": "contact"}, "entity"),
        ({"instance": "demo", "entity": "Contact; DROP"}, "entity"),
        ({"instance": "demo", "key_pattern": "../../*"}, "key_pattern"),
    ],
)
def test_invalidate_refuses_bad_input_naming_the_field(
    cache_backend: CacheEnv, staff: APIClient, demo_instances: None, body: dict[str, Any], field: str
) -> None:
    response = staff.post("/cache/invalidate", body, format="json")
    assert response.status_code == 400
    assert field in response.json()


def test_invalidate_by_tags_entity_and_key_pattern(
    cache_backend: CacheEnv, staff: APIClient, demo_instances: None
) -> None:
    fill(cache_backend)
    by_tag = staff.post("/cache/invalidate", {"instance": "demo", "tags": [record_tag("c1")]}, format="json")
    assert by_tag.json()["dropped"] == 2
    fill(cache_backend)
    by_entity = staff.post("/cache/invalidate", {"instance": "demo", "entity": "job"}, format="json")
    assert by_entity.json()["dropped"] == 1
    by_pattern = staff.post("/cache/invalidate", {"instance": "demo", "key_pattern": "tenant-b:*"}, format="json")
    assert (by_pattern.status_code, by_pattern.json()["dropped"]) == (200, 1)
    statuses = [cache_backend.read(cache_backend.request(tenant=t)).status for t in ("tenant-a", "tenant-b")]
    assert statuses == ["hit_l2", "miss"]  # a pattern cannot name tags: the L1 of the instance is emptied


def test_admin_actions_answer_503_when_redis_is_down(
    cache_backend: CacheEnv, staff: APIClient, demo_instances: None, settings: Any
) -> None:
    settings.CACHES = caches_setting("redis://127.0.0.1:1/0", IDENTITY)
    engine.reset_engine()
    response = staff.post("/cache/invalidate", {"instance": "demo", "tags": ["list:contact"]}, format="json")
    assert response.status_code == 503
    assert "Redis is unavailable" in response.json()["detail"]
