"""No stale data after a change: invalidations racing reads, flights, refreshes JobNimbus refuses, admin clears.

Each test forces its interleaving by hooking the engine at the step where the race happens (no sleeps), and runs
against fakeredis and the real Redis, compression on and off.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from cacheops import backend, engine, keys
from cacheops.api import invalidate_tags, list_tag, record_tag
from cacheops.engine import refresh
from tests.fixtures.redis import CacheEnv, engine_setting_for
from tests.test_cache_behaviour import HOUR, drop_l1, entry_keys


def revoked(env: CacheEnv) -> Callable[[], Any]:
    """Return a fetch JobNimbus answers with 401 (the key was revoked): an error, not an outage."""

    def fetch() -> Any:
        env.calls.append("revoked")
        raise PermissionError("401 Unauthorized")

    return fetch


def blocked_fetch(env: CacheEnv, value: Any) -> tuple[Callable[[], Any], threading.Event, threading.Event]:
    """Return a fetch that signals it started and waits for release, with its two events."""
    started, release = threading.Event(), threading.Event()

    def fetch() -> Any:
        env.calls.append("blocked")
        started.set()
        release.wait(5)
        return value

    return fetch, started, release


def in_thread(call: Callable[[], Any], name: str = "reader") -> tuple[threading.Thread, list[Any]]:
    """Start `call` in a thread; return it and the list its result lands in."""
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(call()), name=name)
    thread.start()
    return thread, results


def test_an_invalidation_between_the_redis_read_and_the_l1_put_is_not_undone(
    cache_backend: CacheEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache_backend.read()
    drop_l1()
    eng = engine.engine()
    real_get = eng.tiers.get

    def get_then_a_write_lands(p: engine.Plan) -> Any:
        stored = real_get(p)
        invalidate_tags("demo", [record_tag("c1")])
        return stored

    monkeypatch.setattr(eng.tiers, "get", get_then_a_write_lands)
    racing = cache_backend.read()
    monkeypatch.setattr(eng.tiers, "get", real_get)
    assert (racing.status, racing.value) == ("hit_l2", {"n": 1})  # its caller gets what it read...
    after = cache_backend.read(fetch=cache_backend.counting({"version": "after"}))
    assert (after.status, after.value) == ("miss", {"version": "after"})  # ...but L1 did not keep it


def test_a_read_between_the_local_and_the_redis_invalidation_leaves_no_stale_l1(
    cache_backend: CacheEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache_backend.read()
    drop_l1()
    real_invalidate = backend.invalidate
    between: list[Any] = []

    def a_read_first(*args: Any) -> int:
        between.append(cache_backend.read())  # after L1 was dropped, before Redis is
        return real_invalidate(*args)

    monkeypatch.setattr(backend, "invalidate", a_read_first)
    invalidate_tags("demo", [record_tag("c1")])
    monkeypatch.setattr(backend, "invalidate", real_invalidate)
    assert between[0].status == "hit_l2"
    after = cache_backend.read(fetch=cache_backend.counting({"version": "after"}))
    assert (after.status, after.value) == ("miss", {"version": "after"})


def test_a_reader_arriving_after_an_invalidation_does_not_join_the_older_flight(
    cache_backend: CacheEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    eng = engine.engine()
    decided = threading.Event()
    for name in ("_follow", "_across_processes"):  # the late reader either joins the flight or leads its own
        real = getattr(eng.flights, name)

        def noting(*args: Any, _real: Any = real) -> Any:
            if threading.current_thread().name == "late-reader":
                decided.set()
            return _real(*args)

        monkeypatch.setattr(eng.flights, name, noting)
    fetch, started, release = blocked_fetch(cache_backend, {"version": "before"})
    first, first_result = in_thread(lambda: cache_backend.read(fetch=fetch))
    assert started.wait(5)
    invalidate_tags("demo", [record_tag("c1")])
    after = cache_backend.counting({"version": "after"})
    late, late_result = in_thread(lambda: cache_backend.read(fetch=after), name="late-reader")
    assert decided.wait(5)
    release.set()
    first.join(10)
    late.join(10)
    assert first_result[0].value == {"version": "before"}
    assert (late_result[0].status, late_result[0].value) == ("miss", {"version": "after"})


def test_a_refresh_jobnimbus_refuses_drops_the_entry_so_the_next_read_reports_it(
    cache_backend: CacheEnv, cache_clock: list[float]
) -> None:
    cache_backend.read()
    cache_clock[0] += HOUR + 60  # inside stale-while-revalidate
    drop_l1()
    assert cache_backend.read(fetch=revoked(cache_backend)).status == "stale"
    assert engine.engine().wait_idle()
    with pytest.raises(PermissionError):
        cache_backend.read(fetch=revoked(cache_backend))
    assert cache_backend.calls == ["fetch", "revoked", "revoked"]


def test_an_early_refresh_jobnimbus_refuses_drops_the_l1_copy_too(
    cache_backend: CacheEnv, cache_clock: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache_backend.settings.CACHEOPS_ENGINE = engine_setting_for(cache_backend.namespace, XFETCH_BETA=1.0)
    engine.reset_engine()
    monkeypatch.setattr(refresh.random, "random", lambda: 0.9)  # -ln(0.1) = 2.3 fetch durations of lead

    def costly() -> Any:
        cache_backend.calls.append("fetch")
        time.sleep(0.05)
        return {"n": 1}

    cache_backend.read(fetch=costly)
    cache_clock[0] += HOUR - 0.02  # inside XFetch's lead: an L2 hit, kept in L1, refreshed in the background
    drop_l1()
    assert cache_backend.read(fetch=revoked(cache_backend)).status == "hit_l2"
    assert engine.engine().wait_idle()
    with pytest.raises(PermissionError):
        cache_backend.read(fetch=revoked(cache_backend))
    assert cache_backend.calls == ["fetch", "revoked", "revoked"]


@pytest.mark.parametrize("action", [(None, None), ("demo", None), ("demo", "tenant-a:*")])
def test_an_admin_clear_refuses_a_fetch_that_began_before_it(
    cache_backend: CacheEnv, action: tuple[str | None, str | None]
) -> None:
    fetch, started, release = blocked_fetch(cache_backend, {"version": "before the clear"})
    reader, result = in_thread(lambda: cache_backend.read(fetch=fetch))
    assert started.wait(5)
    engine.engine().clear_matching(*action)
    release.set()
    reader.join(10)
    assert result[0].value == {"version": "before the clear"}
    assert entry_keys(cache_backend) == []
    assert cache_backend.read().status == "miss"


def test_generation_counters_survive_an_admin_clear(cache_backend: CacheEnv) -> None:
    invalidate_tags("demo", [record_tag("c1")])
    cache_backend.read()
    counter = keys.generation_key("demo", record_tag("c1"))
    assert engine.engine().clear_matching(None) >= 1
    # Deleted, the next invalidation would count 1 again and pass a fetch that saw 1 before the clear.
    assert cache_backend.raw.get(counter) == b"1"
    assert entry_keys(cache_backend) == []


def test_entity_invalidation_reaches_entries_that_list_that_entity(cache_backend: CacheEnv) -> None:
    calendar = cache_backend.request(
        entity="activity",
        op="calendar",
        policy="calendar",
        tool="get_calendar_activities",
        tags=(list_tag("task"), list_tag("activity")),
    )
    cache_backend.read(calendar)
    assert invalidate_tags("demo", [keys.entity_tag("task")]) == 1
    assert cache_backend.read(calendar).status == "miss"
