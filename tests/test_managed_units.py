"""Managed mode's parts on their own: the key vault (encryption, rotation, who runs with which key), the settings it
refuses to start with, and the Client ID Metadata Document fetcher against a real local HTTPS server."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth.models import Group, User
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.test import Client
from oauth2_provider.cimd import CIMDError, resolve_cimd_application
from oauth2_provider.models import get_application_model

from jobnimbus_site import env
from managed import vault
from managed.cimd import MetadataFetcher
from managed.models import JobNimbusKey, KeyAssignment
from tests.fixtures.managed import DocumentServer, Reply

ROOT = Path(__file__).resolve().parent.parent
Application = get_application_model()


def fernet_key() -> str:
    return Fernet.generate_key().decode()


def secret_key() -> str:
    return "jnkey_" + secrets.token_hex(12)


def stored_key(secret: str, label: str | None = None, instance: str = "demo", enabled: bool = True) -> JobNimbusKey:
    key = JobNimbusKey(instance=instance, label=label or f"key-{secrets.token_hex(3)}", enabled=enabled)
    vault.store(key, secret)
    key.save()
    return key


def user(name: str | None = None) -> User:
    return User.objects.create_user(username=name or f"u-{secrets.token_hex(4)}")


# --- The vault: encryption at rest -------------------------------------------------------------------------------


def test_encrypt_decrypt_round_trip_and_the_ciphertext_hides_the_secret(settings: Any) -> None:
    settings.MANAGED_KEY_ENCRYPTION_KEYS = [fernet_key()]
    secret = secret_key()
    ciphertext = vault.encrypt(secret)
    assert vault.decrypt(ciphertext) == secret
    assert secret not in ciphertext
    assert secret[6:] not in ciphertext  # not even the random part
    assert vault.encrypt(secret) != ciphertext  # a fresh IV each time: equal keys are not recognisable


@pytest.mark.django_db
def test_a_stored_key_keeps_only_ciphertext_and_a_hint(settings: Any) -> None:
    settings.MANAGED_KEY_ENCRYPTION_KEYS = [fernet_key()]
    secret = secret_key()
    key = stored_key(secret)
    row = JobNimbusKey.objects.values().get(pk=key.pk)
    assert row["hint"] == secret[-4:]
    assert all(secret not in str(value) for value in row.values())
    assert secret not in repr(vault.key_for_user(_mapped_user(key)))  # HeldKey keeps the secret out of repr


def _mapped_user(key: JobNimbusKey) -> User:
    someone = user()
    KeyAssignment.objects.create(user=someone, key=key)
    return someone


def test_decrypting_with_another_key_names_the_fix(settings: Any) -> None:
    settings.MANAGED_KEY_ENCRYPTION_KEYS = [fernet_key()]
    ciphertext = vault.encrypt(secret_key())
    settings.MANAGED_KEY_ENCRYPTION_KEYS = [fernet_key()]  # the old key dropped before rotation
    with pytest.raises(ImproperlyConfigured, match="rotate_key_encryption"):
        vault.decrypt(ciphertext)


def test_no_encryption_key_is_improperly_configured(settings: Any) -> None:
    settings.MANAGED_KEY_ENCRYPTION_KEYS = []
    with pytest.raises(ImproperlyConfigured, match="MANAGED_KEY_ENCRYPTION_KEYS"):
        vault.encrypt("anything-at-all-123")


@pytest.mark.django_db
def test_rotation_reencrypts_every_key_under_the_new_one(settings: Any) -> None:
    old, new = fernet_key(), fernet_key()
    settings.MANAGED_KEY_ENCRYPTION_KEYS = [old]
    secrets_by_pk = {stored_key(secret).pk: secret for secret in (secret_key(), secret_key(), secret_key())}
    before = dict(JobNimbusKey.objects.values_list("pk", "ciphertext"))

    settings.MANAGED_KEY_ENCRYPTION_KEYS = [new, old]
    out = StringIO()
    call_command("rotate_key_encryption", stdout=out)
    assert "Re-encrypted 3 JobNimbus key(s)" in out.getvalue()

    settings.MANAGED_KEY_ENCRYPTION_KEYS = [new]  # the old key removed: every key still decrypts
    for key in JobNimbusKey.objects.all():
        assert key.ciphertext != before[key.pk]
        assert vault.decrypt(key.ciphertext) == secrets_by_pk[key.pk]
        assert vault.key_for_user(_mapped_user(key)).secret == secrets_by_pk[key.pk]

    settings.MANAGED_KEY_ENCRYPTION_KEYS = [old]  # and the old key alone no longer opens them
    with pytest.raises(ImproperlyConfigured, match="rotate_key_encryption"):
        vault.decrypt(JobNimbusKey.objects.first().ciphertext)  # type: ignore[union-attr]


@pytest.mark.django_db
def test_dropping_the_old_key_before_rotating_names_the_fix(settings: Any) -> None:
    old, new = fernet_key(), fernet_key()
    settings.MANAGED_KEY_ENCRYPTION_KEYS = [old]
    someone = _mapped_user(stored_key(secret_key()))
    settings.MANAGED_KEY_ENCRYPTION_KEYS = [new]
    with pytest.raises(ImproperlyConfigured) as refused:
        vault.key_for_user(someone)
    assert "MANAGED_KEY_ENCRYPTION_KEYS" in str(refused.value)
    assert "rotate_key_encryption" in str(refused.value)


# --- The vault: which key a user runs with -----------------------------------------------------------------------


@pytest.fixture
def keys(settings: Any) -> Any:
    settings.MANAGED_KEY_ENCRYPTION_KEYS = [fernet_key()]
    return settings


def _group(key: JobNimbusKey, *members: User) -> Group:
    group = Group.objects.create(name=f"g-{secrets.token_hex(4)}")
    KeyAssignment.objects.create(group=group, key=key)
    for member in members:
        member.groups.add(group)
    return group


@pytest.mark.django_db
def test_a_user_mapping_wins_over_the_groups(keys: Any) -> None:
    own, groups = secret_key(), secret_key()
    someone = user()
    _group(stored_key(groups, label="sales"), someone)
    _group(stored_key(secret_key(), label="office"), someone)  # even two groups on different keys
    KeyAssignment.objects.create(user=someone, key=stored_key(own, label="own"))
    held = vault.key_for_user(someone)
    assert held.secret == own
    assert held.label == "own"


@pytest.mark.django_db
def test_one_group_mapping_is_used(keys: Any) -> None:
    secret = secret_key()
    someone = user()
    key = stored_key(secret, label="sales", instance="acme")
    _group(key, someone)
    held = vault.key_for_user(someone)
    assert (held.secret, held.key_id, held.instance, held.label) == (secret, key.pk, "acme", "sales")


@pytest.mark.django_db
def test_two_groups_on_the_same_key_are_one_key(keys: Any) -> None:
    secret = secret_key()
    key = stored_key(secret)
    someone = user()
    _group(key, someone)
    _group(key, someone)
    assert vault.key_for_user(someone).secret == secret


@pytest.mark.django_db
def test_two_groups_on_two_keys_is_no_key_saying_why(keys: Any) -> None:
    someone = user()
    _group(stored_key(secret_key(), label="sales"), someone)
    _group(stored_key(secret_key(), label="office"), someone)
    with pytest.raises(vault.NoKeyMapped, match="groups are mapped to different JobNimbus keys") as refused:
        vault.key_for_user(someone)
    assert "map your user to one" in str(refused.value)


@pytest.mark.django_db
def test_no_mapping_is_no_key_saying_why(keys: Any) -> None:
    _group(stored_key(secret_key()))  # a group the user is not in
    KeyAssignment.objects.create(user=user(), key=stored_key(secret_key()))  # another user's key
    with pytest.raises(vault.NoKeyMapped, match="no JobNimbus key is mapped to your user or groups"):
        vault.key_for_user(user())


@pytest.mark.django_db
@pytest.mark.parametrize("through", ["user", "group"])
def test_a_disabled_key_is_no_key(keys: Any, through: str) -> None:
    someone = user()
    key = stored_key(secret_key(), enabled=False)
    if through == "user":
        KeyAssignment.objects.create(user=someone, key=key)
    else:
        _group(key, someone)
    with pytest.raises(vault.NoKeyMapped, match="disabled"):
        vault.key_for_user(someone)


# --- Settings: what managed mode refuses to start with ------------------------------------------------------------


def _start(overrides: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Start the settings in a fresh interpreter (as tests/test_settings.py does) and print managed mode's values."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("JOBNIMBUS_", "REDIS_", "DJANGO_", "MANAGED_"))}
    environ.update(DJANGO_SECRET_KEY="x" * 40, PYTHONPATH=str(ROOT), DJANGO_SETTINGS_MODULE="jobnimbus_site.settings")
    environ.update(overrides)
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.MANAGED_MODE, len(settings.MANAGED_KEY_ENCRYPTION_KEYS))"
    )
    return subprocess.run(
        [sys.executable, "-c", code], env=environ, capture_output=True, text=True, cwd=ROOT, check=False
    )


def test_managed_mode_without_encryption_keys_refuses_to_start() -> None:
    result = _start({"MANAGED_MODE": "true"})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "MANAGED_KEY_ENCRYPTION_KEYS must be set when MANAGED_MODE is on" in result.stderr


@pytest.mark.parametrize(
    ("value", "position"),
    [("not-a-fernet-key", 1), ("Zm9v", 1), (f"{Fernet.generate_key().decode()},short", 2), ("ĉu-ne-ascii", 1)],
    ids=["garbage", "too-short", "second-bad", "non-ascii"],
)
def test_a_malformed_encryption_key_refuses_to_start_naming_the_variable(value: str, position: int) -> None:
    result = _start({"MANAGED_MODE": "true", "MANAGED_KEY_ENCRYPTION_KEYS": value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert f"MANAGED_KEY_ENCRYPTION_KEYS is malformed: key {position} is not a Fernet key" in result.stderr
    assert value.split(",")[-1] not in result.stderr.split("ImproperlyConfigured")[-1]  # never echoes a key


def test_managed_mode_with_good_keys_starts() -> None:
    result = _start({"MANAGED_MODE": "true", "MANAGED_KEY_ENCRYPTION_KEYS": f"{fernet_key()}, {fernet_key()}"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "2"]


def test_header_mode_starts_without_encryption_keys() -> None:
    result = _start({})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "0"]


def test_read_fernet_keys_reads_a_list_newest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = fernet_key(), fernet_key()
    monkeypatch.setenv("TEST_FERNET_KEYS", f" {first} ,, {second} ")
    assert env.read_fernet_keys("TEST_FERNET_KEYS") == [first, second]
    monkeypatch.delenv("TEST_FERNET_KEYS")
    assert env.read_fernet_keys("TEST_FERNET_KEYS") == []


# --- Client ID Metadata Documents: the fetcher against a real HTTPS server ------------------------------------------


@pytest.fixture
def private_localhost(settings: Any, document_server: DocumentServer) -> DocumentServer:
    """Let the fetcher reach localhost (an operator's intranet client) and trust the server's certificate."""
    settings.MANAGED_CIMD_PRIVATE_HOSTS = ["localhost"]
    settings.MANAGED_CIMD_CA_FILE = str(document_server.ca_file)
    return document_server


DOCUMENT = {
    "client_name": "Intranet Assistant",
    "redirect_uris": ["http://127.0.0.1:3999/callback"],
    "grant_types": ["authorization_code", "refresh_token"],
    "token_endpoint_auth_method": "none",
}


def test_fetcher_reads_a_document_from_an_allowed_private_host(private_localhost: DocumentServer) -> None:
    url = private_localhost.serve("/client.json", DOCUMENT, headers={"Content-Type": "application/json",
                                                                    "Cache-Control": "max-age=600"})  # fmt: skip
    document, max_age = MetadataFetcher().fetch(url)
    assert document == {"client_id": url, **DOCUMENT}
    assert max_age == 600
    assert private_localhost.hits == ["/client.json"]


def test_fetcher_refuses_http_client_ids(private_localhost: DocumentServer) -> None:
    url = private_localhost.serve("/client.json", DOCUMENT).replace("https://", "http://")
    with pytest.raises(CIMDError, match="https"):
        MetadataFetcher().fetch(url)
    assert private_localhost.hits == []


def test_fetcher_refuses_a_loopback_host_not_allowed_without_asking_it(
    settings: Any, document_server: DocumentServer
) -> None:
    settings.MANAGED_CIMD_PRIVATE_HOSTS = []
    settings.MANAGED_CIMD_CA_FILE = str(document_server.ca_file)
    url = document_server.serve("/client.json", DOCUMENT)
    with pytest.raises(CIMDError, match="non-public address"):
        MetadataFetcher().fetch(url)
    assert document_server.hits == []  # refused on the resolved address: no request was made


def test_fetcher_refuses_the_ip_of_an_allowed_host_name(private_localhost: DocumentServer) -> None:
    # Allowing the name `localhost` does not allow its address written out.
    url = private_localhost.serve("/client.json", DOCUMENT).replace("localhost", "127.0.0.1")
    with pytest.raises(CIMDError, match="non-public address"):
        MetadataFetcher().fetch(url)
    assert private_localhost.hits == []


def test_fetcher_verifies_the_certificate_of_a_private_host(settings: Any, document_server: DocumentServer) -> None:
    settings.MANAGED_CIMD_PRIVATE_HOSTS = ["localhost"]
    settings.MANAGED_CIMD_CA_FILE = None  # the system's CAs only: the self-signed certificate is not trusted
    url = document_server.serve("/client.json", DOCUMENT)
    with pytest.raises(CIMDError, match="could not fetch"):
        MetadataFetcher().fetch(url)


def test_fetcher_refuses_an_oversize_document(private_localhost: DocumentServer) -> None:
    big = {**DOCUMENT, "padding": "x" * 6000}  # over CIMD_MAX_DOCUMENT_SIZE (5 KB)
    url = private_localhost.serve("/big.json", big)
    with pytest.raises(CIMDError, match="exceeds the maximum allowed size"):
        MetadataFetcher().fetch(url)
    fits = private_localhost.serve("/fits.json", {**DOCUMENT, "padding": "x" * 4000})
    assert MetadataFetcher().fetch(fits)[0]["padding"] == "x" * 4000


@pytest.mark.parametrize(
    ("reply", "complaint"),
    [
        (Reply(body=b"<html>client</html>", headers={"Content-Type": "text/html"}), "not JSON"),
        (Reply(body=b'{"client_id": ', headers={"Content-Type": "application/json"}), "not valid JSON"),
        (Reply(body=b'["a", "list"]', headers={"Content-Type": "application/json"}), "must be a JSON object"),
        (Reply(status=404, body=b"{}"), "HTTP 404"),
    ],
    ids=["html", "truncated", "list", "missing"],
)
def test_fetcher_refuses_what_is_not_a_json_document(
    private_localhost: DocumentServer, reply: Reply, complaint: str
) -> None:
    private_localhost.routes["/client.json"] = reply
    with pytest.raises(CIMDError, match=complaint):
        MetadataFetcher().fetch(private_localhost.url("/client.json"))


def test_fetcher_does_not_follow_redirects(private_localhost: DocumentServer) -> None:
    target = private_localhost.serve("/real.json", DOCUMENT)
    redirect = private_localhost.serve("/moved.json", status=302, headers={"Location": target})
    with pytest.raises(CIMDError, match="HTTP 302"):
        MetadataFetcher().fetch(redirect)
    assert private_localhost.hits == ["/moved.json"]


@pytest.mark.django_db
def test_a_document_naming_another_client_id_registers_nothing(
    private_localhost: DocumentServer, settings: Any
) -> None:
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "CIMD_FAILURE_BACKOFF_SECONDS": 0}
    path = f"/{secrets.token_hex(4)}/client.json"
    url = private_localhost.serve(path, {**DOCUMENT, "client_id": private_localhost.url("/someone-else.json")})
    assert resolve_cimd_application(url, None) is None
    assert private_localhost.hits == [path]  # fetched, and refused for what it says
    assert not Application.objects.exists()


@pytest.mark.django_db
def test_a_matching_document_registers_a_public_client(private_localhost: DocumentServer) -> None:
    url = private_localhost.serve(f"/{secrets.token_hex(4)}/client.json", DOCUMENT)
    application = resolve_cimd_application(url, None)
    assert application is not None
    stored = Application.objects.get()
    assert (stored.client_id, stored.name) == (url, "Intranet Assistant")
    assert stored.client_type == Application.CLIENT_PUBLIC
    assert stored.redirect_uris == "http://127.0.0.1:3999/callback"


def _authorize_as_cimd_client(settings: Any, client_id: str) -> Any:
    settings.MANAGED_MODE = True
    settings.MANAGED_KEY_ENCRYPTION_KEYS = [fernet_key()]
    browser = Client()
    browser.force_login(user())
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": "http://127.0.0.1:3999/callback",
        "scope": "jobnimbus:read",
        "state": "s",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
        "resource": "http://testserver/mcp",
    }
    return browser.get("/oauth/authorize/", query)


@pytest.mark.django_db
def test_authorize_resolves_a_cimd_client_through_the_managed_fetcher(
    private_localhost: DocumentServer, settings: Any
) -> None:
    path = f"/{secrets.token_hex(4)}/client.json"
    url = private_localhost.serve(path, DOCUMENT)
    page = _authorize_as_cimd_client(settings, url)
    assert page.status_code == 200
    assert 'name="allow"' in page.content.decode()  # the consent form for it
    assert "Intranet Assistant" in page.content.decode()
    assert Application.objects.get().client_id == url
    assert path in private_localhost.hits


@pytest.mark.django_db
def test_authorize_refuses_a_cimd_document_naming_another_client(
    private_localhost: DocumentServer, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    path = f"/{secrets.token_hex(4)}/client.json"
    url = private_localhost.serve(path, {**DOCUMENT, "client_id": private_localhost.url("/other.json")})
    with caplog.at_level("INFO", logger="oauth2_provider.cimd"):
        page = _authorize_as_cimd_client(settings, url)
    assert page.status_code == 400
    assert "Invalid client_id parameter value" in page.content.decode()  # an unknown client: nothing to consent to
    assert 'name="allow"' not in page.content.decode()
    assert any("does not match the client_id URL" in r.getMessage() for r in caplog.records)
    assert not Application.objects.exists()
    assert private_localhost.hits == [path]


@pytest.mark.django_db
def test_the_token_endpoint_neither_fetches_nor_stores_an_unknown_cimd_client(
    private_localhost: DocumentServer, settings: Any
) -> None:
    # Anyone may post to the token endpoint: a made-up client_id URL there must not make this server fetch it nor
    # add an application (the authorization page, reached signed in, is where a CIMD client is first looked up).
    settings.MANAGED_MODE = True
    url = private_localhost.serve(f"/{secrets.token_hex(4)}/client.json", DOCUMENT)
    answer = Client().post(
        "/oauth/token/",
        {
            "grant_type": "authorization_code",
            "code": "made-up",
            "client_id": url,
            "redirect_uri": "http://127.0.0.1:3999/callback",
            "code_verifier": "v" * 50,
        },
    )
    assert answer.status_code in (400, 401)
    assert private_localhost.hits == []
    assert not Application.objects.exists()
