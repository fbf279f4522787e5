"""`make run`'s SQLite takes concurrent writers from several processes (web, worker, beat) without
`database is locked`: transactions are IMMEDIATE (the write lock is taken up front, where the busy timeout can
wait for it) and the journal is WAL (readers never block the writer)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.fixtures.redis import require_real_redis

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Each process reads, then writes, inside one transaction — the pattern of the dashboard's rollup and alert jobs.
# In a deferred transaction the second writer's lock upgrade fails at once with "database is locked" (SQLite cannot
# wait there without risking a deadlock); between rounds it runs the real beat jobs that collided in `make run`.
WRITER = """
import time
import django
django.setup()
from django.db import connection, transaction
from dashboard import tasks

for round_ in range(ROUNDS):
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM contention")
            time.sleep(0.02)
            cursor.execute("INSERT INTO contention (writer) VALUES (%s)", [WRITER_ID])
    tasks.rollup_metrics()
    tasks.evaluate_alerts()
print("done")
"""


def _env(db: Path, namespace: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "jobnimbus_site.settings",
        "DJANGO_SECRET_KEY": "test-only-secret",
        "DJANGO_DEBUG": "false",
        "DATABASE_URL": f"sqlite:///{db}",
        "REDIS_URL": require_real_redis(),
        "CACHE_KEY_NAMESPACE": namespace,
        "LOG_LEVEL": "WARNING",
    }


def test_concurrent_beat_jobs_and_writers_never_hit_database_is_locked(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite3"
    env = _env(db, f"test-sqlite-{uuid.uuid4().hex[:10]}:")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=120)
    create = "from django.db import connection; connection.cursor().execute('CREATE TABLE contention (writer int)')"
    subprocess.run([sys.executable, "manage.py", "shell", "-c", create], cwd=ROOT, env=env, check=True, timeout=60)

    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER.replace("ROUNDS", "15").replace("WRITER_ID", str(n))],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for n in range(3)
    ]
    outputs = [proc.communicate(timeout=240)[0] for proc in writers]
    for proc, output in zip(writers, outputs, strict=True):
        assert proc.returncode == 0, output
        assert "database is locked" not in output
    count = "from django.db import connection; c = connection.cursor(); c.execute('SELECT count(*) FROM contention')\n"
    count += "print(c.fetchone()[0])"
    rows = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", count],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    assert rows.stdout.split()[-1] == "45"  # every write of every process landed
