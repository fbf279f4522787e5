"""Request-path history recording and its rollup into the database: values, idempotence, pruning, Redis down."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from cacheops import history
from dashboard import figures, rollup
from dashboard.models import Dimension, HourStat, MinuteStat
from tests.fixtures.browser import T0

pytestmark = pytest.mark.django_db

MINUTE = datetime.fromtimestamp(T0, UTC)


def _traffic() -> None:
    for _ in range(3):
        history.record_read("get_contacts", "contacts", "hit_l2", 0.0015, key="jn:v1:demo:t:contact:list:a")
    history.record_read("get_contacts", "contacts", "hit_l1", 0.00004, key="jn:v1:demo:t:contact:list:a")
    history.record_read("get_contacts", "contacts", "miss", 0.2, key="jn:v1:demo:t:contact:list:b")
    history.record_upstream("get_contacts", "ok")
    history.record_read("get_job", "job_detail", "miss", 7.0, key="jn:v1:demo:t:job:get:c")
    history.record_upstream("get_job", "error")


def test_rollup_minute_writes_the_bucket_values(hist_redis: redis.Redis) -> None:
    _traffic()
    assert rollup.rollup_minute(int(T0)) == 4  # two tools, two policies
    row = MinuteStat.objects.get(minute=MINUTE, dimension=Dimension.TOOL, name="get_contacts")
    assert (row.requests, row.hit_l1, row.hit_l2, row.miss, row.upstream_ok) == (5, 1, 3, 1, 1)
    assert row.cached_hist == {"1": 1, "2": 3}
    assert row.uncached_hist == {"250": 1}
    assert row.cached_us == 3 * 1500 + 40
    job = MinuteStat.objects.get(minute=MINUTE, dimension=Dimension.TOOL, name="get_job")
    assert job.uncached_hist == {"inf": 1}
    assert job.upstream_error == 1
    policy = MinuteStat.objects.get(minute=MINUTE, dimension=Dimension.POLICY, name="contacts")
    assert (policy.requests, policy.hit_l2) == (5, 3)


def test_rerunning_a_minute_never_double_counts(hist_redis: redis.Redis) -> None:
    _traffic()
    rollup.rollup_minute(int(T0))
    rollup.rollup_minute(int(T0))
    rollup.rollup_hour(MINUTE)
    rollup.rollup_hour(MINUTE)
    assert MinuteStat.objects.filter(minute=MINUTE).count() == 4
    assert MinuteStat.objects.get(minute=MINUTE, name="get_contacts").requests == 5
    hour = HourStat.objects.get(hour=MINUTE, dimension=Dimension.TOOL, name="get_contacts")
    assert hour.requests == 5
    assert hour.cached_hist == {"1": 1, "2": 3}


def test_hour_sums_its_minutes(hist_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    for offset in (0, 60, 120):
        monkeypatch.setattr(history, "clock", lambda o=offset: T0 + o)
        history.record_read("get_contacts", "contacts", "hit_l2", 0.001)
    written = rollup.rollup_recent(now=T0 + 180)
    assert written == 6  # three minutes x (tool + policy)
    assert HourStat.objects.get(hour=MINUTE, dimension=Dimension.TOOL, name="get_contacts").requests == 3
    totals = figures.totals(figures.window_rows(MINUTE))
    assert totals["requests"] == 3
    assert totals["hit_rate"] == 1.0
    assert totals["p95_cached_ms"] == 1.0


def test_prune_keeps_48h_of_minutes_and_90d_of_hours(db: Any) -> None:
    now = MINUTE
    for age in (timedelta(hours=47), timedelta(hours=49)):
        MinuteStat.objects.create(minute=now - age, name="t")
    for age in (timedelta(days=89), timedelta(days=91)):
        HourStat.objects.create(hour=now - age, name="t")
    assert rollup.prune(now) == (1, 1)
    assert MinuteStat.objects.get().minute == now - timedelta(hours=47)
    assert HourStat.objects.get().hour == now - timedelta(days=89)


def test_key_counts_are_ranked_and_trimmed(hist_redis: redis.Redis) -> None:
    for n, key in enumerate(("a", "b", "c", "d")):
        for _ in range(n + 1):
            history.record_read("get_contacts", "contacts", "hit_l2", 0.001, key=key)
    assert history.top_keys(T0, 2) == [("get_contacts|d", 4), ("get_contacts|c", 3)]
    assert history.trim_key_counts(T0, keep=2) == 2
    assert [k for k, _ in history.top_keys(T0, 10)] == ["get_contacts|d", "get_contacts|c"]


def test_recording_buffers_and_one_flush_writes_everything(hist_redis: redis.Redis) -> None:
    history.flush()
    with history._flush_lock:  # hold off the background flusher to look at the state in between
        for _ in range(50):
            history.record_read("get_contacts", "contacts", "hit_l1", 0.00004, key="k")
        assert hist_redis.exists(history.minute_key(int(T0))) == 0  # nothing written on the request path
    history.flush()  # whichever flush runs, every sample is in Redis when this returns
    assert history.read_minute(int(T0))["get_contacts"]["requests"] == 50
    assert history.top_keys(T0, 1) == [("get_contacts|k", 50)]


def test_redis_down_drops_the_sample_without_raising(settings: Any) -> None:
    from cacheops.breakers import reset_breakers
    from tests.fixtures.redis import IDENTITY, caches_setting

    settings.CACHES = caches_setting("redis://127.0.0.1:1/0", IDENTITY)
    reset_breakers()
    before = history.dropped()
    history.record_read("get_contacts", "contacts", "miss", 0.1, key="k")
    history.record_upstream("get_contacts", "ok")
    history.flush()
    assert history.dropped() >= before + 2  # (the background flusher may drop older samples too)


def test_engine_reads_and_upstream_calls_are_recorded(hist_redis: redis.Redis) -> None:
    from cacheops.api import CacheScope, ReadRequest, list_tag, read_through

    request = ReadRequest(
        scope=CacheScope("demo", "tenant-h"),
        entity="contact",
        op="list",
        policy="contacts",
        args={"size": 5},
        tool="get_contacts",
        tags=(list_tag("contact"),),
    )
    assert read_through(request, lambda: {"results": []}).status == "miss"
    assert read_through(request, lambda: {"results": []}).status in {"hit_l1", "hit_l2"}
    counters = history.read_minute(int(T0))
    assert counters["get_contacts"]["requests"] == 2
    assert counters["get_contacts"]["miss"] == 1
    assert counters["get_contacts"]["up:ok"] == 1
    assert counters["@contacts"]["requests"] == 2
    member = history.top_keys(T0, 1)[0][0]
    assert history.recipe(member) == {
        "instance": "demo",
        "tenant": "tenant-h",
        "tool": "get_contacts",
        "policy": "contacts",
        "args": {"size": 5},
    }
