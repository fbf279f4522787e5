"""Request throttling: fixed-window budgets in Redis per API key, per client address and per instance, failing open.

Every request that carries an API key passes, in this order (the first that refuses answers 429 with Retry-After):

1. `AddressKeysThrottle`: at most MCP_THROTTLE_ADDRESS_KEYS different keys from one client address per window.
   A caller trying random keys (each one a 401 from JobNimbus) is stopped here, before it costs anything else.
2. `TenantRateThrottle`: MCP_THROTTLE_RATE requests per key.
3. `AddressRateThrottle`: MCP_THROTTLE_ADDRESS_RATE requests per client address, across its keys.
4. For `tools/call` only (the one method that reaches JobNimbus or the cache): the key ↔ instance binding
   (`mcp_tools.binding`, 403 when the key may not name the instance), then `InstanceRateThrottle`:
   MCP_THROTTLE_INSTANCE_RATE calls per instance, across every key and address.

The order is what keeps one caller from degrading another: a budget is only charged once every budget before it
has admitted the request. A key refused by its own budget never spends its address's budget (so one noisy user
behind a NAT does not lock out the others), and nothing refused (429, or a key bound to another instance) ever
spends the instance's budget, which only counts calls that were let through to it. What a caller spends is its
own: calls JobNimbus refuses (401) still count against their key and address, because they were admitted.

A managed-mode caller (an OAuth token of this server, run with a server-held key) is counted per user
(MCP_THROTTLE_USER_RATE) and per OAuth client (MCP_THROTTLE_CLIENT_RATE), or at the rate staff set for that user or
client in the admin, then per instance as above; not per address (hosted connectors call for all their users from
a few addresses). Not per key: many users share one server-held key, and
one of them using up the key's budget would lock out the rest.

Callers without a key are not counted: they can only shake hands and list tools, which never reach JobNimbus, and
counting them by address would make every client behind one NAT share a budget for nothing.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, cast

from redis.exceptions import ResponseError
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from cacheops.api import count_in_window, redis_breaker_closed, redis_step, throttle_budget, throttle_window_key
from cacheops.errors import CacheBackendError
from mcp_tools import binding
from mcp_tools.conf import mcp_setting
from mcp_tools.protocol.errors import Throttled
from mcp_tools.tenancy import Caller

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class _Lease:
    """Tokens of one budget's window that this process reserved in Redis and has not spent yet."""

    window: int
    left: int = 0
    spent: bool = False  # Redis said the window's budget is gone everywhere (the counter never goes down)
    refill: threading.Lock = field(default_factory=threading.Lock)  # one reservation in flight per budget
    # Reservations ended, and whether the last one failed: a thread that waited on `refill` while another's
    # reservation failed takes that as its own answer instead of asking a failing Redis once more.
    tries: int = 0
    failed: bool = False


class LeaseStore:
    """This process's leases, shared by its threads: budget → lease, the least recently used dropped first.

    Token bookkeeping happens under one short lock; a reservation (the Redis round trip) under the budget's own
    `refill` lock, so the threads of a process never reserve for the same budget at once: the others wait and
    then spend what it brought. Reservations add to the lease instead of replacing it, so no token reserved in
    Redis is ever lost by this process while its window lasts.
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._leases: OrderedDict[str, _Lease] = OrderedDict()
        self._max_entries = max_entries

    def lease(self, budget: str, window: int) -> _Lease:
        """Return the budget's lease, moved on to `window` if it belonged to an older one."""
        with self._lock:
            lease = self._leases.get(budget)
            if lease is None:
                lease = self._leases[budget] = _Lease(window)
                if len(self._leases) > self._max_entries:
                    self._leases.popitem(last=False)  # a crowd of budgets: forget the coldest one's spare tokens
            else:
                self._leases.move_to_end(budget)
            if window > lease.window:
                lease.window, lease.left, lease.spent = window, 0, False
            return lease

    def take(self, lease: _Lease) -> bool | None:
        """Spend a token: True if there was one, False if the window's budget is gone, None to ask Redis."""
        with self._lock:
            if lease.left > 0:
                lease.left -= 1
                return True
            return False if lease.spent else None

    def fill(self, lease: _Lease, window: int, granted: int) -> bool:
        """Add what Redis granted for `window` and spend one token for the request that asked."""
        with self._lock:
            if lease.window != window:  # the window ended while Redis answered: the grant was for the old one
                return granted > 0
            lease.left += granted
            if lease.left > 0:
                lease.left -= 1
                return True
            lease.spent = True
            return False

    def __len__(self) -> int:
        return len(self._leases)


class FixedWindowThrottle(SimpleRateThrottle):
    """Allow `rate` requests per identity and fixed window, counted in Redis, spent from per-process leases.

    DRF's own throttle keeps a list of timestamps and reads and rewrites it on every request: two Redis round
    trips and a list that grows with the rate, which cost more than a cached tool call itself. This counts in
    fixed windows instead, and each process reserves a block of the window's budget at once (one pipelined
    SET NX + INCRBY) and spends it locally, so most requests pay no round trip at all. The Redis counter is the
    sum of what every process reserved, so an identity never gets more than the rate in a window across all
    processes; a process that keeps receiving requests spends every token it reserved, so one busy process
    admits exactly the rate, however many threads call at once. The price: tokens reserved by a process that
    then goes idle are lost for that window (at most a block, 1/50 of the rate, per process), and a caller may
    burst up to twice the rate across a window boundary, which is fine for a guard whose job is to keep one noisy
    caller off JobNimbus. When Redis fails the request is allowed: throttling must not take the server down.

    Redis is reached only through the one guarded call (`cacheops.api.redis_step`): every failure counts on the
    process's Redis breaker, and while that breaker is not closed the throttles stand aside without asking Redis
    (`paused`), so they neither wait on a Redis the breaker judged down nor join its half-open probing. Threads
    queued behind a reservation that failed take its answer rather than asking again.
    """

    scope = "mcp"
    rate_setting = "THROTTLE_RATE"  # the option of settings.MCP (mcp_tools.conf) holding this budget's rate
    kind = "mcp"  # which budget refused, in a 429's data
    refused = "Too many requests"

    def __init__(self, ident: str) -> None:
        self.ident = ident
        self.window_ends_at = 0.0
        super().__init__()
        limit, window_s = self.parse_rate(self.rate)
        # settings validated the rates at start-up, so both parts are present
        self.limit, self.window_s = int(limit or 0), int(window_s or 1)

    def get_rate(self) -> str:
        return str(mcp_setting(self.rate_setting))

    def refusal_text(self) -> str:
        """Return what a 429 from this budget says before its retry time."""
        return self.refused

    def get_cache_key(self, request: Any, view: Any) -> str:
        return throttle_budget(self.scope, self.ident)

    # This process's unspent reservations, every budget's, shared by its threads.
    blocks_per_window = 50
    _leases = LeaseStore()

    @staticmethod
    def paused() -> bool:
        """Return whether the throttles stand aside: while the process's Redis breaker is not closed."""
        return not redis_breaker_closed()

    def allow_request(self, request: Any, view: Any) -> bool:
        if self.paused():
            return True
        budget = self.get_cache_key(request, view)
        lease = self._leases.lease(budget, int(self.timer() // self.window_s))
        self._enter(budget, lease.window)
        verdict = self._leases.take(lease)
        if verdict is not None:
            return verdict
        held, tries = lease, lease.tries
        with held.refill:
            if held.tries != tries and held.failed:  # a reservation ended while this thread waited, and failed
                return True
            lease = self._leases.lease(budget, int(self.timer() // self.window_s))
            window = lease.window
            self._enter(budget, window)
            verdict = self._leases.take(lease)  # another thread may have refilled it while this one waited
            if verdict is not None:
                return verdict
            if self.paused():
                return True
            failed = True
            try:
                granted = self._reserve()
                failed = False
            except CacheBackendError as exc:
                if isinstance(exc.__cause__, ResponseError):
                    # Something that is not a counter sits under the key (another deploy's format): start afresh.
                    logger.warning("throttle counter unreadable; starting a fresh window for %s", self.scope)
                    self._forget()
                    failed = False  # Redis answered: the next thread reserves in the fresh window
                else:
                    _stand_aside(exc)
                return True
            finally:
                held.tries += 1  # counted when the reservation ends: the threads queued meanwhile see it
                held.failed = failed
            return self._leases.fill(lease, window, granted)

    def wait(self) -> float:
        return max(0.0, self.window_ends_at - self.timer())

    def _enter(self, budget: str, window: int) -> None:
        self.key = throttle_window_key(budget, window)
        self.window_ends_at = (window + 1) * self.window_s

    def _reserve(self) -> int:
        """Reserve a block of the window's budget in Redis; return how many of its tokens were granted."""
        block = max(1, self.limit // self.blocks_per_window)
        total = self._count(self.key or "", block)
        return min(block, max(0, self.limit - (total - block)))

    def _count(self, key: str, amount: int) -> int:
        """Add `amount` to the window's counter and return the new total, in one guarded round trip."""
        return count_in_window(key, self.window_s, amount, cache=self.cache)

    def _redis(self) -> Any:
        return cast(Any, self.cache).client.get_client(write=True)  # django-redis's raw client

    def _forget(self) -> None:
        full_key = self.cache.make_key(self.key)
        try:
            redis_step(lambda: self._redis().delete(full_key))
        except CacheBackendError:
            logger.warning("could not drop an unreadable throttle counter")


def _stand_aside(exc: CacheBackendError) -> None:
    """Log a failed throttle step: the request is let through, and the failure counted on the Redis breaker."""
    logger.warning("throttle let a request through, cache unavailable: %s", exc)


class TenantRateThrottle(FixedWindowThrottle):
    """MCP_THROTTLE_RATE requests per API key (the tenant id, an HMAC of the key)."""

    scope = "mcp_tenant"
    rate_setting = "THROTTLE_RATE"
    kind = "key"
    refused = "Too many requests for this API key"

    @property
    def tenant(self) -> str:
        return self.ident


class OverridableRateThrottle(FixedWindowThrottle):
    """A budget whose rate staff may set per identity (managed mode's RateLimit rows); None: the setting's."""

    def __init__(self, ident: str, rate: str | None = None) -> None:
        self.override = rate
        super().__init__(ident)

    def get_rate(self) -> str:
        return self.override or super().get_rate()


class UserRateThrottle(OverridableRateThrottle):
    """MCP_THROTTLE_USER_RATE requests per managed-mode user."""

    scope = "mcp_user"
    rate_setting = "THROTTLE_USER_RATE"
    kind = "user"
    refused = "Too many requests for your user"


class ClientRateThrottle(OverridableRateThrottle):
    """MCP_THROTTLE_CLIENT_RATE requests per OAuth client, across its users."""

    scope = "mcp_client"
    rate_setting = "THROTTLE_CLIENT_RATE"
    kind = "client"
    refused = "Too many requests from this client application"


class AddressRateThrottle(FixedWindowThrottle):
    """MCP_THROTTLE_ADDRESS_RATE requests per client address (`cacheops.http.client_address`), whatever their keys."""

    scope = "mcp_address"
    rate_setting = "THROTTLE_ADDRESS_RATE"
    kind = "address"
    refused = "Too many requests from your address"


class InstanceRateThrottle(FixedWindowThrottle):
    """MCP_THROTTLE_INSTANCE_RATE tool calls per configured instance, across every key and address."""

    scope = "mcp_instance"
    rate_setting = "THROTTLE_INSTANCE_RATE"
    kind = "instance"

    def refusal_text(self) -> str:
        return f"Too many calls for JobNimbus instance {self.ident!r} across all API keys"


# Admit a key into an address's set for the window if it is already there or the set has room: one atomic step,
# so concurrent new keys can never overfill it. KEYS[1] the set; ARGV: the key's id, the limit, the set's TTL.
_ADMIT_KEY_LUA = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 1 end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""


class AddressKeysThrottle(FixedWindowThrottle):
    """At most MCP_THROTTLE_ADDRESS_KEYS different API keys from one client address per window.

    A request rate alone lets a caller spend its whole address budget on keys JobNimbus refuses, one upstream
    401 each; legitimate clients behind one address use a handful of keys. The keys of the window are a set in
    Redis (never more members than the limit: a refused key is not added); each process remembers the keys it
    has already seen admitted, so a known key costs no round trip.
    """

    scope = "mcp_address_keys"
    rate_setting = "THROTTLE_ADDRESS_KEYS"
    kind = "address_keys"
    refused = "Too many different API keys from your address"

    _admitted: OrderedDict[str, None] = OrderedDict()
    _admitted_lock = threading.Lock()
    _max_admitted = 10_000

    def __init__(self, address: str, tenant: str) -> None:
        super().__init__(address)
        self.member = tenant[:16]

    def allow_request(self, request: Any, view: Any) -> bool:
        if self.paused():
            return True
        window = int(self.timer() // self.window_s)
        self._enter(self.get_cache_key(request, view), window)
        seen = f"{self.key}:{self.member}"
        with self._admitted_lock:
            if seen in self._admitted:
                return True
        keys, args = [self.cache.make_key(self.key)], [self.member, self.limit, self.window_s + 1]
        try:
            admitted = bool(redis_step(lambda: self._redis().register_script(_ADMIT_KEY_LUA)(keys=keys, args=args)))
        except CacheBackendError as exc:
            _stand_aside(exc)
            return True
        if admitted:
            with self._admitted_lock:
                self._admitted[seen] = None
                if len(self._admitted) > self._max_admitted:
                    self._admitted.popitem(last=False)
        return admitted


class KeyBindingCheck(BaseThrottle):
    """Not a budget: the key ↔ instance binding (`mcp_tools.binding`), among the budgets because it is checked
    between them, after the key's and the address's and before the instance's. It refuses by raising its 403."""

    def __init__(self, caller: Caller) -> None:
        self.caller = caller

    def allow_request(self, request: Any, view: Any) -> bool:
        binding.check(self.caller)
        return True

    def wait(self) -> float | None:
        return None


def throttles_for(caller: Caller, *, tool_call: bool = False) -> list[BaseThrottle]:
    """Return the checks of the caller's request in the module docstring's order; none for a caller without a key.

    `tool_call` is True for `tools/call`: only those are checked against the key ↔ instance binding and charged
    to the instance's budget.
    """
    checks = _caller_checks(caller)
    if checks and tool_call and caller.instance is not None:
        if caller.principal is None:  # a server-held key is bound to its instance by the mapping itself
            checks.append(KeyBindingCheck(caller))
        checks.append(InstanceRateThrottle(caller.instance))
    return checks


def _caller_checks(caller: Caller) -> list[BaseThrottle]:
    """Return the budgets of who calls: a managed caller's person and client, else the key's and the address's."""
    principal = caller.principal
    if principal is not None:
        # No address budget: hosted connectors call for all their users from a few addresses, and two busy users
        # there would use it up for everyone; a managed caller is a signed-in person, counted as such.
        return [
            UserRateThrottle(str(principal.user_id), principal.user_rate),
            ClientRateThrottle(str(principal.application_id), principal.client_rate),
        ]
    if caller.tenant is None:
        return []
    return [
        AddressKeysThrottle(caller.address, caller.tenant),
        TenantRateThrottle(caller.tenant),
        AddressRateThrottle(caller.address),
    ]


def first_refusal(checks: list[BaseThrottle], request: Any, view: Any) -> FixedWindowThrottle | None:
    """Run the checks in order and return the budget that refused, or None when all admitted.

    Stops at the first refusal, so no budget after it is charged (DRF's own `check_throttles` asks every one).
    """
    for check in checks:
        if not check.allow_request(request, view):
            return cast(FixedWindowThrottle, check)  # the binding refuses by raising, never by answering False
    return None


def refusal(throttle: FixedWindowThrottle, wait: float) -> Throttled:
    """Return the 429 for a request `throttle` refused `wait` seconds before its window ends: Retry-After, and
    which budget it was."""
    retry_after = max(1, round(wait))
    return Throttled(
        f"{throttle.refusal_text()}; retry in {retry_after} s (limit {throttle.rate})",
        headers={"Retry-After": str(retry_after)},
        data={"retry_after_s": retry_after, "throttle": throttle.kind},
    )


def enforce(caller: Caller, *, tool_call: bool = False) -> None:
    """Admit the caller's request or raise: 429 with Retry-After when a budget is used up, 403 from the binding.

    The MCP views run the same checks through DRF (`get_throttles`, `check_throttles`); this is for callers
    outside a view.
    """
    refused = first_refusal(throttles_for(caller, tool_call=tool_call), None, None)
    if refused is not None:
        raise refusal(refused, refused.wait())
