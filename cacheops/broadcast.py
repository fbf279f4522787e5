"""One pub/sub subscriber thread per process: wakes single-flight waiters when a key is filled, and applies
invalidation broadcasts to this process's L1.

Started lazily on first use (after a gunicorn fork, in the child), reconnects with backoff. While it is
disconnected, invalidations may be missed, so L1 is emptied on every (re)connect.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import orjson
import redis
from redis.exceptions import RedisClusterException

from cacheops import backend, keys, metrics

logger = logging.getLogger(__name__)

OnInvalidate = Callable[[str, list[str]], Any]
OnClear = Callable[[str | None], Any]


# (pid, id): a forked child (Celery prefork, gunicorn --preload) must not share its parent's id, or siblings
# would take each other's invalidations for their own and skip them.
_origin: tuple[int, str] = (0, "")


def origin() -> str:
    """Return this process's broadcast origin id, renewed when the pid changes (after a fork)."""
    global _origin
    pid, value = _origin
    if pid != os.getpid():
        # No lock (a lock held at fork time would deadlock the child): two threads racing here may both make
        # an id; the loser's own messages then come back and are applied twice, which is harmless.
        value = uuid.uuid4().hex
        _origin = (os.getpid(), value)
    return value


class Subscriber:
    """The process's listener on the fill and invalidation channels: one thread per Redis the cache uses.

    An instance with its own Redis (cacheops.redis_topology) announces its fills there, so each Redis is listened
    to; the waiters and the L1 callbacks are shared. `ready` is the `default` Redis's listener's (`listeners[0]`).
    """

    def __init__(self, on_invalidate: OnInvalidate, on_clear: OnClear, targets: list[str | None] | None = None) -> None:
        self.on_invalidate = on_invalidate
        self.on_clear = on_clear
        self._waiters: dict[str, set[threading.Event]] = defaultdict(set)
        self._lock = threading.Lock()
        self._fill_channel = keys.fill_channel()
        self._invalidation_channel = keys.invalidation_channel()
        self.listeners = [_Listener(self, target) for target in (targets or [None])]

    @property
    def ready(self) -> threading.Event:
        """Set while the `default` Redis's subscription is live."""
        return self.listeners[0].ready

    def ensure_started(self) -> None:
        """Start the listener threads unless they run in this process already."""
        for listener in self.listeners:
            listener.ensure_started()

    def stop(self) -> None:
        """Stop the listeners and wait for them."""
        for listener in self.listeners:
            listener.stop_event.set()
        for listener in self.listeners:
            listener.join()

    def watch(self, key: str) -> threading.Event:
        """Return an event set when `key` is announced filled; call `unwatch` when done."""
        event = threading.Event()
        with self._lock:
            self._waiters[key].add(event)
        return event

    def unwatch(self, key: str, event: threading.Event) -> None:
        """Stop watching `key` with `event`."""
        with self._lock:
            events = self._waiters.get(key)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._waiters[key]

    def drain_pending(self) -> None:
        """Apply every message that has already reached this process, before the caller serves from L1.

        The listener threads apply messages as they come, but a busy reading thread can hold the GIL for its
        switch interval (5 ms) after an invalidation arrived: without this, it could serve an entry that Redis
        and the writer already consider gone. Costs one non-blocking poll per socket when nothing is waiting.
        """
        for listener in self.listeners:
            listener.drain_pending()

    def _dispatch(self, message: dict[str, Any]) -> None:
        channel = message["channel"].decode() if isinstance(message["channel"], bytes) else message["channel"]
        data = message["data"]
        if channel == self._fill_channel:
            self._wake(data.decode() if isinstance(data, bytes) else str(data))
        elif channel == self._invalidation_channel:
            try:
                payload = parse_invalidation(data)
            except ValueError as exc:
                metrics.ERRORS.labels("subscriber_message").inc()
                logger.warning("ignored a malformed cache invalidation message: %s", exc)
                return
            self._apply(payload)

    def _wake(self, key: str) -> None:
        with self._lock:
            events = list(self._waiters.get(key, ()))
        for event in events:
            event.set()

    def _apply(self, payload: dict[str, Any]) -> None:
        if payload.get("o") == origin():
            return  # this process applied it already, synchronously
        if payload.get("all"):
            self.on_clear(payload.get("i"))
        else:
            self.on_invalidate(payload["i"], list(payload["t"]))


class _Listener:
    """One subscription (and its thread) on one Redis: `target` routes to it (None: `default`)."""

    def __init__(self, owner: Subscriber, target: str | None) -> None:
        self.owner = owner
        self.target = target
        self.ready = threading.Event()
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._connected_before = False
        # Every read of the pub/sub connection holds this: the listener thread, and readers draining what has
        # already arrived before they serve from L1 (see drain_pending).
        self._read_lock = threading.Lock()
        self._pubsub: Any = None

    def ensure_started(self) -> None:
        """Start the listener thread unless it runs in this process already."""
        if self.thread is not None and self._pid == os.getpid() and self.thread.is_alive():
            return
        with self._lock:
            if self.thread is not None and self._pid == os.getpid() and self.thread.is_alive():
                return
            self._pid = os.getpid()
            self.stop_event.clear()
            self.thread = threading.Thread(target=self._run, name="cacheops-subscriber", daemon=True)
            self.thread.start()

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join(timeout=5)

    def _run(self) -> None:
        delay = 0.1
        while not self.stop_event.is_set():
            if self._listened():
                delay = 0.1
                continue
            self.ready.clear()
            metrics.ERRORS.labels("subscriber").inc()
            self.stop_event.wait(delay)
            delay = min(delay * 2, 5.0)

    def _listened(self) -> bool:
        """Listen until stopped (True) or until the connection, or a bug, ends it (False: reconnect)."""
        try:
            self._listen()
        except (redis.RedisError, RedisClusterException, OSError) as exc:
            logger.warning("cache invalidation subscriber disconnected (%s); retrying", exc.__class__.__name__)
            return False
        except Exception:
            # A bug must not end the thread silently: reconnecting empties L1, the safe state.
            logger.exception("cache invalidation subscriber failed; reconnecting")
            return False
        return True

    def _listen(self) -> None:
        owner = self.owner
        # A cluster's PUBLISH reaches every node: a RedisCluster's pubsub subscribes on one node (the channel's).
        pubsub = (backend.client(self.target) if self.target is not None else backend.client()).pubsub(
            ignore_subscribe_messages=True
        )
        try:
            pubsub.subscribe(owner._fill_channel, owner._invalidation_channel)
            pubsub.get_message(timeout=1.0)  # the subscribe confirmation: we are live from here on
            if self._connected_before:
                owner.on_clear(None)  # anything broadcast while we were away is lost: drop what it might have hit
            self._connected_before = True
            with self._read_lock:
                self._pubsub = pubsub
            self.ready.set()
            while not self.stop_event.is_set():
                if _readable(pubsub, 0.1):
                    with self._read_lock:
                        self._drain(pubsub)
        finally:
            self.ready.clear()
            with self._read_lock:
                self._pubsub = None
                pubsub.close()

    def drain_pending(self) -> None:
        """Apply every message that has already reached this subscription (see Subscriber.drain_pending)."""
        pubsub = self._pubsub
        if pubsub is None:
            return
        # The socket first, the lock second: the listener takes a message's bytes off the socket only while holding
        # the lock, and holds it until the message is applied. Asked the other way round, the listener could take
        # the lock and the bytes between the two questions, and this read would answer from L1 before it applied them.
        try:
            if _readable(pubsub, 0.0) or self._read_lock.locked():
                with self._read_lock:
                    if self._pubsub is pubsub:
                        self._drain(pubsub)
        except Exception as exc:  # noqa: BLE001 - a read must never fail here; the listener reconnects and clears L1
            metrics.ERRORS.labels("subscriber").inc()
            logger.warning("draining cache invalidations before a read failed: %s", exc.__class__.__name__)

    def _drain(self, pubsub: Any) -> None:
        """Read and apply every message available now (the read lock is held).

        get_message answers None for a skipped subscribe confirmation, and with hiredis for a read that only
        filled its parser, so the loop ends when the connection has nothing more to read, not at the first None.
        """
        while True:
            message = pubsub.get_message(timeout=0.0)
            if message is not None:
                self.owner._dispatch(message)
            elif not _can_read(pubsub):
                return


def _can_read(pubsub: Any) -> bool:
    """Return whether the subscription's connection holds more to read (none yet: nothing)."""
    connection = pubsub.connection
    return connection is not None and bool(connection.can_read(timeout=0))


def _readable(pubsub: Any, timeout_s: float) -> bool:
    """Return whether the subscription's socket (or redis-py's buffer of it) holds unread bytes."""
    connection = pubsub.connection
    sock = getattr(connection, "_sock", None) if connection is not None else None
    if sock is None:
        return True  # not connected (or an unknown transport): let get_message find out
    # redis-py's own parser keeps read-ahead bytes in a SocketBuffer; hiredis's are parsed at once, and _drain
    # reads until nothing complete is left, so for it only the socket can hold a pending message.
    unread = getattr(getattr(getattr(connection, "_parser", None), "_buffer", None), "unread_bytes", None)
    if callable(unread) and unread():
        return True
    try:
        ready, _, _ = select.select([sock], [], [], timeout_s)
    except (TypeError, ValueError, OSError):  # not a real socket (fakeredis in tests): let get_message find out
        if timeout_s:
            time.sleep(timeout_s)  # the listener loop must not spin
        return True
    return bool(ready)


def parse_invalidation(data: bytes) -> dict[str, Any]:
    """Return the payload of an invalidation message; raise ValueError naming what is wrong with it."""
    payload = orjson.loads(data)  # orjson.JSONDecodeError is a ValueError
    if not isinstance(payload, dict):
        raise ValueError(f"expected an object, got {type(payload).__name__}")
    if payload.get("all"):
        if not isinstance(payload.get("i"), str | None):
            raise ValueError("'i' must be an instance name or null")
        return payload
    if not isinstance(payload.get("i"), str):
        raise ValueError("'i' must be an instance name")
    tags = payload.get("t")
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise ValueError("'t' must be a list of tags")
    return payload


def invalidation_message(instance: str | None, tags: list[str] | None) -> bytes:
    """Return the broadcast payload for dropping `tags` of `instance` (tags None: everything of it)."""
    if tags is None:
        return orjson.dumps({"o": origin(), "i": instance, "all": True})
    return orjson.dumps({"o": origin(), "i": instance, "t": tags})
