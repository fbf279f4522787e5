"""Account-wide tools: users, settings (workflows, statuses, types), and the webhook set-up for this instance."""

from __future__ import annotations

import contextvars
import hmac
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings

from cacheops.api import list_tag, recent_webhook_deliveries, record_tag
from cacheops.errors import CacheBackendError, UpstreamUnavailableError
from mcp_tools.catalog.base import Args, ToolContext, ToolResult, ToolSpec
from mcp_tools.catalog.declare import READ, SHAPING_PROPS, object_schema
from mcp_tools.catalog.runtime import account_settings, cached, client, read, result
from mcp_tools.conf import mcp_setting
from mcp_tools.entities import ENTITIES, EntityRow, entity
from mcp_tools.jobnimbus.errors import JobNimbusError
from mcp_tools.shaping import detail_result, list_result
from mcp_tools.timezones import in_account_zone

WEBHOOK_EVENTS = ("Contact", "Job", "Task", "Activity", "Attachment", "Work Order", "Material Order")

# The records a delivery can be checked against with the caller's key, read into the same cache entry as the
# entity's detail tool (get_contact, get_job, ...). Files, payments, users, settings and webhooks have no read by
# id, so their deliveries are withheld from keys that are not the instance's own.
_READ_BY_ID: dict[str, EntityRow] = {row.name: row for row in ENTITIES if row.readable_by_id}
# Account-wide reads: cached under their entity's policy, with no resource of their own.
_USER, _SETTINGS, _WEBHOOK = entity("user"), entity("settings"), entity("webhook")

# At most this many records are looked up per call (misses cost a JobNimbus GET each), this many at once.
_MAX_LOOKUPS = 20
_LOOKUP_THREADS = 4


def _users(spec: ToolSpec, ctx: ToolContext, args: Args) -> ToolResult:
    api = client(ctx)
    # JobNimbus returns every user at once: one cached copy per tenant, paged here (from/size do not key it).
    users, meta = read(ctx, spec, op="list", args={}, tags=[list_tag(_USER.name)], fetch=api.users)
    page = users[args["from"] : args["from"] + args["size"]]
    return result(list_result(len(users), page, args, "user"), meta)


def _account_settings(spec: ToolSpec, ctx: ToolContext, args: Args) -> ToolResult:
    # The same entry write tools read for their defaults; its policy is the one this tool declares.
    value, meta = account_settings(ctx, spec.name)
    return result(detail_result(value, "settings", {**args, "verbosity": "raw"}), meta)


def _webhooks(spec: ToolSpec, ctx: ToolContext, args: Args) -> ToolResult:
    # The deliveries come from our database, not JobNimbus: check the caller's key first with a cheap read that
    # is cached per tenant under the tool's own policy (a refused key fails there with an AuthError), and read the
    # deliveries fresh each time (no delivery drops a cached copy, so caching them would show an old list).
    _settings, meta = read(
        ctx, spec, op="get", args={}, tags=[list_tag(_WEBHOOK.name)], fetch=lambda: client(ctx).account_settings()
    )
    deliveries = recent_webhook_deliveries(ctx.instance, args["limit"])
    shown = deliveries if _holds_instance_key(ctx) else readable_deliveries(ctx, deliveries)
    return result(
        {
            **webhook_setup(ctx.instance),
            "recent_deliveries": [in_account_zone(d, ("received", "applied")) for d in shown],
            "withheld_deliveries": len(deliveries) - len(shown),
        },
        meta,
    )


def _holds_instance_key(ctx: ToolContext) -> bool:
    """Tell whether the caller's key is the instance's server-held key (the operator's: it sees every record)."""
    held = (settings.JOBNIMBUS_INSTANCES.get(ctx.instance) or {}).get("api_key")
    return bool(held) and hmac.compare_digest(str(held).encode(), ctx.api_key.encode())


def readable_deliveries(ctx: ToolContext, deliveries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the deliveries whose record the caller's key can read; the rest name records it may not see.

    JobNimbus keys carry access profiles (a sales rep's key sees that rep's contacts and jobs and what hangs off
    them), and a delivery's jnid and related ids are that record's. Each record is read with the caller's own key
    through the cache (the detail tool's entry, so a record read before costs nothing); a refusal, a 404, a failure,
    an entity without a read by id, or more records than _MAX_LOOKUPS withholds the delivery. A delivery without a
    jnid names nothing and is shown.
    """
    records = list(dict.fromkeys((str(d.get("entity")), str(d["jnid"])) for d in deliveries if d.get("jnid")))
    checked = records[:_MAX_LOOKUPS]
    readable: set[tuple[str, str]] = set()
    if checked:
        # Each look-up runs in a copy of this request's context (its request id reaches the engine's log lines).
        contexts = [contextvars.copy_context() for _ in checked]
        with ThreadPoolExecutor(max_workers=min(_LOOKUP_THREADS, len(checked))) as pool:
            verdicts = pool.map(lambda run, record: run.run(_can_read, ctx, *record), contexts, checked)
            readable = {record for record, ok in zip(checked, verdicts, strict=True) if ok}
    return [d for d in deliveries if not d.get("jnid") or (str(d.get("entity")), str(d["jnid"])) in readable]


def _can_read(ctx: ToolContext, kind: str, jnid: str) -> bool:
    row = _READ_BY_ID.get(kind)
    if row is None:
        return False
    resource = str(row.resource)
    try:
        cached(
            ctx,
            "get_webhooks",
            entity=row.name,
            op="get",
            policy=row.cache_policy("get"),
            args={"jnid": jnid},
            tags=[record_tag(jnid)],
            fetch=lambda: client(ctx).get(resource, jnid),
        )
    except (JobNimbusError, UpstreamUnavailableError, CacheBackendError):
        return False
    return True


def webhook_setup(instance: str) -> dict[str, Any]:
    """Return how to point a JobNimbus automation at this server for `instance`."""
    url = f"{mcp_setting('PUBLIC_BASE_URL')}/webhooks/jobnimbus/{instance}"
    return {
        "instance": instance,
        "url": url,
        "method": "POST",
        "headers": {"X-Webhook-Token": f"<the webhook secret configured for {instance} (JOBNIMBUS_WEBHOOK_SECRET_*)>"},
        # The parent ids let a delivery drop the job's and contact's cached views at once; when JobNimbus leaves
        # them out the server looks the record up with the instance's own key (or drops conservatively).
        "body": {
            "event": "{{event}}",
            "type": "{{type}}",
            "jnid": "{{jnid}}",
            "primary": {"id": "{{primary.id}}"},
            "related": [{"id": "{{related.id}}"}],
        },
        "how_to": (
            "In JobNimbus: Settings → Automations → new automation 'When <record> is Created or Modified' (and one "
            "for Deleted), action 'Webhook POST' to the url above, with a custom header X-Webhook-Token set to the "
            "instance's webhook secret, and a JSON body carrying the record's jnid and type and, when the automation "
            "offers them, the ids of its primary and related records (merge tokens; unfilled ones are ignored). "
            f"Make one per record type: {', '.join(WEBHOOK_EVENTS)}."
        ),
    }


PAGE_PROPS = {
    "from": {"type": "integer", "minimum": 0, "default": 0},
    "size": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
}


TOOLS: list[ToolSpec] = [
    ToolSpec(
        name="get_users",
        title="List users",
        description="List the account's users (staff): id, name, email, active. Sales reps and task assignees are "
        "users. Pages with from/size.",
        input_schema=object_schema({**PAGE_PROPS, **SHAPING_PROPS}),
        output_schema=None,
        annotations=READ,
        handler=_users,
        policy=_USER.cache_policy(),
        entity=_USER.name,
    ),
    ToolSpec(
        name="get_account_settings",
        title="Account settings",
        description="The account's workflows and their statuses (contacts, jobs, work orders), file, task and "
        "activity types, lead sources: the valid values of status, record_type_name, file_type.",
        input_schema=object_schema({}),
        output_schema=None,
        annotations=READ,
        handler=_account_settings,
        policy=_SETTINGS.cache_policy(),
        entity=_SETTINGS.name,
    ),
    ToolSpec(
        name="get_webhooks",
        title="Webhook set-up",
        description="How to point a JobNimbus automation at this server (URL, X-Webhook-Token header, body) so the "
        "cache learns of changes at once, and the latest `limit` deliveries for records your key can read "
        "(withheld_deliveries counts the others).",
        input_schema=object_schema({"limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10}}),
        output_schema=None,
        annotations=READ,
        handler=_webhooks,
        policy=_WEBHOOK.cache_policy(),
        entity=_WEBHOOK.name,
    ),
]
