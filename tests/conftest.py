"""Shared fixtures live in tests/fixtures/, one module per part of the system."""

from __future__ import annotations

pytest_plugins = [
    "tests.fixtures.sandbox",
    "tests.fixtures.redis",
    "tests.fixtures.servers",
    "tests.fixtures.freshness",
    "tests.fixtures.celery",
    "tests.fixtures.catalog",
    "tests.fixtures.browser",
    "tests.fixtures.clock",
    "tests.fixtures.managed",
]
