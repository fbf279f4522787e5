"""Which JobNimbus instance an API key may name: the key ↔ instance binding (JOBNIMBUS_KEY_INSTANCE_BINDING).

Why: the instance header is only a label on this server. JobNimbus answers a key with its own account's records
whatever instance the caller names, but this server files the answers under the named instance and, after a
write, invalidates that instance's cache for every caller. A key naming an instance that is not its account's
would bust other tenants' caches with each write, spend that instance's budget, and read answers that the
webhooks and polling of its real account never invalidate (they are per instance). So a key names one instance.

Modes:
- `first-seen` (default): a key is bound to the first instance it calls a tool on; a tool call naming any other
  instance is refused with 403 (reads too, for the reasons above). The binding lives in Redis: one hour after the
  first call, then 30 days from each later first use in a process, so a key that is never used again (someone
  trying random keys) leaves nothing behind for long. It stops a key in use from hopping instances, by mistake
  or not; it cannot tell whose account a brand-new key belongs to. Staff release a binding with
  `manage.py release_key_binding <key id>` (the 403 names the key id); a binding to an instance no longer
  configured is replaced. With Redis down the check stands aside (like the throttle), except for the bindings
  this process already knows.
- `strict`: a key may only name an instance whose JOBNIMBUS_KEY_SHA256_<NAME> lists the SHA-256 of the key (hex,
  comma list; the 403 tells the caller the digest to hand to staff). Needs no Redis, and keeps keys of other
  JobNimbus accounts off an instance altogether: for deployments reachable by people who are not its tenants.
- `off`: any key may name any configured instance (the behaviour before the binding existed).

Only `tools/call` is checked (the handshake and the tool list never touch an instance), after the key's and the
address's budgets and before the instance's: a refused call is charged to its own key and address, never to the
instance it was refused on. A refusal writes nothing, so it never changes what other callers may do.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from typing import Any, cast

from django.conf import settings
from django.core.cache import cache

from cacheops.api import binding_key, redis_breaker_closed, redis_step
from cacheops.errors import CacheBackendError
from mcp_tools.conf import mcp_setting
from mcp_tools.protocol.errors import HttpProblem
from mcp_tools.tenancy import INSTANCE_HEADER, Caller

logger = logging.getLogger(__name__)

MODES = ("first-seen", "strict", "off")
FIRST_TTL_S = 3600
REUSED_TTL_S = 30 * 86_400
MEMO_TTL_S = 300.0

# Bind KEYS[1] to ARGV[1] for ARGV[2] seconds if unbound; refresh to ARGV[3] seconds when it is bound to the same
# instance; return the instance it is bound to.
_BIND_LUA = """
local bound = redis.call('GET', KEYS[1])
if not bound then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]))
  return ARGV[1]
end
if bound == ARGV[1] then redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3])) end
return bound
"""


class KeyNotForInstance(HttpProblem):
    """403: the API key may not name this instance."""

    status = 403


# This process's view of the bindings: tenant → (instance, until when it is trusted without asking Redis).
_memo: OrderedDict[str, tuple[str, float]] = OrderedDict()
_memo_lock = threading.Lock()
_MAX_MEMO = 10_000


def redis_key(tenant: str) -> str:
    """Return the (prefixed) Redis key of a tenant's binding."""
    return cache.make_key(binding_key(tenant))


def check(caller: Caller) -> None:
    """Return when the caller's key may call tools on the instance it names; raise KeyNotForInstance if not."""
    mode = mcp_setting("KEY_INSTANCE_BINDING")
    if mode == "off" or caller.api_key is None or caller.instance is None:
        return
    if mode == "strict":
        _check_registered(caller.api_key, caller.instance)
        return
    bound = _bound_instance(caller.tenant or "", caller.instance)
    if bound is not None and bound != caller.instance:
        raise KeyNotForInstance(
            f"This API key is bound to JobNimbus instance {bound!r}, the first one it was used with, so it may not "
            f"name {caller.instance!r} in {INSTANCE_HEADER}. Send {bound!r}, or ask the server's staff to release "
            f"the binding (key id {caller.tenant})",
            data={"header": INSTANCE_HEADER, "instance": caller.instance, "bound_instance": bound,
                  "key_id": caller.tenant},
        )  # fmt: skip


def release(tenant: str) -> bool:
    """Forget a key's binding (by key id); return whether there was one. Other processes' memos lapse in 5 min."""
    with _memo_lock:
        _memo.pop(tenant, None)
    return bool(cache.delete(binding_key(tenant)))


def _check_registered(api_key: str, instance: str) -> None:
    digest = hashlib.sha256(api_key.encode()).hexdigest()
    if digest in mcp_setting("KEY_SHA256").get(instance, frozenset()):
        return
    raise KeyNotForInstance(
        f"This API key is not registered for JobNimbus instance {instance!r} ({INSTANCE_HEADER}). Ask the "
        f"server's staff to register it: they need its SHA-256, {digest}",
        data={"header": INSTANCE_HEADER, "instance": instance, "key_sha256": digest},
    )


def _bound_instance(tenant: str, instance: str) -> str | None:
    """Return the instance the tenant is bound to, binding it to `instance` if it was not; None if unknown."""
    now = time.monotonic()
    with _memo_lock:
        known = _memo.get(tenant)
        if known is not None and known[1] > now:
            _memo.move_to_end(tenant)
            return known[0]
    if not redis_breaker_closed():  # Redis judged down: stand aside (fail open) rather than wait on it
        return known[0] if known is not None else None
    try:
        bound = redis_step(lambda: _bind(tenant, instance))
    except CacheBackendError as exc:
        logger.warning("key binding check skipped, Redis unavailable: %s", exc)
        return known[0] if known is not None else None
    with _memo_lock:
        _memo[tenant] = (bound, now + MEMO_TTL_S)
        _memo.move_to_end(tenant)
        if len(_memo) > _MAX_MEMO:
            _memo.popitem(last=False)
    return bound


def _bind(tenant: str, instance: str) -> str:
    redis = cast(Any, cache).client.get_client(write=True)  # django-redis's raw client
    script = redis.register_script(_BIND_LUA)
    raw = script(keys=[redis_key(tenant)], args=[instance, FIRST_TTL_S, REUSED_TTL_S])
    bound = raw.decode() if isinstance(raw, bytes) else str(raw)
    if bound != instance and bound not in settings.JOBNIMBUS_INSTANCES:
        # Bound to an instance this server no longer serves (renamed or removed): the binding means nothing now.
        redis.set(redis_key(tenant), instance, ex=FIRST_TTL_S)
        return instance
    return bound
