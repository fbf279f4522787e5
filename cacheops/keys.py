"""Every Redis key family of the server: one function per family, each under CACHE_KEY_NAMESPACE.

Entry keys are `jn:v1:{<instance>}:<tenant>:<entity>:<op>:<hash of normalised args>`; normalisation drops
None-valued arguments and the hash sorts mapping keys, so equivalent calls share an entry while different
tenants never do (the tenant is part of the key).

Placement (Redis Cluster, cacheops.redis_topology): the braces are a hash tag. Every key of one JobNimbus instance
(entries, tag indexes, generations and the instance's clear epoch, single-flight locks and waiter flags, which
contain the entry key, caller standings) carries `{<instance>}` first, so it maps to that instance's one slot:
every Lua step and pipeline of the read path touches one slot, and a cluster shards the cache by instance. These
families also follow the instance to its own Redis when REDIS_URL_<INSTANCE> is set. The namespace must hold no
brace (it comes first: its braces would be the tag).

The global families carry no hash tag, so each key lands on its own slot and they spread over the cluster: the
dashboard's history (minute hashes, day sets, recipes), the tuned TTLs, the webhook replay and wrong-secret
records, the throttle counters and key bindings (django-redis's `default` cache, under its KEY_PREFIX, the same
namespace). Every step on them is single-key, or a non-transactional pipeline redis-py splits by node; they
always live on REDIS_URL. Pub/sub channels are not keys: a cluster broadcasts PUBLISH to every node.

Families written with the raw client start with the namespace here; the throttle counters and key bindings
live in django-redis's `default` cache, whose KEY_PREFIX settings derive from the same namespace.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from django.conf import settings

from cacheops.conf import engine_setting

VERSION = "jn:v1"


def _namespace() -> str:
    return str(engine_setting("KEY_NAMESPACE"))


def _ns() -> str:
    return f"{_namespace()}{VERSION}"


def tenant_id(api_key: str) -> str:
    """Return the tenant identity for an API key: an HMAC under the server secret, never the key itself."""
    return hmac.new(settings.SECRET_KEY.encode(), api_key.encode(), hashlib.sha256).hexdigest()[:32]


def normalise_args(args: Mapping[str, Any]) -> dict[str, Any]:
    """Return `args` without None values (key order does not matter: `args_hash` sorts keys)."""
    return {name: value for name, value in args.items() if value is not None}


def args_hash(normalised: Mapping[str, Any]) -> str:
    """Return a short stable hash of normalised arguments (keys sorted at every depth)."""
    payload = orjson.dumps(normalised, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.blake2b(payload, digest_size=16).hexdigest()


def entry_key(instance: str, tenant: str, entity: str, op: str, normalised: Mapping[str, Any]) -> str:
    """Return the key of one cached read."""
    return f"{_ns()}:{{{instance}}}:{tenant}:{entity}:{op}:{args_hash(normalised)}"


def tag_index_key(instance: str, tag: str) -> str:
    """Return the key of the set indexing every entry of `instance` under `tag`."""
    return f"{_ns()}:tag:{{{instance}}}:{tag}"


def generation_key(instance: str, tag: str) -> str:
    """Return the key of the counter bumped each time `tag` of `instance` is invalidated."""
    return f"{_ns()}:gen:{{{instance}}}:{tag}"


# Not a tag the app builds: the "tag" every entry carries implicitly.
EVERY = "*"


def epoch_key(instance: str) -> str:
    """Return the counter an admin clear of `instance` bumps; every store of the instance checks it.

    There is no global epoch (it would sit on another slot than the instance's keys): clearing everything bumps
    the epoch of every instance (Invalidation.clear_matching).
    """
    return generation_key(instance, EVERY)


def hash_tag(key: str | bytes) -> str | None:
    """Return the instance a key belongs to (its hash tag), or None for a global key."""
    text = key.decode(errors="replace") if isinstance(key, bytes) else key
    start = text.find("{")
    end = text.find("}", start + 1)
    return text[start + 1 : end] if start >= 0 and end > start + 1 else None


def generation_prefix() -> str:
    """Return the prefix of every generation counter (an admin clear keeps them: see Engine.clear_matching)."""
    return f"{_ns()}:gen:"


def lock_key(key: str) -> str:
    """Return the single-flight lock key of entry `key`."""
    return f"{_ns()}:lock:{key}"


def waiters_key(key: str) -> str:
    """Return the flag a waiter sets so the lock holder knows to announce the fill."""
    return f"{_ns()}:wait:{key}"


def fill_channel() -> str:
    """Return the pub/sub channel on which filled keys are announced to waiting processes."""
    return f"{_ns()}:chan:filled"


def invalidation_channel() -> str:
    """Return the pub/sub channel on which invalidations are broadcast to every process's L1."""
    return f"{_ns()}:chan:invalidate"


def app_key_pattern(instance: str | None = None) -> str:
    """Return the SCAN pattern matching this app's keys (admin clear only, never on a request path)."""
    return f"{_ns()}:*" if instance is None else f"{_ns()}:{{{instance}}}:*"


def entity_tag(entity: str) -> str:
    """Return the implicit tag every entry of `entity` carries (invalidate-by-entity)."""
    return f"entity:{entity}"


# The family of cacheops.api.list_tag: an entry tagged `list:task` lists tasks, whatever its own entity.
LIST_TAG_PREFIX = "list:"


def entity_tags(entity: str, tags: Iterable[str]) -> list[str]:
    """Return the implicit entity tags of an entry: its own entity's and that of every entity it lists.

    A calendar entry (entity activity) lists tasks too, so invalidating entity task must reach it.
    """
    listed = [tag[len(LIST_TAG_PREFIX) :] for tag in tags if tag.startswith(LIST_TAG_PREFIX)]
    return [entity_tag(name) for name in dict.fromkeys([entity, *listed])]


def caller_key(instance: str, tenant: str) -> str:
    """Return the key holding what JobNimbus last said of a tenant's key, refused or accepted (cacheops.callers)."""
    return f"{_ns()}:caller:{{{instance}}}:{tenant}"


def caller_backoff_key(instance: str, tenant: str) -> str:
    """Return the key whose expiry ends a tenant's back-off after JobNimbus answered its key 429 (cacheops.callers)."""
    return f"{_ns()}:caller-backoff:{{{instance}}}:{tenant}"


def signature_key(digest: str) -> str:
    """Return the key recording a signed webhook delivery already received (replay defence)."""
    return f"{_namespace()}jnfresh:v1:sig:{digest}"


def auth_failure_key(address: str) -> str:
    """Return the counter of wrong webhook secrets or signatures from one client address in the current window."""
    return f"{_namespace()}jnfresh:v1:authfail:{address}"


def list_tag(entity: str) -> str:
    """Return the tag every list/search entry of an entity carries."""
    return f"list:{entity}"


def record_tag(jnid: str) -> str:
    """Return the tag every entry that shows record `jnid` carries."""
    return f"rec:{jnid}"


def related_tag(parent_jnid: str) -> str:
    """Return the tag every entry listing the children of `parent_jnid` carries."""
    return f"rel:{parent_jnid}"


def history_prefix() -> str:
    """Return the prefix of the dashboard's history keys (cacheops.history)."""
    return f"{_namespace()}jn:hist:v1"


def history_minute_key(minute: int) -> str:
    """Return the hash holding the request counters of `minute` (epoch seconds)."""
    return f"{history_prefix()}:m:{minute}"


def history_day_key(day: str) -> str:
    """Return the sorted set counting key reads on UTC day `day` (YYYYMMDD)."""
    return f"{history_prefix()}:k:{day}"


def history_recipes_key() -> str:
    """Return the hash remembering how to re-read each popular key (warming)."""
    return f"{history_prefix()}:recipes"


def tuned_ttls_key() -> str:
    """Return the hash of the tuner's TTLs (policy -> fresh seconds) every process reads (cacheops.tuning)."""
    return f"{_namespace()}jn:ttl:v1"


# Families kept in django-redis's `default` cache: these are its keys, which the cache prefixes with its
# KEY_PREFIX (the namespace without its trailing colon) and version.


def throttle_budget(scope: str, ident: str) -> str:
    """Return the name of one throttle budget (mcp_tools.throttling): a scope and what it counts (key, address)."""
    return f"throttle_{scope}_{ident}"


def throttle_window_key(budget: str, window: int) -> str:
    """Return the cache key of a budget's counter (or key set) in fixed window number `window`."""
    return f"{budget}:{window}"


def binding_key(tenant: str) -> str:
    """Return the cache key of the instance a tenant's API key is bound to (mcp_tools.binding)."""
    return f"mcp_binding:{tenant}"
