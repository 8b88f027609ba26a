"""Issue #12, item 8: the smaller holes found at the same time, each through its public interface
where it has one."""

from __future__ import annotations

import pytest
from django.test import override_settings

pytestmark = pytest.mark.django_db


# --- a template preview with a contact needs contacts:read as well ---


def test_a_templates_read_key_cannot_read_a_contact_through_a_preview(api_client_for):
    from contacts.services import contact_create
    from templates.models import EmailTemplate

    contact = contact_create(email="secret@example.com", first_name="Hidden")
    writer = api_client_for("admin", ["templates:write", "templates:read"])
    created = writer.post(
        "/api/v1/templates/",
        {"name": "t", "subject": "Hi", "html": "<p>{{ contact.first_name }}</p>"},
        format="json",
    )
    template_id = created.json()["id"]
    reader = api_client_for("admin", ["templates:read"])
    response = reader.post(f"/api/v1/templates/{template_id}/preview", {"contact": contact.pk}, format="json")
    assert response.status_code == 403 and "contacts:read" in response.json()["detail"]
    assert "Hidden" not in response.content.decode()
    both = api_client_for("admin", ["templates:read", "contacts:read"])
    response = both.post(f"/api/v1/templates/{template_id}/preview", {"contact": contact.pk}, format="json")
    assert response.status_code == 200 and "Hidden" in response.json()["html"]
    assert EmailTemplate.objects.count() == 1


# --- the webhook SSRF guard unwraps IPv4 inside NAT64 and 6to4 addresses ---


@pytest.mark.parametrize(
    "host",
    [
        "[64:ff9b::7f00:1]",
        "[64:ff9b::a00:1]",
        "[2002:7f00:1::1]",
        "[2002:a9fe:a9fe::1]",
        "[::ffff:127.0.0.1]",
    ],
)
def test_webhook_urls_reaching_a_private_ipv4_through_ipv6_are_refused(api_client_for, host):
    from mailplatform.models import WebhookEndpoint

    client = api_client_for("admin", ["webhooks:manage"])
    response = client.post(
        "/api/v1/webhooks/", {"url": f"https://{host}/hook", "event_types": ["bounced"]}, format="json"
    )
    assert response.status_code == 400, response.content
    assert not WebhookEndpoint.objects.exists()


# --- audit entries: never added or edited in Django admin; role changes there are audited ---


def test_django_admin_cannot_add_audit_entries(admin_client):
    from mailplatform.models import AuditEntry

    before = AuditEntry.objects.count()
    assert admin_client.get("/admin/mailplatform/auditentry/add/").status_code == 403
    admin_client.post("/admin/mailplatform/auditentry/add/", {"action": "forged", "actor_label": "x"})
    assert AuditEntry.objects.count() == before


def test_a_role_changed_in_django_admin_is_audited(admin_client, admin_user, make_user):
    from mailplatform.admin import PlatformUserAdmin
    from mailplatform.models import AuditEntry, User

    target = make_user("developer", "devon")
    target.role = "admin"
    request = type("R", (), {"user": admin_user})()
    PlatformUserAdmin(User, None).save_model(request, target, form=None, change=True)
    entry = AuditEntry.objects.get(action="user.role_changed")
    assert entry.details == {"from": "developer", "to": "admin", "via": "admin"}


# --- a relay's or mailbox's new host or port clears the stored password ---


def test_a_relay_pointed_at_another_server_forgets_its_password(admin_user):
    from delivery.relays import relay_save

    relay = relay_save(by=admin_user, password="relay-pw", name="r", host="smtp.example.com", port=587)
    assert relay.password_encrypted
    relay = relay_save(relay, by=admin_user, name="renamed")
    assert relay.password_encrypted  # other fields keep it
    relay = relay_save(relay, by=admin_user, host="attacker.example.net")
    relay.refresh_from_db()
    assert relay.password_encrypted == ""
    relay = relay_save(relay, by=admin_user, password="new-pw", port=2525)
    assert relay.password_encrypted  # a new password given with the new endpoint is kept


def test_a_mailbox_pointed_at_another_server_forgets_its_password(admin_client):
    from delivery.bounces.mailboxes import mailbox_set_password
    from delivery.bounces.models import BounceMailbox

    mailbox = BounceMailbox(name="b", host="imap.example.com", port=993, username="u")
    mailbox_set_password(mailbox, "pw")
    mailbox.save()
    form = {"name": "b", "protocol": mailbox.protocol, "host": "attacker.example.net", "port": 993,
            "security": mailbox.security, "username": "u", "folder": mailbox.folder, "max_per_poll": 100}  # fmt: skip
    response = admin_client.post(f"/bounces/mailboxes/{mailbox.pk}/", form)
    assert response.status_code == 302, response.content.decode()[:500]
    mailbox.refresh_from_db()
    assert mailbox.host == "attacker.example.net" and mailbox.password_encrypted == ""


# --- tokens still verify under SECRET_KEY_FALLBACKS after a key rotation ---


def test_tokens_verify_under_the_fallback_keys_after_a_rotation(settings):
    from contacts import tokens as contact_tokens
    from delivery import tracking, verp

    old = settings.SECRET_KEY
    bounce = verp.verp_address(42)
    unsubscribe = verp.message_token(42, "unsubscribe")
    track = tracking.token(7, 42)
    preferences = contact_tokens.preferences_token(5)
    with override_settings(SECRET_KEY="a-new-key-" + "n" * 50, SECRET_KEY_FALLBACKS=[old]):
        assert verp.message_id_from_address(bounce) == 42
        assert verp.message_id_from_token(unsubscribe, "unsubscribe") == 42
        assert tracking.parse_token(track) == (7, 42)
        assert contact_tokens.preferences_contact_id(preferences) == 5
    with override_settings(SECRET_KEY="a-new-key-" + "n" * 50, SECRET_KEY_FALLBACKS=[]):
        assert verp.message_id_from_address(bounce) is None
        assert tracking.parse_token(track) is None


def _admin_form_data(response) -> dict:
    """A Django admin change form's current values, as a browser would post them back."""
    form = response.context["adminform"].form
    data = {}
    for bound in form:
        value = bound.value()
        widget = bound.field.widget
        if hasattr(widget, "decompress"):  # split date and time
            for index, part in enumerate(widget.decompress(value)):
                data[f"{bound.html_name}_{index}"] = "" if part is None else str(part)
        elif isinstance(value, list | tuple):
            data[bound.html_name] = [str(v) for v in value]
        elif isinstance(value, bool):
            if value:
                data[bound.html_name] = "on"
        elif value is not None:
            data[bound.html_name] = str(value)
    return data


def test_a_role_changed_through_the_django_admin_pages_is_audited(admin_client, make_user):
    from mailplatform.models import AuditEntry, User

    target = make_user("developer", "devon")
    url = f"/admin/mailplatform/user/{target.pk}/change/"
    data = _admin_form_data(admin_client.get(url))
    data["role"] = "admin"
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    assert User.objects.get(pk=target.pk).role == "admin"
    entry = AuditEntry.objects.get(action="user.role_changed", target_id=str(target.pk))
    assert entry.actor_label == "boss" and entry.details == {
        "from": "developer",
        "to": "admin",
        "via": "admin",
    }


def test_django_admin_cannot_change_or_delete_audit_entries(admin_client, admin_user):
    from mailplatform.models import AuditEntry
    from mailplatform.services import audit_record

    entry = audit_record(admin_user, "contacts.exported", details={"rows": 3})
    before = list(AuditEntry.objects.values())
    change = f"/admin/mailplatform/auditentry/{entry.pk}/change/"
    response = admin_client.post(change, {"action": "nothing.happened", "actor_label": "someone else"})
    assert response.status_code in (302, 403)  # the read-only view never saves
    assert (
        admin_client.post(f"/admin/mailplatform/auditentry/{entry.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    bulk = admin_client.post(
        "/admin/mailplatform/auditentry/",
        {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"},
    )
    assert bulk.status_code in (200, 302)
    assert list(AuditEntry.objects.values()) == before
