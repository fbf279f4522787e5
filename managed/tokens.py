"""Token strings: a prefix with a dot, so a managed token can never be mistaken for a JobNimbus key.

JobNimbus keys are letters, digits, '_' and '-' only (mcp_tools.tenancy), and header mode accepts one as
`Authorization: Bearer <key>`; a token starting `jnmcp_at.` is therefore always an access token of this server.
"""

from __future__ import annotations

import secrets
from typing import Any

ACCESS_PREFIX = "jnmcp_at."
REFRESH_PREFIX = "jnmcp_rt."


def access_token(request: Any, refresh_token: bool = False) -> str:
    """Return a new access token (oauthlib's token generator signature)."""
    return ACCESS_PREFIX + secrets.token_urlsafe(32)


def refresh_token(request: Any, refresh_token: bool = False) -> str:
    """Return a new refresh token."""
    return REFRESH_PREFIX + secrets.token_urlsafe(32)


def is_access_token(bearer: str) -> bool:
    return bearer.startswith(ACCESS_PREFIX)
