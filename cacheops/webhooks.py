"""The JobNimbus automation webhook receiver: authenticate, parse, store, answer 202, apply through Celery.

JobNimbus signs nothing and lets the user write the body of an automation's webhook, so a delivery is authenticated by
the instance's shared secret in a custom header or the URL, or by an HMAC signature when a signing proxy sits in
front; and the body may be the small documented form or a whole record.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import orjson
from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from django_redis import get_redis_connection
from redis.exceptions import RedisError

from cacheops import keys
from cacheops.events import Change, digest_payload, dispatch_after_commit, record_event
from cacheops.freshness_conf import freshness_setting
from cacheops.models import EventSource, InvalidationEvent, SeenSignature
from cacheops.rules import ENTITIES, EVENTS, normalize_entity, normalize_event


class WebhookRejected(Exception):
    """A delivery refused with an HTTP status and a message saying why."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@csrf_exempt
@require_POST
def receive_webhook(request: HttpRequest, instance: str | None = None) -> JsonResponse:
    """Store one delivery and answer 202 with its event id; 4xx with a reason, storing nothing, otherwise."""
    try:
        name = instance or request.headers.get("X-JobNimbus-Instance", "")
        secret = _webhook_secret(name)
        raw = _read_body(request)
        authenticate(request, raw, secret)
        change = parse_delivery(name, raw, request.headers.get("X-JobNimbus-Event"))
    except WebhookRejected as rejected:
        return JsonResponse({"error": rejected.code, "message": rejected.message}, status=rejected.status)
    event = record_event(change, source=EventSource.WEBHOOK, digest=digest_payload(name, raw))
    dispatch_after_commit(event)
    return JsonResponse(
        {"accepted": True, "event_id": event.pk, "duplicate": event.duplicate_of_id is not None}, status=202
    )


def _webhook_secret(instance: str) -> str:
    if not instance:
        raise WebhookRejected(
            400,
            "instance_missing",
            "name the instance in the path (/webhooks/jobnimbus/<instance>) or X-JobNimbus-Instance",
        )
    config = settings.JOBNIMBUS_INSTANCES.get(instance) or {}
    secret = config.get("webhook_secret")
    if not secret:
        # Same answer for unknown and unconfigured instances: an unauthenticated caller learns nothing.
        raise WebhookRejected(
            404,
            "webhooks_not_configured",
            f"webhooks are not configured for instance {instance!r} (set JOBNIMBUS_WEBHOOK_SECRET_<NAME>)",
        )
    return str(secret)


def _read_body(request: HttpRequest) -> bytes:
    limit = int(freshness_setting("WEBHOOK_MAX_BYTES"))
    too_big = WebhookRejected(413, "body_too_large", f"webhook bodies are limited to {limit} bytes")
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if declared.isdigit() and int(declared) > limit:
        raise too_big
    raw = request.read(limit + 1)
    if len(raw) > limit:
        raise too_big
    return raw


def authenticate(request: HttpRequest, raw: bytes, secret: str) -> None:
    """Accept a valid signature, else a valid token; raise a 401 rejection otherwise."""
    signature = request.headers.get("X-Webhook-Signature")
    if signature:
        _check_signature(signature, request.headers.get("X-Webhook-Timestamp", ""), raw, secret)
        return
    token = request.headers.get("X-Webhook-Token") or request.GET.get("token")
    if not token:
        raise WebhookRejected(
            401, "unauthenticated", "send the instance's webhook secret as X-Webhook-Token or ?token=, or sign the body"
        )
    if not hmac.compare_digest(token.encode(), secret.encode()):
        raise WebhookRejected(401, "bad_token", "the webhook token is wrong")


def sign(secret: str, timestamp: str, raw: bytes) -> str:
    """Return the X-Webhook-Signature value for a body sent at `timestamp` (unix seconds)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
    return f"sha256={mac}"


def _check_signature(signature: str, timestamp: str, raw: bytes, secret: str) -> None:
    tolerance = int(freshness_setting("SIGNATURE_TOLERANCE_S"))
    if not timestamp.isdigit():
        raise WebhookRejected(401, "bad_timestamp", "signed webhooks need X-Webhook-Timestamp in unix seconds")
    if abs(time.time() - int(timestamp)) > tolerance:
        raise WebhookRejected(401, "stale_timestamp", f"X-Webhook-Timestamp is more than {tolerance} s off")
    if not hmac.compare_digest(signature.strip().encode(), sign(secret, timestamp, raw).encode()):
        raise WebhookRejected(401, "bad_signature", "the webhook signature does not match the body")
    if not remember_signature(signature.strip(), tolerance):
        raise WebhookRejected(401, "replayed", "this signed delivery was already received")


def remember_signature(signature: str, ttl_s: int) -> bool:
    """Record a signature for `ttl_s`; return False when it was already recorded (a replay).

    Redis holds them (SET NX EX, expiring on its own); with Redis down the database does, so an outage never
    opens a replay window.
    """
    digest = hashlib.sha256(signature.encode()).hexdigest()
    try:
        return bool(get_redis_connection("default").set(keys.signature_key(digest), 1, nx=True, ex=ttl_s))
    except (RedisError, NotImplementedError, OSError):
        return _remember_in_db(digest, ttl_s)


def _remember_in_db(digest: str, ttl_s: int) -> bool:
    now = timezone.now()
    SeenSignature.objects.filter(expires__lt=now).delete()
    try:
        with transaction.atomic():  # a savepoint, so a duplicate does not break an enclosing transaction
            SeenSignature.objects.create(digest=digest, expires=now + timedelta(seconds=ttl_s))
    except IntegrityError:
        return False
    return True


def parse_delivery(instance: str, raw: bytes, event_header: str | None) -> Change:
    """Return the change a body reports, in the documented form or as a whole record; 400 saying what is wrong."""
    body = _json_object(raw)
    jnid = body.get("jnid")
    if not isinstance(jnid, str) or not jnid.strip():
        raise WebhookRejected(400, "jnid_missing", "the body needs 'jnid', the changed record's id (a string)")
    return Change(
        instance=_fits("instance", instance),
        entity=_entity_of(body),
        event=_event_of(body, event_header),
        jnid=_fits("jnid", jnid.strip()),
        related=[_fits("related id", link) for link in _related_ids(body)],
    )


# The stored columns' limits (related ids live in a JSON list; they are record ids like jnid, so the same bound).
_MAX_LENGTH = {
    "instance": InvalidationEvent._meta.get_field("instance").max_length,
    "jnid": InvalidationEvent._meta.get_field("jnid").max_length,
    "related id": InvalidationEvent._meta.get_field("jnid").max_length,
}


def _fits(what: str, value: str) -> str:
    """Return `value` when it fits its column; a 400 otherwise (PostgreSQL would refuse it with a 500)."""
    limit = _MAX_LENGTH[what]
    if limit is not None and len(value) > limit:
        raise WebhookRejected(400, "too_long", f"{what} is {len(value)} characters; at most {limit} are accepted")
    return value


def _json_object(raw: bytes) -> Mapping[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise WebhookRejected(400, "not_json", "the body is not JSON") from None
    if not isinstance(body, dict):
        raise WebhookRejected(400, "not_an_object", "the body must be a JSON object")
    return body


def _entity_of(body: Mapping[str, Any]) -> str:
    # `type` is the record type; `record_type_name` is usually a workflow name ("Residential") and only counts
    # when it happens to name a record type.
    for key in ("type", "record_type_name"):
        value = body.get(key)
        if isinstance(value, str) and (entity := normalize_entity(value)):
            return entity
    given = body.get("type", body.get("record_type_name"))
    if given is None:
        raise WebhookRejected(400, "type_missing", "the body needs 'type' (or 'record_type_name'): the record type")
    raise WebhookRejected(400, "type_unknown", f"unknown record type {given!r}; expected one of {', '.join(ENTITIES)}")


def _event_of(body: Mapping[str, Any], header: str | None) -> str:
    given = body.get("event", header or "updated")
    event = normalize_event(given) if isinstance(given, str) else None
    if event is None:
        raise WebhookRejected(400, "event_unknown", f"unknown event {given!r}; expected one of {', '.join(EVENTS)}")
    return event


def _related_ids(body: Mapping[str, Any]) -> list[str]:
    related = body.get("related") or []
    primary = body.get("primary")
    if not isinstance(related, list) or (primary is not None and not isinstance(primary, dict)):
        raise WebhookRejected(
            400, "related_malformed", "'related' must be a list of {\"id\": ...} and 'primary' an object {\"id\": ...}"
        )
    links = [*related, primary] if primary else related
    ids = [_link_id(link) for link in links]
    return list(dict.fromkeys(link for link in ids if link))


def _link_id(link: object) -> str | None:
    if isinstance(link, dict):
        link = link.get("id")
    if isinstance(link, str):
        # A merge token the automation left unfilled ("{{...}}") names no record: the apply step looks it up.
        return None if "{{" in link else link.strip()
    raise WebhookRejected(400, "related_malformed", 'each \'related\' entry must be {"id": "<jnid>", ...}')
