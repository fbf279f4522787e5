"""The engine's one observation sink (cacheops.observe), the one hit-rate definition (cacheops.hit_rate), the
history's Redis writes under the one failure policy, and the engine package's movable clock."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from cacheops import backend, history, metrics, observe, status
from cacheops.breakers import redis_breaker, reset_breakers
from cacheops.engine import clock
from cacheops.hit_rate import hit_rate, hits
from dashboard import figures
from tests.fixtures.clock import Clock

COUNTS = {"hit_l1": 3, "hit_l2": 1, "stale": 1, "coalesced": 1, "miss": 4, "bypass": 10}


def test_hits_over_hits_and_misses_with_bypass_counting_neither_way() -> None:
    assert hits(COUNTS) == 6
    assert isinstance(hits(COUNTS), int)
    assert hit_rate(COUNTS) == 0.6
    assert hit_rate({}) is None
    assert hit_rate({"bypass": 5}) is None


def test_stats_and_the_dashboard_agree_on_the_hit_rate() -> None:
    as_floats = {name: float(n) for name, n in COUNTS.items()}
    assert status._rates(as_floats)["hitRate"] == figures.derived(COUNTS, {}, {})["hit_rate"] == 0.6


def test_a_busy_refusal_is_counted_in_prometheus_but_not_as_a_jobnimbus_call(
    hist_redis: redis.Redis, moved_clock: Clock
) -> None:
    def busy() -> float:
        return metrics.snapshot().get("jn_cache_upstream_calls", {}).get(("busy", "observe_tool"), 0.0)

    before = busy()
    observe.upstream("observe_tool", "busy")
    observe.upstream("observe_tool", "ok")
    assert busy() == before + 1
    counters = history.read_minute(history.minute_of(moved_clock.ts))["observe_tool"]
    assert counters == {"up:ok": 1}


def test_an_open_redis_breaker_drops_the_flush_without_touching_redis(
    hist_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    breaker = redis_breaker()
    for _ in range(100):
        if breaker.state == "OPEN":
            break
        breaker.record_failure()
    assert breaker.state == "OPEN"

    def no_redis() -> Any:
        raise AssertionError("the history reached Redis through an open breaker")

    monkeypatch.setattr(backend, "client", no_redis)
    before = history.dropped()
    with history._flush_lock:  # the background flusher must not take this sample first
        history.record_read("get_contacts", "contacts", "miss", 0.1, key="k")
        assert history._write(*history._take()) == 0
    assert history.dropped() >= before + 1
    reset_breakers()


def test_moving_the_package_wall_clock_moves_every_engine_module(monkeypatch: pytest.MonkeyPatch) -> None:
    from cacheops import engine

    monkeypatch.setattr(engine, "wall_clock", lambda: 42.0)
    assert clock.now() == 42.0
