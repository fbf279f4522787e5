"""The admin's front page leads staff to the cache dashboard (it is a page of its own, not a model admin)."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_admin_index_links_the_cache_dashboard(admin_client: Any) -> None:
    page = admin_client.get("/admin/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="cache-dashboard-link"' in html
    assert f'href="{reverse("cache-dashboard-page")}"' in html
    assert admin_client.get(reverse("cache-dashboard-page")).status_code == 200


def test_every_admin_page_header_links_the_cache_dashboard(admin_client: Any) -> None:
    page = admin_client.get("/admin/dashboard/alert/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="header-dashboard-link"' in html
    assert f'href="{reverse("cache-dashboard-page")}">Cache dashboard</a>' in html
