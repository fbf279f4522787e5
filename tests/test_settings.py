"""Settings validation: malformed environment values stop start-up with the variable's name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _check(env_overrides: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBNIMBUS_", "REDIS_", "DJANGO_"))}
    env.update({"DJANGO_SECRET_KEY": "x" * 40, "PYTHONPATH": str(ROOT)})
    env.update(env_overrides)
    code = "import django; django.setup(); from django.conf import settings; print(settings.REDIS_URL)"
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "DJANGO_SETTINGS_MODULE": "jobnimbus_site.settings"},
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"DJANGO_DEBUG": "maybe"}, "DJANGO_DEBUG"),
        ({"REDIS_PORT": "sixty"}, "REDIS_PORT"),
        ({"REDIS_URL": "http://nope"}, "REDIS_URL"),
        ({"JOBNIMBUS_BASE_URL": "ftp://x"}, "JOBNIMBUS_BASE_URL"),
        ({"JOBNIMBUS_INSTANCES": "good,bad name"}, "JOBNIMBUS_INSTANCES"),
        ({"JOBNIMBUS_INSTANCES": "acme", "JOBNIMBUS_TIME_ZONE_ACME": "Mars/Olympus"}, "JOBNIMBUS_TIME_ZONE_ACME"),
        ({"JOBNIMBUS_INSTANCES": "acme", "JOBNIMBUS_TIME_ZONE_ACME": "../etc/passwd"}, "JOBNIMBUS_TIME_ZONE_ACME"),
        ({"JOBNIMBUS_INSTANCES": "acme", "JOBNIMBUS_CURRENCY_ACME": "dollars"}, "JOBNIMBUS_CURRENCY_ACME"),
        ({"JOBNIMBUS_READ_TIMEOUT_S": "-1"}, "JOBNIMBUS_READ_TIMEOUT_S"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"DATABASE_URL": "notaurl"}, "DATABASE_URL"),
    ],
)
def test_malformed_value_names_the_variable(overrides: dict[str, str], named: str) -> None:
    result = _check(overrides)
    assert result.returncode != 0
    assert named in result.stderr
    assert "ImproperlyConfigured" in result.stderr


def test_an_instance_names_its_time_zone_and_currency() -> None:
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.JOBNIMBUS_INSTANCES['acme']['time_zone'], settings.JOBNIMBUS_INSTANCES['acme']['currency'], "
        "settings.JOBNIMBUS_INSTANCES['demo']['time_zone'], settings.JOBNIMBUS_INSTANCES['demo']['currency'])"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBNIMBUS_", "REDIS_", "DJANGO_"))}
    env.update(
        DJANGO_SECRET_KEY="x" * 40,
        PYTHONPATH=str(ROOT),
        DJANGO_SETTINGS_MODULE="jobnimbus_site.settings",
        JOBNIMBUS_INSTANCES="acme,demo",
        JOBNIMBUS_TIME_ZONE_ACME="America/Chicago",
        JOBNIMBUS_CURRENCY_ACME="cad",
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["America/Chicago", "CAD", "UTC", "USD"]


def test_missing_secret_key_is_an_error_with_debug_off() -> None:
    result = _check({"DJANGO_SECRET_KEY": "", "DJANGO_DEBUG": "false"})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


def test_debug_on_runs_without_secret_key() -> None:
    result = _check({"DJANGO_SECRET_KEY": "", "DJANGO_DEBUG": "true"})
    assert result.returncode == 0, result.stderr


def test_redis_url_built_from_plan_variables() -> None:
    result = _check(
        {
            "REDIS_HOST": "cache.internal",
            "REDIS_PORT": "6380",
            "REDIS_PASSWORD": "p@ss",
            "REDIS_DB": "2",
            "REDIS_TLS_ENABLED": "true",
        }
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "rediss://:p%40ss@cache.internal:6380/2"


def test_unix_socket_redis_url_gives_a_socket_broker() -> None:
    code = "import django; django.setup(); from django.conf import settings; print(settings.CELERY_BROKER_URL)"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBNIMBUS_", "REDIS_", "DJANGO_", "CELERY_"))}
    env.update(
        DJANGO_SECRET_KEY="x" * 40,
        PYTHONPATH=str(ROOT),
        DJANGO_SETTINGS_MODULE="jobnimbus_site.settings",
        REDIS_URL="unix:///run/redis/redis.sock?db=3",
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "redis+socket:///run/redis/redis.sock?virtual_host=3"
