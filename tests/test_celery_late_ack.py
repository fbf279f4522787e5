"""Integration: a Celery worker SIGKILLed mid-task loses nothing; the next worker applies the event exactly once.

Real Redis broker, real `celery -A jobnimbus_site worker` subprocesses, the session's PostgreSQL test database.
The task is held mid-way on purpose: the event names no parent records, so applying it first asks "JobNimbus"
(here a local socket that accepts and never answers) for them, after the event was claimed. The first worker is
killed there (the whole process group, as an OOM kill or a lost host would), a second worker starts against a
JobNimbus that answers 404 (the conservative drop applies), and the unacknowledged message comes back to it once
the broker's visibility timeout (CELERY_BROKER_VISIBILITY_TIMEOUT_S, 3 s here) has passed. The redelivery finds the
dead worker's claim on the event still leased: the task retries when the lease lapses and applies it then, once.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from cacheops.events import Change, digest_change, record_event
from cacheops.models import EventSource, InvalidationEvent
from cacheops.tasks import apply_invalidation_event
from tests.fixtures.celery import _shared_database_url

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[1]
INSTANCE = "lateack"
API_KEY = "lateack-server-key-0001"
SUCCEEDED = re.compile(r"Task cacheops\.apply_invalidation_event\[[0-9a-f-]+\] succeeded in [\d.]+s: (\S+)")


class JobNimbusStandIn:
    """A local HTTP port: while `hang` is set it accepts and never answers; afterwards it answers 404 at once."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.hang = threading.Event()
        self.hang.set()
        self.connections = 0
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            if self.hang.is_set():
                self.held.append(conn)
                continue
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
            conn.close()

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def _worker(queue: str, log_path: Path, base_url: str, database_url: str) -> subprocess.Popen[bytes]:
    env: dict[str, Any] = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CACHE_KEY_NAMESPACE": str(getattr(settings, "CACHEOPS_ENGINE", {}).get("KEY_NAMESPACE", "")),
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "PYTHONPATH": str(ROOT),
        "JOBNIMBUS_INSTANCES": INSTANCE,
        f"JOBNIMBUS_API_KEY_{INSTANCE.upper()}": API_KEY,
        "JOBNIMBUS_BASE_URL": base_url,
        "CELERY_BROKER_VISIBILITY_TIMEOUT_S": "3",
    }
    command = [sys.executable, "-m", "celery", "-A", "jobnimbus_site", "worker", "-Q", queue, "--pool", "prefork",
               "--concurrency", "1", "--hostname", f"{uuid.uuid4().hex[:8]}@%h", "--without-gossip",
               "--without-mingle", "--without-heartbeat", "--loglevel", "INFO"]  # fmt: skip
    with log_path.open("wb") as log_file:
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )


def _wait(what: str, predicate: Any, timeout_s: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"{what} not within {timeout_s} s" + (f":\n{log.read_text(errors='replace')}" if log else ""))


@pytest.fixture
def stand_in() -> Iterator[JobNimbusStandIn]:
    server = JobNimbusStandIn()
    yield server
    server.close()


def _kill_group(process: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        return
    process.wait(timeout=15)


def test_a_worker_killed_mid_task_loses_nothing_and_the_event_is_applied_once(
    stand_in: JobNimbusStandIn, tmp_path: Path
) -> None:
    database_url = _shared_database_url(connection.settings_dict)
    if database_url is None:
        pytest.skip("worker processes need a database they can share: run with DATABASE_URL=postgres://...")
    queue = f"late-ack-{uuid.uuid4().hex[:12]}"
    base_url = f"http://127.0.0.1:{stand_in.port}/api1"
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = _worker(queue, first_log, base_url, database_url)
    second = None
    try:
        _wait("the first worker ready", lambda: " ready." in first_log.read_text(errors="replace"), 60, first_log)
        # A task whose event names no parents: applying it asks JobNimbus first (held there, after the claim).
        change = Change(INSTANCE, "task", "updated", f"task-{uuid.uuid4().hex[:8]}")
        event = record_event(change, source=EventSource.WEBHOOK, digest=digest_change(change, time.time()))
        apply_invalidation_event.apply_async((event.pk,), queue=queue)

        def claimed() -> bool:
            return InvalidationEvent.objects.filter(pk=event.pk, claimed_at__isnull=False).exists()

        _wait("the first worker to claim the event", claimed, 30, first_log)
        _wait("the first worker to call JobNimbus", lambda: stand_in.connections >= 1, 30, first_log)
        assert InvalidationEvent.objects.get(pk=event.pk).applied is None
        _kill_group(first, signal.SIGKILL)  # mid-task: claimed, not applied, the message not acknowledged

        stand_in.hang.clear()  # the next worker's JobNimbus answers (404: the conservative drop applies)
        # kombu looks for messages past their visibility timeout when a worker starts, then only every ~100 s
        # (unacked_restore_interval x unacked_restore_throttle): the replacement starts once the 3 s have passed.
        time.sleep(4)
        second = _worker(queue, second_log, base_url, database_url)
        _wait("the second worker ready", lambda: " ready." in second_log.read_text(errors="replace"), 60, second_log)

        def applied() -> bool:
            return InvalidationEvent.objects.filter(pk=event.pk, applied__isnull=False).exists()

        _wait("the event applied by the second worker", applied, 60, second_log)
        time.sleep(4)  # longer than the visibility timeout: a second copy of the message would have run by now
        row = InvalidationEvent.objects.get(pk=event.pk)
        second_text = second_log.read_text(errors="replace")
        applications = [value for value in SUCCEEDED.findall(second_text) if value != "None"]
        assert len(applications) == 1, second_text  # applied exactly once, by the second worker
        assert not SUCCEEDED.findall(first_log.read_text(errors="replace"))  # the first never finished it
        assert row.applied is not None
        assert row.error == ""
        assert row.attempts == 2  # the killed worker's claim and the second worker's
    finally:
        _kill_group(first, signal.SIGKILL)
        if second is not None:
            _kill_group(second, signal.SIGTERM)
