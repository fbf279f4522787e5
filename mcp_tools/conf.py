"""MCP face options: one namespaced settings dict (`MCP`) with defaults, read lazily.

Resolved once per process and remembered (the origin check, the body limit and the throttles read them on every
request), and forgotten whenever Django reports a change of `MCP`, so `override_settings` and pytest's `settings`
still work. A partial dict is merged over DEFAULTS. The environment variable of each option is named beside it;
messages to operators name the variable, not the key.
"""

from __future__ import annotations

from typing import Any

from cacheops.options import Options

DEFAULTS: dict[str, Any] = {
    # MCP_ALLOWED_ORIGINS: origins a browser-borne request may come from (DNS-rebinding defence). An entry without
    # a port matches that scheme and host on any port; "*" allows every origin. Requests without Origin pass.
    "ALLOWED_ORIGINS": ["http://localhost", "http://127.0.0.1", "http://[::1]", "https://localhost"],
    # MCP_MAX_BODY_BYTES: larger POST bodies are refused with 413.
    "MAX_BODY_BYTES": 1_048_576,
    # The budgets (mcp_tools.throttling), each N/second|minute|hour|day. MCP_THROTTLE_RATE: per API key.
    "THROTTLE_RATE": "600/min",
    # MCP_THROTTLE_ADDRESS_RATE: per client address across its keys; MCP_THROTTLE_INSTANCE_RATE: per instance across
    # every key. Twice and five times THROTTLE_RATE: settings derives both from MCP_THROTTLE_RATE when only it is set.
    "THROTTLE_ADDRESS_RATE": "1200/min",
    "THROTTLE_INSTANCE_RATE": "3000/min",
    # MCP_THROTTLE_ADDRESS_KEYS: how many different keys one client address may use per window.
    "THROTTLE_ADDRESS_KEYS": "120/min",
    # Managed mode: MCP_THROTTLE_USER_RATE per user, MCP_THROTTLE_CLIENT_RATE per OAuth client across its users; staff
    # may set either per user or client in the admin (managed.models.RateLimit).
    "THROTTLE_USER_RATE": "600/min",
    "THROTTLE_CLIENT_RATE": "3000/min",
    # JOBNIMBUS_KEY_INSTANCE_BINDING: which instance an API key may name (mcp_tools.binding): first-seen, strict or off.
    "KEY_INSTANCE_BINDING": "first-seen",
    # JOBNIMBUS_KEY_SHA256_<NAME>: instance -> the SHA-256 digests (hex) of the keys that may use it (strict binding).
    "KEY_SHA256": {},
    # MCP_TOOLS_PAGE_SIZE: tools per tools/list page.
    "TOOLS_PAGE_SIZE": 100,
    # MCP_LIST_TTL_MS: how long clients may cache tools/list and server/discover (2026-07-28 ttlMs); the catalog only
    # changes with a deploy.
    "LIST_TTL_MS": 300_000,
    # PUBLIC_BASE_URL: where JobNimbus automations reach this server (get_webhooks builds
    # <base>/webhooks/jobnimbus/<instance>); no trailing slash.
    "PUBLIC_BASE_URL": "http://127.0.0.1:8000",
}

mcp_setting = Options("MCP", DEFAULTS)
