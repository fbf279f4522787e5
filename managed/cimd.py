"""Fetching Client ID Metadata Documents: django-oauth-toolkit's hardened fetcher, plus an operator's opt-in.

The toolkit's fetcher takes https only, refuses any host that resolves to a private, loopback or link-local address,
caps the size (5 KB here) and the time (5 s), never follows redirects, and caches the document for its
Cache-Control max-age within bounds. Hosts named in MANAGED_CIMD_PRIVATE_HOSTS (an intranet client) are fetched
with the same limits but may resolve to private addresses, and MANAGED_CIMD_CA_FILE adds a private CA for them.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import urlsplit

import urllib3
from django.conf import settings
from oauth2_provider.cimd import CIMDError, SafeMetadataFetcher, _validate_client_id_url
from oauth2_provider.settings import oauth2_settings


class MetadataFetcher(SafeMetadataFetcher):
    def fetch(self, client_id: str) -> tuple[dict[str, Any], int]:
        parsed = _validate_client_id_url(client_id)
        if parsed.hostname not in settings.MANAGED_CIMD_PRIVATE_HOSTS:
            return super().fetch(client_id)
        timeout = oauth2_settings.CIMD_FETCH_TIMEOUT_SECONDS
        context = ssl.create_default_context(cafile=settings.MANAGED_CIMD_CA_FILE)
        pool = urllib3.PoolManager(ssl_context=context, retries=False, timeout=urllib3.Timeout(total=timeout))
        try:
            response = pool.request("GET", client_id, redirect=False, preload_content=False)
            try:
                return self._read_document(response)
            finally:
                response.release_conn()
        except urllib3.exceptions.HTTPError as exc:
            raise CIMDError(f"could not fetch client_id document: {exc}") from exc
        finally:
            pool.clear()


class ResolveOnlyWhenSignedIn:
    """CIMD_REGISTRATION_PERMISSION_CLASSES: fetch and store a client's metadata document only for the authorization
    page, which a person reaches signed in. At the token endpoint (no one signed in) an unknown client_id URL stays
    unknown, so nobody can make this server fetch URLs and add applications by posting made-up client ids."""

    def has_permission(self, request: Any, client_id: str) -> bool:
        if request is None:  # called from code, not from an endpoint (staff tooling, tests)
            return True
        return urlsplit(str(request.uri)).path.rstrip("/").endswith("/oauth/authorize")
