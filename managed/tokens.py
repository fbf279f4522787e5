"""Token strings: a prefix with a dot, so a managed token can never be mistaken for a JobNimbus key.

JobNimbus keys are letters, digits, '_' and '-' only (mcp_tools.tenancy), and header mode accepts one as
`Authorization: Bearer <key>`; a token starting `jnmcp_at.` is therefore always an access token of this server.
"""

from __future__ import annotations

import secrets
from typing import Any

from oauth2_provider.generators import BaseHashGenerator

ACCESS_PREFIX = "jnmcp_at."
REFRESH_PREFIX = "jnmcp_rt."
SECRET_PREFIX = "jnmcp_sec."  # noqa: S105 - a prefix, not a secret: client secrets and DCR registration tokens


def access_token(request: Any, refresh_token: bool = False) -> str:
    """Return a new access token (oauthlib's token generator signature)."""
    return ACCESS_PREFIX + secrets.token_urlsafe(32)


def refresh_token(request: Any, refresh_token: bool = False) -> str:
    """Return a new refresh token."""
    return REFRESH_PREFIX + secrets.token_urlsafe(32)


class SecretGenerator(BaseHashGenerator):
    """Client secrets, and DCR's registration access tokens (the toolkit draws those from this generator too): with
    the prefix, a registration token sent to /mcp is refused as a malformed key instead of being forwarded to
    JobNimbus as one."""

    def hash(self) -> str:
        return SECRET_PREFIX + secrets.token_urlsafe(48)


def is_access_token(bearer: str) -> bool:
    return bearer.startswith(ACCESS_PREFIX)
