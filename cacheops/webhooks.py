"""The JobNimbus automation webhook receiver: authenticate, parse, store, answer 202, apply through Celery.

JobNimbus signs nothing and lets the user write the body of an automation's webhook, so a delivery is authenticated by
the instance's shared secret in a custom header or the URL, or by an HMAC signature when a signing proxy sits in
front; and the body may be the small documented form or a whole record.

Every refusal is logged once, at WARNING, with its reason and the client's address (never a credential), and an
address that keeps sending wrong secrets or signatures is refused with 429 for the rest of a one-minute window.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import re
import time
import unicodedata
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, cast

import orjson
from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponseBase, HttpResponseNotAllowed, JsonResponse
from django.utils import timezone
from django.utils.log import log_response
from rest_framework.exceptions import MethodNotAllowed
from rest_framework.request import Request
from rest_framework.response import Response

from cacheops import backend, keys
from cacheops.dispatcher import dispatch_after_commit
from cacheops.errors import CacheBackendError
from cacheops.events import Change, digest_payload, record_event
from cacheops.freshness_conf import freshness_setting
from cacheops.http import client_address
from cacheops.models import EventSource, InvalidationEvent, SeenSignature
from cacheops.rest import CappedBodyParser, LeanAPIView
from cacheops.rules import ENTITIES, EVENTS, normalize_entity, normalize_event

logger = logging.getLogger(__name__)

# Refusals that tested the secret: the ones counted against the sender's address.
_GUESSES = frozenset({"bad_token", "bad_signature"})
# The window of that count, in seconds (fixed, starting at the address's first wrong guess).
_FAILURE_WINDOW_S = 60


class WebhookRejected(Exception):
    """A delivery refused with an HTTP status and a message saying why."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None, log: bool = True
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.log = log


class WebhookBodyParser(CappedBodyParser):
    """The delivery's raw bytes (signatures cover them exactly), at most WEBHOOK_MAX_BYTES, whatever the type."""

    def max_bytes(self) -> int:
        return int(freshness_setting("WEBHOOK_MAX_BYTES"))

    def too_large(self, limit: int) -> Exception:
        return WebhookRejected(413, "body_too_large", f"webhook bodies are limited to {limit} bytes")


class WebhookReceiver(LeanAPIView):
    """`POST /webhooks/jobnimbus[/<instance>]`: store one delivery and answer 202 with its event id; 4xx with a
    reason, storing nothing, otherwise. Anyone may call it: the delivery authenticates itself (`authenticate`)."""

    parser_classes = (WebhookBodyParser,)
    instance_name = ""
    address = "unknown"

    def post(self, request: Request, instance: str | None = None) -> Response:
        http = request._request
        self.instance_name = name = instance or http.headers.get("X-JobNimbus-Instance", "")
        self.address = address = client_address(http)
        secret = _webhook_secret(name)
        _refuse_while_blocked(address)
        raw = cast(bytes, request.data)  # read only now: a blocked sender's body is never read
        try:
            authenticate(http, raw, secret)
        except WebhookRejected as rejected:
            if rejected.code in _GUESSES:
                _count_failure(address)
            raise
        change = parse_delivery(name, raw, http.headers.get("X-JobNimbus-Event"))
        event = record_event(change, source=EventSource.WEBHOOK, digest=digest_payload(name, raw))
        dispatch_after_commit(event)
        return Response(
            {"accepted": True, "event_id": event.pk, "duplicate": event.duplicate_of_id is not None}, status=202
        )

    def error_response(self, exc: Exception) -> HttpResponseBase | None:
        """Answer a refusal with its reason; a method other than POST as Django's `require_POST` did (empty 405)."""
        if isinstance(exc, WebhookRejected):
            return _refusal(exc, self.instance_name, self.address)
        if isinstance(exc, MethodNotAllowed):
            http = self.request._request
            response = HttpResponseNotAllowed(["POST"])
            log_response("Method Not Allowed (%s): %s", http.method, http.path, response=response, request=http)
            return response
        return None  # anything else is a bug: Django's 500, logged with its traceback


receive_webhook = WebhookReceiver.as_view()


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
            f"webhooks are not configured for instance {instance[:64]!r} (set JOBNIMBUS_WEBHOOK_SECRET_<NAME>)",
        )
    return str(secret)


def _refusal(rejected: WebhookRejected, instance: str, address: str) -> JsonResponse:
    """Answer a refusal, logged once: here with its reason and the sender's address, not again by django.request."""
    if rejected.log:
        # No "token: ..." shape in the text: the log's redaction filter would blank the word after it.
        logger.warning(
            "webhook refused (%s %s) for instance %r from client %s",
            rejected.status,
            rejected.code,
            instance[:64],
            address,
        )
    response = JsonResponse({"error": rejected.code, "message": rejected.message}, status=rejected.status)
    for header, value in rejected.headers.items():
        response[header] = value
    # django.request would log every 4xx a second time, without the reason (see django.utils.log.log_response).
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


def _refuse_while_blocked(address: str) -> None:
    """Refuse every delivery from an address that used up its wrong guesses in this window (429, Retry-After)."""
    limit = int(freshness_setting("AUTH_FAILURES_PER_MIN"))
    if limit <= 0:
        return
    key = keys.auth_failure_key(address)
    try:
        count, ttl = backend.call(lambda r: _pipelined(r, lambda pipe: (pipe.get(key), pipe.ttl(key))))
        if count is None or int(count) < limit:
            return
    except (CacheBackendError, NotImplementedError, ValueError):
        return  # fail open: a Redis outage must not stop deliveries (the secret is still checked)
    retry_after = max(1, int(ttl))
    # Logged once per window, when the address reached the limit (_count_failure), not on every refusal.
    raise WebhookRejected(
        429,
        "too_many_failures",
        f"too many failed webhook authentications from this address; retry in {retry_after} s",
        headers={"Retry-After": str(retry_after)},
        log=False,
    )


def _count_failure(address: str) -> None:
    """Count a wrong secret or signature against the address; say so once when it reaches the limit."""
    limit = int(freshness_setting("AUTH_FAILURES_PER_MIN"))
    if limit <= 0:
        return
    key = keys.auth_failure_key(address)
    try:
        # The window starts at the first failure.
        _, count = backend.call(
            lambda r: _pipelined(r, lambda pipe: (pipe.set(key, 0, ex=_FAILURE_WINDOW_S, nx=True), pipe.incr(key)))
        )
    except (CacheBackendError, NotImplementedError):
        return
    if int(count) == limit:
        logger.warning(
            "webhook authentication failed %s times within %s s from client %s: refusing it until the window ends",
            limit,
            _FAILURE_WINDOW_S,
            address,
        )


def _pipelined(r: Any, queue: Callable[[Any], object]) -> list[Any]:
    """Run the commands `queue` adds to a pipeline in one round trip; return their answers."""
    pipe = r.pipeline(transaction=False)
    queue(pipe)
    answers: list[Any] = pipe.execute()
    return answers


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
    if not hmac.compare_digest(_utf8(token), _utf8(secret)):
        raise WebhookRejected(401, "bad_token", "the webhook token is wrong")


def sign(secret: str, timestamp: str, raw: bytes) -> str:
    """Return the X-Webhook-Signature value for a body sent at `timestamp` (unix seconds)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
    return f"sha256={mac}"


# Unix seconds, ASCII digits only: int() would take "²" or "+1", and a few hundred digits overflow a float.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


def _check_signature(signature: str, timestamp: str, raw: bytes, secret: str) -> None:
    tolerance = int(freshness_setting("SIGNATURE_TOLERANCE_S"))
    stamp = timestamp.strip()
    if not _TIMESTAMP.fullmatch(stamp):
        raise WebhookRejected(
            401, "bad_timestamp", "signed webhooks need X-Webhook-Timestamp: the unix time in whole seconds (digits)"
        )
    sent = int(stamp)
    now = time.time()
    if abs(now - sent) > tolerance:
        raise WebhookRejected(401, "stale_timestamp", f"X-Webhook-Timestamp is more than {tolerance} s off")
    if not hmac.compare_digest(_utf8(signature.strip()), _utf8(sign(secret, stamp, raw))):
        raise WebhookRejected(401, "bad_signature", "the webhook signature does not match the body")
    # The signature stays acceptable until its timestamp is `tolerance` old, which for a timestamp from the future
    # is more than `tolerance` from now: remember it until then.
    if not remember_signature(signature.strip(), sent + tolerance - now):
        raise WebhookRejected(401, "replayed", "this signed delivery was already received")


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def remember_signature(signature: str, ttl_s: float) -> bool:
    """Record a signature for `ttl_s` seconds (rounded up, plus one); return False when it was already recorded.

    Redis holds them (SET NX EX, expiring on its own); with Redis down the database does, so an outage never
    opens a replay window.
    """
    digest = hashlib.sha256(signature.encode()).hexdigest()
    seconds = max(1, math.ceil(ttl_s)) + 1  # a second more covers the whole-second timestamps and clock rounding
    try:
        # Through the Redis breaker like every other Redis call: with Redis away, no delivery waits out a timeout.
        return bool(backend.call(lambda r: r.set(keys.signature_key(digest), 1, nx=True, ex=seconds)))
    except (CacheBackendError, NotImplementedError):
        return _remember_in_db(digest, seconds)


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
    """Return `value` when it is printable text that fits its column; a 400 otherwise.

    PostgreSQL refuses a NUL in text and in JSON (psycopg's DataError, a 500), SQLite would store it: the check
    comes first so both answer the same. Other control characters and lone surrogates name no record either.
    """
    limit = _MAX_LENGTH[what]
    if limit is not None and len(value) > limit:
        raise WebhookRejected(400, "too_long", f"{what} is {len(value)} characters; at most {limit} are accepted")
    for position, char in enumerate(value):
        if (category := unicodedata.category(char)) in ("Cc", "Cs"):
            kind = "control character" if category == "Cc" else "lone surrogate"
            raise WebhookRejected(
                400,
                "invalid_text",
                f"{what} contains the {kind} U+{ord(char):04X} at position {position}; record ids are printable text",
            )
    return value


def _json_object(raw: bytes) -> Mapping[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise WebhookRejected(400, "not_json", f"the body is not JSON in UTF-8 ({exc})") from None
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
    shown = repr(given)[:80]
    raise WebhookRejected(400, "type_unknown", f"unknown record type {shown}; expected one of {', '.join(ENTITIES)}")


def _event_of(body: Mapping[str, Any], header: str | None) -> str:
    given = body.get("event", header or "updated")
    event = normalize_event(given) if isinstance(given, str) else None
    if event is None:
        shown = repr(given)[:80]
        raise WebhookRejected(400, "event_unknown", f"unknown event {shown}; expected one of {', '.join(EVENTS)}")
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
