"""Issue #12, item 8: an admin decides the most a developer's keys may do. By default a role's keys
may do what the role may do in the dashboard: a developer who cannot edit contacts cannot mint a
`contacts:write` key. The limit is stored in the database, set on Settings > API key limits
(audited), enforced where keys are made (dashboard and command) and on every API request."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from rest_framework.test import APIClient

from mailplatform.models import ApiKey, AuditEntry, ScopeCeiling

pytestmark = pytest.mark.django_db


def _ceiling_post(client, role, scopes):
    return client.post(reverse("api-key-limits"), {"role": role, f"{role}-scopes": scopes})


def test_a_developer_cannot_mint_a_key_above_their_dashboard_role(developer_client):
    page = developer_client.get(reverse("api-keys")).content.decode()
    assert 'value="contacts:write"' not in page and 'value="send"' not in page  # not offered
    assert 'value="contacts:read"' in page and 'value="webhooks:manage"' in page
    for scopes in (["contacts:write"], ["contacts:read", "send"], ["templates:write"], ["relays:admin"]):
        response = developer_client.post(reverse("api-keys"), {"name": "sneaky", "scopes": scopes})
        assert response.status_code == 200  # the form again, refused
        assert response.context["form"].errors
    assert not ApiKey.objects.exists()


def test_the_service_refuses_too_and_stores_nothing(make_user):
    from mailplatform.services import ApiKeyError, api_key_create

    developer = make_user("developer", "devo")
    with pytest.raises(ApiKeyError, match="contacts:write") as refused:
        api_key_create(user=developer, name="x", scopes=["contacts:read", "contacts:write"])
    assert refused.value.field == "scopes" and "API key limits" in str(refused.value)
    with pytest.raises(CommandError, match="may not grant"):
        call_command("create_api_key", "devo", "--name", "x", "--scope", "send", stdout=io.StringIO())
    assert not ApiKey.objects.exists()


def test_an_admin_raises_the_ceiling_audited_and_the_developer_may_then_mint(admin_client, client, make_user):
    developer = make_user("developer", "devi")
    response = _ceiling_post(
        admin_client, "developer", ["contacts:read", "contacts:write", "events:read", "webhooks:manage"]
    )
    assert response.status_code == 302, response.content.decode()[:500]
    assert ScopeCeiling.objects.get(role="developer").scopes == [
        "contacts:read", "contacts:write", "events:read", "webhooks:manage"
    ]  # fmt: skip
    entry = AuditEntry.objects.get(action="api_key.ceiling_changed")
    assert entry.actor_label == "boss" and entry.details["role"] == "developer"
    assert "contacts:write" in entry.details["to"] and "contacts:write" not in entry.details["from"]
    assert "templates:read" in entry.details["from"] and "templates:read" not in entry.details["to"]

    client.force_login(developer)
    assert 'value="contacts:write"' in client.get(reverse("api-keys")).content.decode()
    assert 'value="templates:read"' not in client.get(reverse("api-keys")).content.decode()
    response = client.post(reverse("api-keys"), {"name": "crm", "scopes": ["contacts:write"]})
    assert response.status_code == 302
    assert ApiKey.objects.get().scopes == ["contacts:write"]


def test_a_lowered_ceiling_shrinks_keys_made_earlier_at_once(admin_user, make_user, developer_keys_may):
    from mailplatform.services import api_key_create, scope_ceiling_set

    developer_keys_may("contacts:write")
    developer = make_user("developer", "devu")
    _, full_key = api_key_create(user=developer, name="crm", scopes=["contacts:read", "contacts:write"])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {full_key}")
    assert api.post("/api/v1/contacts/", {"email": "a@example.com"}, format="json").status_code == 201
    scope_ceiling_set("developer", ["contacts:read", "webhooks:manage"], by=admin_user)
    refused = api.post("/api/v1/contacts/", {"email": "b@example.com"}, format="json")
    assert refused.status_code == 403 and "contacts:write" in refused.json()["detail"]
    from contacts.models import Contact

    assert list(Contact.objects.values_list("email", flat=True)) == ["a@example.com"]
    assert api.get("/api/v1/contacts/").status_code == 200  # what is still allowed still works


@pytest.mark.parametrize("scopes", [["relays:admin"], ["contacts:read", "no-such-scope"]])
def test_admin_only_and_unknown_scopes_never_enter_a_ceiling(admin_client, scopes):
    response = _ceiling_post(admin_client, "developer", scopes)
    assert response.status_code == 200 and response.context is not None
    assert not ScopeCeiling.objects.exists()
    assert not AuditEntry.objects.filter(action="api_key.ceiling_changed").exists()


@pytest.mark.parametrize("who", ["marketer_client", "developer_client", "client"])
def test_only_an_admin_may_change_the_ceiling(request, who):
    visitor = request.getfixturevalue(who)
    response = _ceiling_post(visitor, "developer", ["contacts:write", "send", "templates:write"])
    assert response.status_code in (302, 403)
    if who == "client":
        assert response.url.startswith(reverse("login"))
    assert not ScopeCeiling.objects.exists()
    assert not AuditEntry.objects.filter(action="api_key.ceiling_changed").exists()


def test_the_ceiling_service_refuses_a_non_admin(make_user):
    from mailplatform.errors import PlatformError
    from mailplatform.services import scope_ceiling_set

    with pytest.raises(PlatformError):
        scope_ceiling_set("developer", ["contacts:write"], by=make_user("developer", "devx"))
    with pytest.raises(PlatformError):
        scope_ceiling_set("admin", ["contacts:read"], by=make_user("admin", "adx"))
    assert not ScopeCeiling.objects.exists()
