"""The webhook receiver: authentication, body forms, limits, dedup, and how the event gets applied.

The tests of signature timestamps, replays and the dedup window run at each instant of `moved_clock` (the signer
and the receiver read the one travelled clock): at the boundary instants a timestamp minutes old is from the month,
or the year, before.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

import orjson
import pytest
from django.test import Client
from redis.exceptions import ConnectionError as RedisConnectionError

from cacheops import api, backend, webhooks
from cacheops.api import list_tag, record_tag, related_tag
from cacheops.breakers import reset_breakers
from cacheops.models import InvalidationEvent, SeenSignature
from cacheops.tasks import apply_invalidation_event
from tests.fixtures.clock import Clock
from tests.fixtures.freshness import SECRET

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("webhook_instances")]
URL = "/webhooks/jobnimbus/acme"


def _documented(**overrides: Any) -> dict[str, Any]:
    body = {"event": "created", "type": "attachment", "jnid": f"file-{uuid.uuid4().hex[:8]}",
            "related": [{"id": "job-1", "type": "job"}], "primary": {"id": "contact-1"}}  # fmt: skip
    return {**body, **overrides}


def _post(client: Client, body: object, url: str = URL, **headers: str) -> Any:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return client.post(url, data=raw, content_type="application/json", headers=headers)


def _signed(body: dict[str, Any], timestamp: int | None = None, secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    raw = orjson.dumps(body)
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return raw, {"X-Webhook-Timestamp": stamp, "X-Webhook-Signature": webhooks.sign(secret, stamp, raw)}


def _signature_headers(raw: bytes, secret: str, skew_s: int) -> dict[str, str]:
    stamp = str(int(time.time()) + skew_s)
    return {"X-Webhook-Timestamp": stamp, "X-Webhook-Signature": webhooks.sign(secret, stamp, raw)}


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Capture what would be sent to the broker instead of sending it."""
    sent: list[tuple[Any, ...]] = []
    monkeypatch.setattr(apply_invalidation_event, "apply_async", lambda args, **kw: sent.append(tuple(args)))
    return sent


def test_token_header_stores_the_event_and_queues_it_after_commit(
    client: Client, queued: list[tuple[Any, ...]], django_capture_on_commit_callbacks: Any
) -> None:
    body = _documented()
    with django_capture_on_commit_callbacks(execute=True):
        response = _post(client, body, **{"X-Webhook-Token": SECRET})
    assert response.status_code == 202
    event = InvalidationEvent.objects.get(pk=response.json()["event_id"])
    assert response.json()["accepted"] is True
    assert (event.instance, event.entity, event.jnid, event.event, event.source) == (
        "acme", "file", body["jnid"], "created", "webhook")  # fmt: skip
    assert event.related == ["job-1", "contact-1"]
    assert event.applied is None
    assert queued == [(event.pk,)]


def test_query_token_is_accepted(client: Client) -> None:
    assert _post(client, _documented(), url=f"{URL}?token={SECRET}").status_code == 202


def test_instance_from_header(client: Client) -> None:
    response = _post(client, _documented(), url="/webhooks/jobnimbus",
                     **{"X-JobNimbus-Instance": "acme", "X-Webhook-Token": SECRET})  # fmt: skip
    assert response.status_code == 202
    assert InvalidationEvent.objects.get().instance == "acme"


@pytest.mark.usefixtures("moved_clock")
def test_valid_signature_is_accepted(client: Client) -> None:
    raw, headers = _signed(_documented())
    assert _post(client, raw, **headers).status_code == 202


@pytest.mark.usefixtures("moved_clock")
@pytest.mark.parametrize(
    ("skew_s", "status", "code"),
    [(-299, 202, None), (+299, 202, None), (-305, 401, "stale_timestamp"), (+305, 401, "stale_timestamp")],
)  # the clock is frozen: no time passes between signing and checking
def test_the_timestamp_is_checked_against_the_receivers_clock(
    client: Client, skew_s: int, status: int, code: str | None
) -> None:
    raw = orjson.dumps(_documented())
    response = _post(client, raw, **_signature_headers(raw, SECRET, skew_s))
    assert response.status_code == status
    assert response.json().get("error") == code


@pytest.mark.parametrize(
    ("headers_for", "code"),
    [
        (lambda raw: {}, "unauthenticated"),
        (lambda raw: {"X-Webhook-Token": "not-the-secret"}, "bad_token"),
        (lambda raw: {"X-Webhook-Token": SECRET[:-1]}, "bad_token"),
        (lambda raw: _signed({"other": "body"})[1], "bad_signature"),
        (lambda raw: _signature_headers(raw, "wrong-secret", 0), "bad_signature"),
        (lambda raw: _signature_headers(raw, SECRET, -305), "stale_timestamp"),
        (lambda raw: _signature_headers(raw, SECRET, +305), "stale_timestamp"),  # int() drops up to 1 s
        (lambda raw: {"X-Webhook-Signature": webhooks.sign(SECRET, "", raw)}, "bad_timestamp"),
    ],
)  # fmt: skip
def test_bad_credentials_are_401_and_nothing_is_stored_or_invalidated(
    client: Client, tag_spy, headers_for, code
) -> None:
    raw = orjson.dumps(_documented())
    response = _post(client, raw, **headers_for(raw))
    assert response.status_code == 401
    assert response.json()["error"] == code
    assert not InvalidationEvent.objects.exists()
    assert tag_spy.calls == []


@pytest.mark.usefixtures("moved_clock")
def test_replayed_signature_is_rejected(client: Client) -> None:
    raw, headers = _signed(_documented())
    assert _post(client, raw, **headers).status_code == 202
    replay = _post(client, raw, **headers)
    assert replay.status_code == 401
    assert replay.json()["error"] == "replayed"
    assert InvalidationEvent.objects.count() == 1


@pytest.mark.usefixtures("moved_clock")
def test_replay_is_caught_by_the_database_when_redis_is_down(
    client: Client, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    def down() -> Any:
        raise RedisConnectionError("redis is down")

    monkeypatch.setattr(backend, "client", down)
    request.addfinalizer(reset_breakers)  # the failures count on the process's Redis breaker: leave it closed
    raw, headers = _signed(_documented())
    assert _post(client, raw, **headers).status_code == 202
    assert _post(client, raw, **headers).status_code == 401
    assert SeenSignature.objects.count() == 1


@pytest.mark.parametrize(("url", "status"), [("/webhooks/jobnimbus/bare", 404), ("/webhooks/jobnimbus/nobody", 404),
                                             ("/webhooks/jobnimbus", 400)])  # fmt: skip
def test_instance_without_secret_or_name_is_refused(client: Client, url: str, status: int) -> None:
    response = _post(client, _documented(), url=url, **{"X-Webhook-Token": SECRET})
    assert response.status_code == status
    assert not InvalidationEvent.objects.exists()


def test_unconfigured_instance_says_so(client: Client) -> None:
    response = _post(client, _documented(), url="/webhooks/jobnimbus/bare", **{"X-Webhook-Token": "anything"})
    assert "not configured" in response.json()["message"]


def test_whole_record_with_event_header(client: Client) -> None:
    record = {"jnid": "job-77", "type": "job", "status_name": "Won", "record_type_name": "Residential",
              "primary": {"id": "contact-5", "name": "Ann"}, "related": [], "date_updated": 1700000000}  # fmt: skip
    response = _post(client, record, **{"X-Webhook-Token": SECRET, "X-JobNimbus-Event": "Modified"})
    assert response.status_code == 202
    event = InvalidationEvent.objects.get()
    assert (event.entity, event.jnid, event.event, event.related) == ("job", "job-77", "updated", ["contact-5"])


def test_whole_record_without_event_is_an_update_and_record_type_name_can_name_the_type(client: Client) -> None:
    response = _post(client, {"jnid": "wo-1", "record_type_name": "Work Order"}, **{"X-Webhook-Token": SECRET})
    assert response.status_code == 202
    assert (InvalidationEvent.objects.get().entity, InvalidationEvent.objects.get().event) == ("workorder", "updated")


@pytest.mark.parametrize(
    ("raw", "code", "says"),
    [
        (b"{not json", "not_json", "not JSON"),
        (b"[1, 2]", "not_an_object", "object"),
        (orjson.dumps({"type": "job"}), "jnid_missing", "jnid"),
        (orjson.dumps({"jnid": "x"}), "type_missing", "type"),
        (orjson.dumps({"jnid": "x", "type": "Customer"}), "type_unknown", "Customer"),
        (orjson.dumps({"jnid": "x", "type": "job", "event": "exploded"}), "event_unknown", "exploded"),
        (orjson.dumps({"jnid": "x", "type": "job", "related": "job-1"}), "related_malformed", "related"),
        (orjson.dumps({"jnid": "x", "type": "job", "related": [{"name": "no id"}]}), "related_malformed", "id"),
        # Longer than the stored column: PostgreSQL would refuse the row with a 500.
        (orjson.dumps({"jnid": "j" * 129, "type": "job"}), "too_long", "jnid is 129 characters; at most 128"),
        (orjson.dumps({"jnid": "x", "type": "job", "related": [{"id": "r" * 200}]}), "too_long", "related id"),
    ],
)
def test_malformed_bodies_are_400_saying_what_is_wrong(client: Client, raw: bytes, code: str, says: str) -> None:
    response = _post(client, raw, **{"X-Webhook-Token": SECRET})
    assert response.status_code == 400
    assert response.json()["error"] == code
    assert says in response.json()["message"]
    assert not InvalidationEvent.objects.exists()


def test_oversized_body_is_413(client: Client) -> None:
    body = _documented(padding="x" * (256 * 1024))
    response = _post(client, body, **{"X-Webhook-Token": SECRET})
    assert response.status_code == 413
    assert not InvalidationEvent.objects.exists()


def test_csrf_is_not_required() -> None:
    strict = Client(enforce_csrf_checks=True)
    assert _post(strict, _documented(), **{"X-Webhook-Token": SECRET}).status_code == 202


def test_get_is_not_allowed(client: Client) -> None:
    assert client.get(URL, headers={"X-Webhook-Token": SECRET}).status_code == 405


def test_duplicate_while_pending_is_recorded_and_applied_once(
    client: Client,
    tag_spy,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
    moved_clock: Clock,
) -> None:
    monkeypatch.setattr(apply_invalidation_event, "apply_async", lambda args, **kw: apply_invalidation_event(*args))
    body = _documented()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        with moved_clock.at(moved_clock.now - timedelta(seconds=25)):  # inside the 30 s dedup window
            first = _post(client, body, **{"X-Webhook-Token": SECRET}).json()
        second = _post(client, body, **{"X-Webhook-Token": SECRET}).json()
    for callback in callbacks:
        callback()
    assert second["duplicate"] is True
    duplicate = InvalidationEvent.objects.get(pk=second["event_id"])
    assert duplicate.duplicate_of_id == first["event_id"]
    assert duplicate.applied is not None
    assert duplicate.keys_dropped == 0
    assert len(tag_spy.calls) == 1
    assert InvalidationEvent.objects.get(pk=first["event_id"]).applied is not None


def test_repeat_after_the_original_was_applied_is_applied_again(
    client: Client, tag_spy, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    # The record may have changed and been re-cached since the first apply, so a later copy must apply too.
    monkeypatch.setattr(apply_invalidation_event, "apply_async", lambda args, **kw: apply_invalidation_event(*args))
    body = _documented()
    with django_capture_on_commit_callbacks(execute=True):
        _post(client, body, **{"X-Webhook-Token": SECRET})
    with django_capture_on_commit_callbacks(execute=True):
        again = _post(client, body, **{"X-Webhook-Token": SECRET}).json()
    assert again["duplicate"] is False
    assert len(tag_spy.calls) == 2


def test_broker_down_applies_inline(
    client: Client, tag_spy, dead_broker: str, django_capture_on_commit_callbacks
) -> None:
    body = _documented()
    with django_capture_on_commit_callbacks(execute=True):
        response = _post(client, body, **{"X-Webhook-Token": SECRET})
    assert response.status_code == 202
    event = InvalidationEvent.objects.get()
    assert event.applied is not None
    assert event.keys_dropped == 6
    assert tag_spy.calls == [
        ("acme", [list_tag("file"), record_tag(body["jnid"]), record_tag("job-1"), record_tag("contact-1"),
                  related_tag("job-1"), related_tag("contact-1")])]  # fmt: skip


def test_recent_webhook_deliveries_lists_the_latest_first(client: Client) -> None:
    for jnid in ("a1", "a2", "a3"):
        _post(client, _documented(jnid=jnid), **{"X-Webhook-Token": SECRET})
    deliveries = api.recent_webhook_deliveries("acme", 2)
    assert [row["jnid"] for row in deliveries] == ["a3", "a2"]
    assert deliveries[0]["entity"] == "file"
    assert deliveries[0]["applied"] is None
    assert api.recent_webhook_deliveries("bare", 5) == []
