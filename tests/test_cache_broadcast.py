"""The invalidation broadcast: each process (forked ones too) its own origin, and bad messages never stop it."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import orjson
import pytest
from redis.cluster import RedisCluster

from cacheops import broadcast, engine, keys
from cacheops.api import list_tag, record_tag
from tests.fixtures.redis import CacheEnv
from tests.test_cache_behaviour import wait_until


def origin_in_forked_child() -> str:
    """Return broadcast.origin() as a child forked from this process sees it."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer and leave at once, running nothing of the parent's
        try:
            os.write(write_end, broadcast.origin().encode())
        finally:
            os._exit(0)
    os.close(write_end)
    answer = os.read(read_end, 200).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    return answer


def test_a_forked_child_gets_its_own_origin() -> None:
    parent = broadcast.origin()
    child = origin_in_forked_child()
    assert len(child) == 32
    assert child != parent
    assert broadcast.origin() == parent


def test_a_sibling_applies_what_the_parent_broadcast_and_skips_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    applied: list[Any] = []
    subscriber = broadcast.Subscriber(lambda i, t: applied.append((i, t)), lambda i: applied.append(("all", i)))
    from_parent = orjson.loads(broadcast.invalidation_message("demo", ["list:job"]))
    child_pid = os.getpid() + 100_000
    monkeypatch.setattr(broadcast.os, "getpid", lambda: child_pid)  # as if forked
    subscriber._apply(from_parent)
    subscriber._apply(orjson.loads(broadcast.invalidation_message("demo", ["list:task"])))
    assert applied == [("demo", ["list:job"])]


def test_a_malformed_broadcast_does_not_stop_the_subscriber(cache_backend: CacheEnv) -> None:
    jobs = cache_backend.request(entity="job", policy="jobs", tool="get_jobs", tags=(list_tag("job"),))
    cache_backend.read()
    cache_backend.read(jobs)
    eng = engine.engine()
    assert eng.subscriber.ready.wait(5)
    listener = eng.subscriber.listeners[0].thread  # the `default` Redis's listener
    key = engine.plan(cache_backend.request()).key
    channel = keys.invalidation_channel()
    for bad in (b"not json", b"[1, 2]", b'{"i": "demo"}', b'{"i": "demo", "t": 5}', b'{"i": 7, "t": ["x"]}'):
        cache_backend.raw.publish(channel, bad)
    cache_backend.raw.publish(channel, orjson.dumps({"o": "another-process", "i": "demo", "t": [list_tag("contact")]}))
    assert wait_until(lambda: eng.l1.get(key) is None)
    assert eng.subscriber.listeners[0].thread is listener
    assert listener is not None
    assert listener.is_alive()
    assert eng.l1.get(engine.plan(jobs).key) is not None  # applied in place, not by a reconnect emptying L1


def test_an_invalidation_is_published_on_the_node_the_subscribers_listen_on(cache_backend: CacheEnv) -> None:
    """On a cluster, PUBLISH counts only the subscribers of the node it reached: at least this process's listener
    means it was sent where the subscriptions are, not left to the cluster bus to carry after it returned."""
    from cacheops import backend

    eng = engine.engine()
    cache_backend.read(cache_backend.request())  # starts the listener
    assert eng.subscriber.ready.wait(5)
    message = orjson.dumps({"o": "another-process", "i": "demo", "t": [record_tag("nobody")]})
    delivered = backend.call(lambda r: backend.publish(r, keys.invalidation_channel(), message))
    assert delivered >= 1


def test_a_read_waits_for_an_invalidation_the_listener_took_off_the_socket_between_its_checks(
    cache_backend: CacheEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reading thread asks whether bytes wait on the socket and whether the listener holds its lock. If the listener
    takes the lock and the bytes between those two questions (a busy machine), the read must still wait for it to
    apply the message: the socket is asked first, the lock second."""
    if cache_backend.kind == "fake":
        pytest.skip("needs a real socket to take bytes off")
    eng = engine.engine()
    listener = eng.subscriber.listeners[0]
    request = cache_backend.request(args={"size": 10, "round": "race"}, tags=(record_tag("c-race"),))
    cache_backend.read(request)
    assert cache_backend.read(request).status == "hit_l1"
    assert eng.subscriber.ready.wait(5)
    real_readable, real_dispatch = broadcast._readable, eng.subscriber._dispatch
    listener_may_read, applying, finish_applying = threading.Event(), threading.Event(), threading.Event()
    listener_idles = threading.Event()

    def readable(pubsub: Any, timeout_s: float) -> bool:
        if threading.current_thread() is listener.thread and not listener_may_read.is_set():
            listener_idles.set()
            time.sleep(timeout_s)
            return False  # the listener idles until the reading thread is between its two questions
        if threading.current_thread() is not listener.thread and not listener_may_read.is_set():
            listener_may_read.set()  # now: the listener takes the lock and the bytes, and starts applying them
            assert applying.wait(5)
        return real_readable(pubsub, timeout_s)

    def dispatch(message: dict[str, Any]) -> None:
        applying.set()
        finish_applying.wait(5)
        real_dispatch(message)

    monkeypatch.setattr(broadcast, "_readable", readable)
    monkeypatch.setattr(eng.subscriber, "_dispatch", dispatch)
    assert listener_idles.wait(5)  # the listener's loop runs the patched check (not a select begun before the patch)
    cache_backend.raw.delete(engine.plan(request).key)  # as the other process's invalidation did in Redis
    message = orjson.dumps({"o": "another-process", "i": "demo", "t": [record_tag("c-race")]})
    cache_backend.raw.publish(keys.invalidation_channel(), message)
    threading.Timer(0.3, finish_applying.set).start()
    assert cache_backend.read(request).status == "miss"


def test_an_invalidation_that_reached_the_process_applies_before_l1_answers(cache_backend: CacheEnv) -> None:
    """Once an invalidation has reached this process's socket, no read here is served the dropped entry from L1.

    The listener thread alone cannot promise it: the reading thread may hold the GIL while the message waits.
    """
    eng = engine.engine()
    subscriber = eng.subscriber.listeners[0]  # the `default` Redis's listener
    channel = keys.invalidation_channel()
    for i in range(200):
        request = cache_backend.request(args={"size": 10, "round": i}, tags=(record_tag(f"c{i}"),))
        cache_backend.read(request)
        assert cache_backend.read(request).status == "hit_l1"
        assert eng.subscriber.ready.wait(5)
        message = orjson.dumps({"o": "another-process", "i": "demo", "t": [record_tag(f"c{i}")]})
        cache_backend.raw.delete(engine.plan(request).key)  # as the other process's invalidation did in Redis
        with subscriber._read_lock:  # the listener may not read it yet: the message waits in the socket
            delivered = cache_backend.raw.publish(channel, message)
            # A cluster relays PUBLISH to every node but counts the subscribers of the node it reached only.
            assert delivered >= 1 or isinstance(cache_backend.raw, RedisCluster)
            assert wait_until(lambda: broadcast._readable(subscriber._pubsub, 0.01))
        assert cache_backend.read(request).status == "miss", f"round {i}: served from L1 after the broadcast"


def test_a_write_waits_for_redis_to_take_the_invalidation_it_refused(
    cache_backend: CacheEnv, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    """A failover refuses a write's invalidation, then the new primary takes it: the write settles before it answers,
    so Redis no longer holds the old version for any process (not only this one) to serve."""
    from cacheops.errors import CacheBackendError
    from cacheops.invalidation import settle_refused

    settings.CACHEOPS_ENGINE = {**settings.CACHEOPS_ENGINE, "WRITE_SETTLE_S": 5.0, "WRITE_SETTLE_POLL_S": 0.01}
    eng = engine.engine()
    request = cache_backend.request()
    assert cache_backend.read(request, cache_backend.counting({"status": "Lead"})).status == "miss"
    take = eng.invalidation._invalidate_l2
    refusals = iter(range(3))  # the dying primary refuses the write's invalidation and two replays, then one answers

    def failing_over(instance: str, tags: list[str]) -> int:
        if next(refusals, None) is not None:
            raise CacheBackendError("Redis refused the command")
        return take(instance, tags)

    monkeypatch.setattr(eng.invalidation, "_invalidate_l2", failing_over)
    with pytest.raises(CacheBackendError):
        eng.invalidate("demo", [record_tag("c1")])
    assert settle_refused()
    assert not eng.invalidation.pending
    answer = cache_backend.read(request, cache_backend.counting({"status": "Sold"}))
    assert answer.status == "miss"  # Redis dropped the entry: with nothing pending, L2 would have answered it
    assert answer.value == {"status": "Sold"}


def test_a_write_stops_waiting_when_redis_stays_away(
    cache_backend: CacheEnv, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    from cacheops.errors import CacheBackendError
    from cacheops.invalidation import settle_refused

    settings.CACHEOPS_ENGINE = {**settings.CACHEOPS_ENGINE, "WRITE_SETTLE_S": 0.05, "WRITE_SETTLE_POLL_S": 0.01}
    eng = engine.engine()

    def refused(*_: Any) -> int:
        raise CacheBackendError("Redis refused the command")

    monkeypatch.setattr(eng.invalidation, "_invalidate_l2", refused)
    with pytest.raises(CacheBackendError):
        eng.invalidate("demo", [record_tag("c1")])
    assert not settle_refused()
    assert eng.invalidation.pending  # still replayed before this process next reads Redis


def test_after_one_write_outwaited_redis_the_next_writes_try_once_and_answer(
    cache_backend: CacheEnv, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    """The rows of a bulk import during an outage must not wait the settle time each: once one settle timed out,
    the next ones make one replay attempt; once Redis takes the invalidations, settles wait again."""
    from cacheops.errors import CacheBackendError
    from cacheops.invalidation import settle_refused

    settings.CACHEOPS_ENGINE = {**settings.CACHEOPS_ENGINE, "WRITE_SETTLE_S": 0.3, "WRITE_SETTLE_POLL_S": 0.01}
    eng = engine.engine()
    take = eng.invalidation._invalidate_l2
    attempts: list[str] = []
    redis_away = True

    def outage(instance: str, tags: list[str]) -> int:
        attempts.append(tags[0])
        if redis_away:
            raise CacheBackendError("Redis refused the command")
        return take(instance, tags)

    monkeypatch.setattr(eng.invalidation, "_invalidate_l2", outage)
    with pytest.raises(CacheBackendError):
        eng.invalidate("demo", [record_tag("row1")])
    assert not settle_refused()  # waited its time, replaying again and again
    assert len(attempts) >= 2
    settings.CACHEOPS_ENGINE = {**settings.CACHEOPS_ENGINE, "WRITE_SETTLE_S": 30.0}
    attempts.clear()
    assert not settle_refused()  # the next write: one attempt, no 30 s wait
    assert attempts == [record_tag("row1")]
    redis_away = False
    assert settle_refused()
    assert not eng.invalidation.pending
    redis_away = True
    with pytest.raises(CacheBackendError):
        eng.invalidate("demo", [record_tag("row2")])
    settings.CACHEOPS_ENGINE = {**settings.CACHEOPS_ENGINE, "WRITE_SETTLE_S": 0.3}
    attempts.clear()
    assert not settle_refused()
    assert len(attempts) >= 2  # a new outage: the settle waits again


def test_while_a_write_invalidation_awaits_replay_redis_entries_are_not_served(
    cache_backend: CacheEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis answering reads again does not mean it dropped what a write invalidated while it refused."""
    from cacheops.errors import CacheBackendError

    eng = engine.engine()
    request = cache_backend.request()
    assert cache_backend.read(request, cache_backend.counting({"status": "Lead"})).status == "miss"

    def refused(*_: Any) -> int:
        raise CacheBackendError("Redis refused the command")

    monkeypatch.setattr(eng.invalidation, "_invalidate_l2", refused)
    with pytest.raises(CacheBackendError):
        eng.invalidate("demo", [record_tag("c1")])  # the write's invalidation is now pending
    answer = cache_backend.read(request, cache_backend.counting({"status": "Sold"}))
    assert answer.status == "miss"  # not the stale hit_l2 Redis still holds
    assert answer.value == {"status": "Sold"}
