"""Staff control of managed mode in the admin: keys are written and never read back (not in pages, not in the
history), assignments and rate limits say clearly when both or neither of user and group (or client) are chosen,
revoking a connection deletes exactly that user's tokens for that client, and the audit trail cannot be edited.
The last test does it all in a real headless browser."""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group, Permission, User
from django.test import Client
from django.utils import timezone
from oauth2_provider.models import (
    get_access_token_model,
    get_application_model,
    get_grant_model,
    get_refresh_token_model,
    set_token_value,
)

from managed import resource, vault
from managed.models import Connection, JobNimbusKey, KeyAssignment, RateLimit, WriteAudit

AccessToken = get_access_token_model()
RefreshToken = get_refresh_token_model()
Application = get_application_model()
Grant = get_grant_model()

KEYS = "/admin/managed/jobnimbuskey/"
RESOURCE = "http://testserver/mcp"
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


@pytest.fixture(autouse=True)
def managed_settings(settings: Any) -> None:
    settings.MANAGED_KEY_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    settings.JOBNIMBUS_INSTANCES = {"demo": {"api_key": None}, "acme": {"api_key": None}}
    # Signing in is not under test here: a fast hasher spares each admin_client a second of PBKDF2.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def new_secret() -> str:
    return secrets.token_urlsafe(24)  # 32 characters of [A-Za-z0-9_-]


def add_key(client: Client, secret: str, label: str = "Sales reps", **fields: str) -> Any:
    data = {"instance": "demo", "label": label, "secret": secret, "enabled": "on", **fields}
    return client.post(f"{KEYS}add/", data)


def key_form(key: JobNimbusKey, secret: str = "", **fields: str) -> dict[str, str]:
    return {"instance": key.instance, "label": key.label, "secret": secret, "enabled": "on", **fields}


def make_app(name: str) -> Any:
    return Application.objects.create(
        name=name,
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris="http://127.0.0.1:9999/cb",
    )


def mint(user: User, app: Any) -> str:
    """Store an access token with its refresh token and a pending code, as the toolkit does (digests only)."""
    raw = secrets.token_urlsafe(32)
    access = AccessToken(
        user=user, application=app, scope="jobnimbus:read", resource=[RESOURCE], expires=timezone.now() + timedelta(1)
    )
    set_token_value(access, raw)
    access.save()
    refresh = RefreshToken(user=user, application=app, access_token=access)
    set_token_value(refresh, secrets.token_urlsafe(32))
    refresh.save()
    Grant.objects.create(
        user=user,
        application=app,
        code=secrets.token_urlsafe(16),
        expires=timezone.now() + timedelta(minutes=1),
        redirect_uri="http://127.0.0.1:9999/cb",
    )
    return raw


# --- Keys --------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_added_key_is_stored_encrypted_and_never_shown(admin_client: Client) -> None:
    secret = new_secret()
    assert add_key(admin_client, secret).status_code == 302
    key = JobNimbusKey.objects.get()
    assert secret not in key.ciphertext
    assert vault.decrypt(key.ciphertext) == secret
    assert key.hint == secret[-4:]
    assert key.replaced_at is None
    listing = admin_client.get(KEYS).content.decode()
    assert f"…{key.hint}" in listing
    change = admin_client.get(f"{KEYS}{key.pk}/change/").content.decode()
    for page in (listing, change):
        assert secret not in page
        assert key.ciphertext not in page
    assert "Leave blank to keep the current key" in change
    assert 'type="password"' in change


@pytest.mark.django_db
def test_a_refused_form_does_not_echo_the_typed_secret(admin_client: Client) -> None:
    add_key(admin_client, new_secret())
    secret = new_secret()
    page = add_key(admin_client, secret).content.decode()  # same instance and label: refused
    assert "already exists" in page
    assert secret not in page
    bad = "short-" + "é" * 12
    page = add_key(admin_client, bad).content.decode()
    assert "16 to 256 letters, digits" in page
    assert bad not in page


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"secret": ""}, "Type the JobNimbus API key."),
        ({"secret": "too-short"}, "16 to 256 letters, digits"),
        ({"secret": "x" * 257}, "16 to 256 letters, digits"),
        ({"secret": "has spaces in it, sixteen+"}, "16 to 256 letters, digits"),
        ({"instance": "elsewhere"}, "Select a valid choice"),
    ],
)
def test_a_key_is_refused_with_a_reason(admin_client: Client, fields: dict[str, str], error: str) -> None:
    data = {"secret": new_secret(), **fields}
    response = add_key(admin_client, **data)
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not JobNimbusKey.objects.exists()


@pytest.mark.django_db
def test_without_encryption_keys_the_form_says_so(admin_client: Client, settings: Any) -> None:
    settings.MANAGED_KEY_ENCRYPTION_KEYS = []
    page = add_key(admin_client, new_secret()).content.decode()
    assert "MANAGED_KEY_ENCRYPTION_KEYS is not set" in page
    assert not JobNimbusKey.objects.exists()


@pytest.mark.django_db
def test_blank_keeps_the_key_and_a_new_one_replaces_it(admin_client: Client) -> None:
    first = new_secret()
    add_key(admin_client, first)
    key = JobNimbusKey.objects.get()
    url = f"{KEYS}{key.pk}/change/"
    assert admin_client.post(url, key_form(key, label="Sales team")).status_code == 302
    key.refresh_from_db()
    assert (key.label, vault.decrypt(key.ciphertext), key.replaced_at) == ("Sales team", first, None)
    admin_client.post(url, key_form(key, secret=first))  # the same key typed again replaces nothing
    key.refresh_from_db()
    assert key.replaced_at is None
    second = new_secret()
    assert admin_client.post(url, key_form(key, secret=second)).status_code == 302
    key.refresh_from_db()
    assert vault.decrypt(key.ciphertext) == second
    assert key.hint == second[-4:]
    assert key.replaced_at is not None


@pytest.mark.django_db
def test_the_history_never_holds_the_secret(admin_client: Client) -> None:
    first, second = new_secret(), new_secret()
    add_key(admin_client, first)
    key = JobNimbusKey.objects.get()
    admin_client.post(f"{KEYS}{key.pk}/change/", key_form(key, secret=second, label="Renamed"))
    entries = LogEntry.objects.filter(object_id=str(key.pk))
    assert entries.count() == 2
    for entry in entries:
        for text in (entry.change_message, entry.get_change_message(), entry.object_repr):
            assert first not in text
            assert second not in text
            assert key.ciphertext not in text
    changed = entries.get(action_flag=2).get_change_message()
    assert "JobNimbus API key" in changed  # the field's name is logged, its value is not
    history = admin_client.get(f"{KEYS}{key.pk}/history/").content.decode()
    assert first not in history
    assert second not in history


@pytest.mark.django_db
def test_the_list_counts_assigned_users_and_groups(admin_client: Client) -> None:
    add_key(admin_client, new_secret())
    key = JobNimbusKey.objects.get()
    for name in ("a", "b"):
        KeyAssignment.objects.create(key=key, user=User.objects.create_user(name))
    KeyAssignment.objects.create(key=key, group=Group.objects.create(name="crew"))
    page = admin_client.get(KEYS).content.decode()
    assert '<td class="field-users">2</td>' in page
    assert '<td class="field-groups">1</td>' in page


# --- Assignments and rate limits ----------------------------------------------------------------------------------


@pytest.fixture
def key() -> JobNimbusKey:
    key = JobNimbusKey(instance="demo", label="Office")
    vault.store(key, new_secret())
    key.save()
    return key


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("who", "error"),
    [
        ("neither", "Choose the user or the group this key is for."),
        ("both", "Choose a user or a group, not both"),
    ],
)
def test_an_assignment_needs_exactly_one_of_user_and_group(
    admin_client: Client, key: JobNimbusKey, who: str, error: str
) -> None:
    data = {"key": str(key.pk)}
    if who == "both":
        data |= {"user": str(User.objects.create_user("ann").pk), "group": str(Group.objects.create(name="g").pk)}
    page = admin_client.post("/admin/managed/keyassignment/add/", data).content.decode()
    assert error in page
    assert "managed_assignment_user_xor_group" not in page  # said in words, not by the constraint's name
    assert not KeyAssignment.objects.exists()


@pytest.mark.django_db
def test_an_assignment_of_one_user_is_saved_and_filtered_by_key(admin_client: Client, key: JobNimbusKey) -> None:
    ann = User.objects.create_user("ann")
    response = admin_client.post("/admin/managed/keyassignment/add/", {"key": str(key.pk), "user": str(ann.pk)})
    assert response.status_code == 302
    assert KeyAssignment.objects.get().user == ann
    page = admin_client.get(f"/admin/managed/keyassignment/?key__id__exact={key.pk}").content.decode()
    assert "user ann" in page


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("who", "rate", "error"),
    [
        ("neither", "10/min", "Choose the user or the client this rate is for."),
        ("both", "10/min", "Choose a user or a client, not both"),
        ("user", "fast", "Write the rate as a count per period"),
    ],
)
def test_a_rate_limit_is_refused_with_a_reason(admin_client: Client, who: str, rate: str, error: str) -> None:
    data = {"rate": rate}
    if who in ("user", "both"):
        data["user"] = str(User.objects.create_user("ann").pk)
    if who == "both":
        data["application"] = str(make_app("Claude").pk)
    page = admin_client.post("/admin/managed/ratelimit/add/", data).content.decode()
    assert error in page
    assert not RateLimit.objects.exists()


@pytest.mark.django_db
def test_a_rate_limit_for_one_client_is_saved(admin_client: Client) -> None:
    app = make_app("Claude")
    response = admin_client.post("/admin/managed/ratelimit/add/", {"application": str(app.pk), "rate": "5000/day"})
    assert response.status_code == 302
    assert RateLimit.objects.get().application == app


# --- Connections and tokens ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_revoking_a_connection_deletes_exactly_that_users_tokens_for_that_client(
    admin_client: Client, key: JobNimbusKey
) -> None:
    ann, bob = User.objects.create_user("ann"), User.objects.create_user("bob")
    KeyAssignment.objects.create(key=key, user=ann)
    claude, other = make_app("Claude"), make_app("Other")
    token = mint(ann, claude)
    mint(ann, other)
    mint(bob, claude)
    resource.authenticate(token, RESOURCE)  # works, and records the connection as /mcp does
    connection = Connection.objects.get(user=ann, application=claude)
    assert "1 access, 1 refresh" in admin_client.get("/admin/managed/connection/").content.decode()
    response = admin_client.post(
        "/admin/managed/connection/",
        {"action": "revoke_tokens", "_selected_action": [str(connection.pk)]},
        follow=True,
    )
    assert "Revoked ann with Claude: 1 access and 1 refresh token(s) deleted" in response.content.decode()
    for model in (AccessToken, RefreshToken, Grant):
        assert not model.objects.filter(user=ann, application=claude).exists()
        assert model.objects.filter(user=ann, application=other).count() == 1
        assert model.objects.filter(user=bob, application=claude).count() == 1
    with pytest.raises(resource.TokenRefused, match="unknown or was revoked"):
        resource.authenticate(token, RESOURCE)  # the very next call
    assert Connection.objects.filter(pk=connection.pk).exists()  # the record of use stays


@pytest.mark.django_db
def test_connections_are_read_only_and_revoking_needs_the_token_permissions(client: Client) -> None:
    ann = User.objects.create_user("ann")
    Connection.objects.create(user=ann, application=make_app("Claude"), last_used=timezone.now(), calls=3)
    staff = User.objects.create_user("ops", password="pw-for-tests", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_connection"))
    client.force_login(staff)
    page = client.get("/admin/managed/connection/").content.decode()
    assert "Claude" in page
    assert "revoke_tokens" not in page
    assert client.get("/admin/managed/connection/add/").status_code == 403
    for codename in ("delete_accesstoken", "delete_refreshtoken"):
        staff.user_permissions.add(Permission.objects.get(codename=codename))
    staff = User.objects.get(pk=staff.pk)  # permissions are cached on the instance
    client.force_login(staff)
    assert "revoke_tokens" in client.get("/admin/managed/connection/").content.decode()


@pytest.mark.django_db
def test_the_access_token_list_tells_hashed_tokens_apart(admin_client: Client) -> None:
    raw = mint(User.objects.create_user("ann"), make_app("Claude"))
    assert AccessToken.objects.get().token == ""  # stored as a digest only
    page = admin_client.get("/admin/oauth2_provider/accesstoken/").content.decode()
    for shown in ("ann", "Claude", "jobnimbus:read", RESOURCE):
        assert shown in page
    assert raw not in page
    assert "revoke_tokens" in page
    refresh = admin_client.get("/admin/oauth2_provider/refreshtoken/").content.decode()
    assert "ann" in refresh
    assert "Claude" in refresh


# --- Audit trail --------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_audit_trail_is_read_only_even_for_superusers(admin_client: Client) -> None:
    entry = WriteAudit.objects.create(
        username="ann",
        client_name="Claude",
        instance="demo",
        key_label="Office",
        tool="create_task",
        record="t-42",
        succeeded=True,
    )
    page = admin_client.get("/admin/managed/writeaudit/").content.decode()
    for shown in ("ann", "Claude", "Office", "create_task", "t-42"):
        assert shown in page
    assert "delete_selected" not in page
    assert admin_client.get("/admin/managed/writeaudit/?q=t-42").status_code == 200
    assert admin_client.get("/admin/managed/writeaudit/add/").status_code == 403
    assert admin_client.post(f"/admin/managed/writeaudit/{entry.pk}/delete/").status_code == 403
    view = admin_client.get(f"/admin/managed/writeaudit/{entry.pk}/change/").content.decode()
    assert 'name="_save"' not in view
    admin_client.post(f"/admin/managed/writeaudit/{entry.pk}/change/", {"tool": "delete_everything"})
    entry.refresh_from_db()
    assert entry.tool == "create_task"


# --- In a real browser --------------------------------------------------------------------------------------------


STAFF_PERMISSIONS = (
    "add_jobnimbuskey",
    "change_jobnimbuskey",
    "view_jobnimbuskey",
    "add_keyassignment",
    "view_keyassignment",
    "view_user",
)


def _assert_hidden(page: Any, *secrets_: str) -> None:
    html = page.content()
    for secret in secrets_:
        assert secret not in html
    for value in page.eval_on_selector_all("input", "els => els.map(e => e.value)"):
        for secret in secrets_:
            assert secret not in value


@pytest.mark.django_db(transaction=True)
@pytest.mark.e2e
def test_staff_add_a_key_and_map_a_user_in_a_browser(live_server: Any, browser_page: Any) -> None:
    staff = User.objects.create_user("ops", password="pw-for-tests", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=STAFF_PERMISSIONS))
    User.objects.create_user("alice")
    secret = new_secret()
    page, base = browser_page, live_server.url
    page.goto(f"{base}/admin/login/?next={KEYS}add/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", "pw-for-tests")
    page.click("input[type=submit]")
    page.select_option("#id_instance", "acme")
    page.fill("#id_label", "Sales reps")
    page.fill("#id_secret", secret)
    page.click("input[name=_save]")
    page.wait_for_selector("ul.messagelist li.success")
    row = page.locator("#result_list tbody tr", has_text="Sales reps")
    assert row.locator("td.field-hint_shown").inner_text() == f"…{secret[-4:]}"
    assert row.locator("td.field-instance").inner_text() == "acme"
    _assert_hidden(page, secret)
    key = JobNimbusKey.objects.get()
    assert vault.decrypt(key.ciphertext) == secret

    page.goto(f"{base}/admin/managed/keyassignment/add/")
    page.select_option("#id_key", str(key.pk))
    page.click(".field-user .select2-selection")
    page.fill(".select2-container--open .select2-search__field", "ali")
    page.click(".select2-results__option:text-is('alice')")
    page.click("input[name=_save]")
    page.wait_for_selector("ul.messagelist li.success")
    assert KeyAssignment.objects.get().user == User.objects.get(username="alice")

    page.goto(f"{base}{KEYS}")
    row = page.locator("#result_list tbody tr", has_text="Sales reps")
    assert row.locator("td.field-users").inner_text() == "1"
    _assert_hidden(page, secret, key.ciphertext)
    page.click("#result_list a:text('Sales reps')")
    page.wait_for_selector("#id_secret")
    assert page.input_value("#id_secret") == ""
    assert f"…{secret[-4:]}" in page.inner_text(".field-hint_shown")
    _assert_hidden(page, secret, key.ciphertext)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "managed-admin-key.png"), full_page=True)
