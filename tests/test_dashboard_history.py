"""Request-path history recording and its rollup into the database: values, idempotence, pruning, Redis down.

The tests that build history run at every instant of `moved_clock`: the base instant, a year ahead, and just past
a month's and a year's end (the recorded minutes, hours and days then straddle the boundary).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from cacheops import history
from dashboard import figures, reports, rollup
from dashboard.models import Dimension, HourStat, MinuteStat
from tests.fixtures.clock import Clock

pytestmark = pytest.mark.django_db


def _minute(clock: Clock) -> tuple[int, datetime]:
    """Return the clock's minute as epoch seconds (the bucket) and as the datetime its MinuteStat rows carry."""
    minute = history.minute_of(clock.ts)
    return minute, datetime.fromtimestamp(minute, UTC)


def _traffic() -> None:
    for _ in range(3):
        history.record_read("get_contacts", "contacts", "hit_l2", 0.0015, key="jn:v1:demo:t:contact:list:a")
    history.record_read("get_contacts", "contacts", "hit_l1", 0.00004, key="jn:v1:demo:t:contact:list:a")
    history.record_read("get_contacts", "contacts", "miss", 0.2, key="jn:v1:demo:t:contact:list:b")
    history.record_upstream("get_contacts", "ok")
    history.record_read("get_job", "job_detail", "miss", 7.0, key="jn:v1:demo:t:job:get:c")
    history.record_upstream("get_job", "error")


def test_rollup_minute_writes_the_bucket_values(hist_redis: redis.Redis, moved_clock: Clock) -> None:
    _traffic()
    minute, at = _minute(moved_clock)
    assert rollup.rollup_minute(minute) == 4  # two tools, two policies
    row = MinuteStat.objects.get(minute=at, dimension=Dimension.TOOL, name="get_contacts")
    assert (row.requests, row.hit_l1, row.hit_l2, row.miss, row.upstream_ok) == (5, 1, 3, 1, 1)
    assert row.cached_hist == {"1": 1, "2": 3}
    assert row.uncached_hist == {"250": 1}
    assert row.cached_us == 3 * 1500 + 40
    job = MinuteStat.objects.get(minute=at, dimension=Dimension.TOOL, name="get_job")
    assert job.uncached_hist == {"inf": 1}
    assert job.upstream_error == 1
    policy = MinuteStat.objects.get(minute=at, dimension=Dimension.POLICY, name="contacts")
    assert (policy.requests, policy.hit_l2) == (5, 3)


def test_rerunning_a_minute_never_double_counts(hist_redis: redis.Redis, moved_clock: Clock) -> None:
    _traffic()
    minute, at = _minute(moved_clock)
    hour = at.replace(minute=0)
    rollup.rollup_minute(minute)
    rollup.rollup_minute(minute)
    rollup.rollup_hour(hour)
    rollup.rollup_hour(hour)
    assert MinuteStat.objects.filter(minute=at).count() == 4
    assert MinuteStat.objects.get(minute=at, name="get_contacts").requests == 5
    row = HourStat.objects.get(hour=hour, dimension=Dimension.TOOL, name="get_contacts")
    assert row.requests == 5
    assert row.cached_hist == {"1": 1, "2": 3}


def test_hour_sums_its_minutes(hist_redis: redis.Redis, moved_clock: Clock) -> None:
    recorded = [moved_clock.now - timedelta(minutes=ago) for ago in (10, 5, 0)]
    for when in recorded:
        with moved_clock.at(when):
            history.record_read("get_contacts", "contacts", "hit_l2", 0.001)
    moved_clock.shift(timedelta(minutes=1))  # the rollup runs in the next minute: every recorded one is complete
    written = rollup.rollup_recent()
    assert written == 6  # three minutes x (tool + policy)
    minutes = [datetime.fromtimestamp(history.minute_of(when.timestamp()), UTC) for when in recorded]
    # Every instant puts the ten minutes across an hour (at the boundary ones, across a day, a month or a year too):
    # each hour's row holds its own minutes.
    per_hour = Counter(minute.replace(minute=0) for minute in minutes)
    assert len(per_hour) == 2
    rows = HourStat.objects.filter(dimension=Dimension.TOOL, name="get_contacts")
    assert {row.hour: row.requests for row in rows} == dict(per_hour)
    totals = figures.totals(figures.window_rows(minutes[0]))
    assert totals["requests"] == 3
    assert totals["hit_rate"] == 1.0
    assert totals["p95_cached_ms"] == 1.0


def test_prune_keeps_48h_of_minutes_and_90d_of_hours(db: Any, moved_clock: Clock) -> None:
    now = moved_clock.now
    for age in (timedelta(hours=47), timedelta(hours=49)):
        MinuteStat.objects.create(minute=now - age, name="t")
    for age in (timedelta(days=89), timedelta(days=91)):
        HourStat.objects.create(hour=now - age, name="t")
    assert rollup.prune() == (1, 1)  # now: the travelled clock
    assert MinuteStat.objects.get().minute == now - timedelta(hours=47)
    assert HourStat.objects.get().hour == now - timedelta(days=89)


def test_key_counts_are_ranked_and_trimmed(hist_redis: redis.Redis, moved_clock: Clock) -> None:
    for n, key in enumerate(("a", "b", "c", "d")):
        for _ in range(n + 1):
            history.record_read("get_contacts", "contacts", "hit_l2", 0.001, key=key)
    now = moved_clock.ts
    assert history.top_keys(now, 2) == [("get_contacts|d", 4), ("get_contacts|c", 3)]
    assert history.trim_key_counts(now, keep=2) == 2
    assert [k for k, _ in history.top_keys(now, 10)] == ["get_contacts|d", "get_contacts|c"]


def test_top_queries_sum_the_days_each_period_covers(hist_redis: redis.Redis, moved_clock: Clock) -> None:
    # Reads kept in per-UTC-day sets: ten minutes ago is the day before at the boundary instants, 29 days ago is
    # another month (another year) at every instant.
    reads = {"now": (timedelta(0), 2), "10min": (timedelta(minutes=10), 3), "3d": (timedelta(days=3), 4),
             "29d": (timedelta(days=29), 5), "40d": (timedelta(days=40), 6)}  # fmt: skip
    for key, (ago, n) in reads.items():
        with moved_clock.at(moved_clock.now - ago):
            for _ in range(n):
                history.record_read("get_contacts", "contacts", "hit_l2", 0.001, key=key)

    def top(period: str) -> dict[str, int]:
        return {q["key"]: q["reads"] for q in reports.top_queries(period, 10)}

    assert top("24h") == {"now": 2, "10min": 3}
    assert top("7d") == {"now": 2, "10min": 3, "3d": 4}
    assert top("30d") == {"now": 2, "10min": 3, "3d": 4, "29d": 5}


def test_recording_buffers_and_one_flush_writes_everything(hist_redis: redis.Redis, moved_clock: Clock) -> None:
    minute, _ = _minute(moved_clock)
    history.flush()
    with history._flush_lock:  # hold off the background flusher to look at the state in between
        for _ in range(50):
            history.record_read("get_contacts", "contacts", "hit_l1", 0.00004, key="k")
        assert hist_redis.exists(history.minute_key(minute)) == 0  # nothing written on the request path
    history.flush()  # whichever flush runs, every sample is in Redis when this returns
    assert history.read_minute(minute)["get_contacts"]["requests"] == 50
    assert history.top_keys(moved_clock.ts, 1) == [("get_contacts|k", 50)]


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


def test_engine_reads_and_upstream_calls_are_recorded(hist_redis: redis.Redis, moved_clock: Clock) -> None:
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
    counters = history.read_minute(_minute(moved_clock)[0])
    assert counters["get_contacts"]["requests"] == 2
    assert counters["get_contacts"]["miss"] == 1
    assert counters["get_contacts"]["up:ok"] == 1
    assert counters["@contacts"]["requests"] == 2
    member = history.top_keys(moved_clock.ts, 1)[0][0]
    assert history.recipe(member) == {
        "instance": "demo",
        "tenant": "tenant-h",
        "tool": "get_contacts",
        "policy": "contacts",
        "args": {"size": 5},
    }
