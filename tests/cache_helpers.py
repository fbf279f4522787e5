"""Helpers shared by the cache tests and their worker processes: a sandbox-backed contacts read."""

from __future__ import annotations

from typing import Any

import requests

from cacheops.api import CacheScope, ReadRequest, list_tag, tenant_id
from cacheops.errors import UpstreamUnavailableError


def contacts_request(api_key: str, size: int = 5) -> ReadRequest:
    """Return the contacts list read every worker makes."""
    return ReadRequest(
        scope=CacheScope("demo", tenant_id(api_key)),
        entity="contact",
        op="list",
        policy="contacts",
        args={"size": size},
        tool="get_contacts",
        tags=(list_tag("contact"),),
    )


def sandbox_fetch(base_url: str, api_key: str, size: int = 5) -> Any:
    """Return the sandbox's contacts page; 5xx/429 are JobNimbus being unavailable."""
    response = requests.get(
        f"{base_url}/contacts", params={"size": size}, headers={"Authorization": f"Bearer {api_key}"}, timeout=10
    )
    if response.status_code >= 500 or response.status_code == 429:
        raise UpstreamUnavailableError(f"sandbox answered {response.status_code}")
    response.raise_for_status()
    return response.json()
