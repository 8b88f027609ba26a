"""API keys: shown once, stored hashed, scoped within the creator's role, expiring, revocable."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from mailplatform.models import ApiKey, AuditEntry
from mailplatform.scopes import SCOPES, is_admin_only, role_may_grant
from mailplatform.services import ApiKeyError, api_key_create, api_key_revoke, user_set_active, user_set_role
from tests.dbstate import changed_tables, db_fingerprint

pytestmark = pytest.mark.django_db


def _client(full_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {full_key}")
    return client


def test_key_is_stored_hashed_and_named_by_its_prefix(make_user):
    user = make_user("developer")
    key, full_key = api_key_create(user=user, name="signup form", scopes=["contacts:read"])
    assert full_key.startswith(f"phk_{key.prefix}_") and len(full_key) > 40
    stored = ApiKey.objects.get(pk=key.pk)
    assert stored.secret_hash == hashlib.sha256(full_key.encode()).hexdigest()
    assert full_key not in str(ApiKey.objects.filter(pk=key.pk).values().first())
    assert AuditEntry.objects.filter(action="api_key.created", target_id=str(key.pk)).exists()


def test_scope_rules_by_role():
    assert all(role_may_grant("admin", s) for s in SCOPES)
    admin_only = [s for s in SCOPES if is_admin_only(s)]
    assert admin_only == ["relays:admin"]
    # By default a role's keys may do what the role may do in the dashboard (an admin may change it).
    developer = {"contacts:read", "templates:read", "campaigns:read", "automations:read", "events:read",
                 "webhooks:manage"}  # fmt: skip
    assert {s for s in SCOPES if role_may_grant("developer", s)} == developer
    assert role_may_grant("marketer", "contacts:write") and not role_may_grant("marketer", "webhooks:manage")


def test_scopes_never_exceed_the_creators_role(make_user):
    developer = make_user("developer")
    with pytest.raises(ApiKeyError, match="relays:admin"):
        api_key_create(user=developer, name="x", scopes=["contacts:read", "relays:admin"])
    with pytest.raises(ApiKeyError, match="may not create API keys"):
        api_key_create(user=make_user("marketer"), name="x", scopes=["contacts:read"])
    with pytest.raises(ApiKeyError, match="Unknown scope"):
        api_key_create(user=developer, name="x", scopes=["everything"])
    with pytest.raises(ApiKeyError, match="future"):
        api_key_create(user=developer, name="x", scopes=["events:read"], expires_at=timezone.now())
    assert not ApiKey.objects.exists()


def test_key_authenticates_and_records_last_use(make_key):
    key, full_key = make_key("developer", ["webhooks:manage"])
    assert key.last_used_at is None
    response = _client(full_key).get("/api/v1/key")
    assert response.status_code == 200, response.content
    assert response.json()["scopes"] == ["webhooks:manage"]
    assert response.json()["prefix"] == key.display_prefix
    key.refresh_from_db()
    assert key.last_used_at is not None


@pytest.mark.parametrize(
    "mangle",
    [lambda k: k[:-1] + ("A" if k[-1] != "A" else "B"), lambda k: "phk_00000000_" + k.split("_", 2)[2]],
)
def test_wrong_secret_or_unknown_prefix_is_401_problem(make_key, mangle):
    _, full_key = make_key("developer", ["webhooks:manage"])
    response = _client(mangle(full_key)).get("/api/v1/key")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["detail"] == "Invalid API key."


def test_no_key_is_401(client):
    response = APIClient().get("/api/v1/webhooks/")
    assert response.status_code == 401 and response.json()["status"] == 401


def test_revoked_and_expired_keys_stop_working(make_key, make_user):
    key, full_key = make_key("developer", ["webhooks:manage"])
    assert _client(full_key).get("/api/v1/key").status_code == 200
    api_key_revoke(key, by=key.created_by)
    response = _client(full_key).get("/api/v1/key")
    assert response.status_code == 401 and "revoked" in response.json()["detail"]

    key2, full_key2 = make_key(
        "developer", ["webhooks:manage"], expires_at=timezone.now() + dt.timedelta(hours=1)
    )
    assert _client(full_key2).get("/api/v1/key").status_code == 200
    ApiKey.objects.filter(pk=key2.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    response = _client(full_key2).get("/api/v1/key")
    assert response.status_code == 401 and "expired" in response.json()["detail"]


def test_keys_shrink_with_their_owner(make_key, make_user):
    admin = make_user("admin")
    key, full_key = make_key(user=admin, scopes=["relays:admin", "webhooks:manage"])
    boss = make_user("admin")
    user_set_role(admin, "marketer", by=boss)
    # A marketer may not manage webhooks: the key loses what the role lost.
    response = _client(full_key).get("/api/v1/webhooks/")
    assert response.status_code == 403 and "no longer allows" in response.json()["detail"]
    user_set_active(admin, False, by=boss)
    assert _client(full_key).get("/api/v1/key").status_code == 401


def test_dashboard_creates_key_shown_once(developer_client):
    page = developer_client.get(reverse("api-keys")).content.decode()
    assert "relays:admin" not in page and "contacts:write" not in page and "webhooks:manage" in page
    response = developer_client.post(
        reverse("api-keys"),
        {"name": "crm sync", "scopes": ["contacts:read", "webhooks:manage"], "expires_in_days": "30"},
        follow=True,
    )
    assert response.redirect_chain == [(reverse("api-keys"), 302)]  # a reload cannot post again
    full_key = response.context["new_key"]
    key = ApiKey.objects.get(name="crm sync")
    assert full_key.startswith(key.display_prefix) and key.scopes == ["contacts:read", "webhooks:manage"]
    assert key.expires_at > timezone.now() + dt.timedelta(days=29)
    again = developer_client.get(reverse("api-keys")).content.decode()
    assert key.display_prefix in again and full_key not in again


def test_dashboard_refuses_a_scope_the_role_lacks(developer_client):
    response = developer_client.post(reverse("api-keys"), {"name": "sneaky", "scopes": ["relays:admin"]})
    assert response.status_code == 200 and not ApiKey.objects.exists()
    assert "relays:admin" in response.content.decode()  # named in the error


def test_marketer_has_no_key_page(marketer_client):
    assert marketer_client.get(reverse("api-keys")).status_code == 403


def test_developer_sees_and_revokes_only_own_keys(developer_client, make_key):
    other, _ = make_key("developer", ["events:read"], name="someone else's")
    assert "someone else" not in developer_client.get(reverse("api-keys")).content.decode()
    before = db_fingerprint()
    assert developer_client.post(reverse("api-key-revoke", args=[other.pk])).status_code == 404
    assert changed_tables(before) == []  # the other key is not revoked
    other.refresh_from_db()
    assert other.revoked_at is None


def test_admin_revokes_any_key(admin_client, make_key):
    key, full_key = make_key("developer", ["webhooks:manage"])
    assert admin_client.post(reverse("api-key-revoke", args=[key.pk])).status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert _client(full_key).get("/api/v1/key").status_code == 401
