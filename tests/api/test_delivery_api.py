"""Transactional send with Idempotency-Key, messages, events and bounces, relays."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

pytestmark = pytest.mark.django_db


@pytest.fixture
def template(admin_user):
    from templates.services import template_create

    return template_create(
        name="Receipt",
        subject="Your order {{ order }}",
        html="<p>Hi {{ contact.first_name }}, order {{ order }}</p>",
    )


@pytest.fixture
def sender(api_client_for, developer_keys_may):
    developer_keys_may("send")
    return api_client_for("developer", ["send", "events:read", "templates:read"])


def test_send_once_per_idempotency_key(sender, template):
    from delivery.models import Message

    body = {"template": template.pk, "to": "buyer@example.com", "data": {"order": "A-17"}}
    first = sender.post("/api/v1/send", body, format="json", HTTP_IDEMPOTENCY_KEY="order-A-17")
    assert first.status_code == 202, first.content
    message = first.json()
    assert message["email"] == "buyer@example.com" and message["state"] == "queued"
    again = sender.post("/api/v1/send", body, format="json", HTTP_IDEMPOTENCY_KEY="order-A-17")
    assert again.status_code == 200 and again.json()["id"] == message["id"]
    assert again["Idempotent-Replayed"] == "true"
    assert Message.objects.count() == 1
    assert Message.objects.get().data == {"order": "A-17"}
    reused = sender.post(
        "/api/v1/send",
        {**body, "to": "someone-else@example.com"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="order-A-17",
    )
    assert reused.status_code == 409 and "different request" in reused.json()["detail"]
    assert Message.objects.count() == 1
    # Without a key every call is a new message.
    assert sender.post("/api/v1/send", body, format="json").status_code == 202
    assert Message.objects.count() == 2
    shown = sender.get(f"/api/v1/messages/{message['id']}/")
    assert shown.status_code == 200 and shown.json()["state"] == "queued"


def test_idempotency_keys_belong_to_their_api_key(api_client_for, template, developer_keys_may):
    from delivery.models import Message

    developer_keys_may("send")
    body = {"template": template.pk, "to": "x@example.com"}
    a = api_client_for("developer", ["send"]).post(
        "/api/v1/send", body, format="json", HTTP_IDEMPOTENCY_KEY="1"
    )
    b = api_client_for("developer", ["send"]).post(
        "/api/v1/send", body, format="json", HTTP_IDEMPOTENCY_KEY="1"
    )
    assert a.status_code == b.status_code == 202 and a.json()["id"] != b.json()["id"]
    assert Message.objects.count() == 2


def test_send_to_a_contact_by_id_and_to_a_suppressed_address(sender, template):
    from contacts.services import contact_create, suppression_add

    contact = contact_create(email="known@example.com", first_name="Kay")
    sent = sender.post("/api/v1/send", {"template": template.pk, "to": str(contact.pk)}, format="json")
    assert sent.status_code == 202 and sent.json()["contact"] == contact.pk
    suppression_add("blocked@example.com", reason="test", source="test")
    skipped = sender.post(
        "/api/v1/send", {"template": template.pk, "to": "blocked@example.com"}, format="json"
    )
    assert skipped.status_code == 202 and skipped.json()["state"] == "skipped"


@pytest.mark.parametrize(
    "body,field",
    [
        ({"template": 987654, "to": "a@example.com"}, "template"),
        ({"template": "1", "to": "a@example.com"}, "template"),
        ({"to": "a@example.com"}, "template"),
        ({"template": 1, "to": "not an address"}, "to"),
        ({"template": 1, "to": "a@example.com\r\nBcc: victim@example.com"}, "to"),
        ({"template": 1, "to": "a@example.com", "data": "x"}, "data"),
        ({"template": 1, "to": "a@example.com", "cc": "b@example.com"}, "cc"),
    ],
)
def test_bad_send_requests_name_the_field(sender, template, body, field):
    if body.get("template") == 1:
        body = {**body, "template": template.pk}
    response = sender.post("/api/v1/send", body, format="json")
    assert response.status_code == 400, response.content
    assert field in [e["field"] for e in response.json()["errors"]], response.json()


def test_too_long_idempotency_key_is_400(sender, template):
    response = sender.post(
        "/api/v1/send",
        {"template": template.pk, "to": "a@example.com"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k" * 500,
    )
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "Idempotency-Key"


def test_events_and_bounces_filter_by_kind_contact_and_time(sender, template):
    from contacts.services import contact_create
    from delivery.ledger import message_event_record
    from delivery.models import Message

    contact = contact_create(email="ev@example.com")
    sender.post("/api/v1/send", {"template": template.pk, "to": str(contact.pk)}, format="json")
    sender.post("/api/v1/send", {"template": template.pk, "to": "other@example.com"}, format="json")
    mine, other = Message.objects.order_by("id")
    old = timezone.now() - dt.timedelta(days=3)
    message_event_record(mine.pk, "sent", at=old)
    message_event_record(mine.pk, "bounced", {"kind": "hard"})
    message_event_record(other.pk, "opened")
    events = sender.get("/api/v1/events/").json()["results"]
    assert [e["kind"] for e in events] == ["opened", "bounced", "sent"]
    assert [e["kind"] for e in sender.get(f"/api/v1/events/?contact={contact.pk}").json()["results"]] == [
        "bounced",
        "sent",
    ]
    since = (timezone.now() - dt.timedelta(days=1)).isoformat().replace("+00:00", "Z")
    recent = sender.get("/api/v1/events/", {"since": since}).json()["results"]
    assert {e["kind"] for e in recent} == {"opened", "bounced"}
    assert sender.get("/api/v1/events/?kind=exploded").status_code == 400
    assert sender.get("/api/v1/events/?since=yesterday").json()["errors"][0]["field"] == "since"


def test_bounces_are_the_classified_ones(sender, template):
    from contacts.services import contact_create
    from delivery.bounces.services import smtp_rejection_process
    from delivery.models import Message

    contact = contact_create(email="gone@example.com")
    other = contact_create(email="full@example.com")
    for who in (contact, other):
        sender.post("/api/v1/send", {"template": template.pk, "to": str(who.pk)}, format="json")
    gone, full = Message.objects.order_by("id")
    smtp_rejection_process(gone.pk, code=550, reply="5.1.1 <gone@example.com>: user unknown", stage="rcpt")
    smtp_rejection_process(full.pk, code=552, reply="5.2.2 mailbox full", stage="rcpt")
    bounces = sender.get("/api/v1/bounces/").json()["results"]
    assert {b["recipient"] for b in bounces} == {"gone@example.com", "full@example.com"}
    hard = sender.get("/api/v1/bounces/", {"kind": "hard"}).json()["results"]
    assert [b["recipient"] for b in hard] == ["gone@example.com"] and hard[0]["contact_id"] == contact.pk
    assert "5.1.1" in hard[0]["diagnostic"] and hard[0]["action"]
    mine = sender.get("/api/v1/bounces/", {"contact": other.pk}).json()["results"]
    assert [b["recipient"] for b in mine] == ["full@example.com"]
    assert sender.get("/api/v1/bounces/?kind=nope").json()["errors"][0]["field"] == "kind"


def test_relays_are_admin_only_with_a_write_only_password(api_client_for):
    from delivery.models import Relay

    admin = api_client_for("admin", ["relays:admin"])
    created = admin.post(
        "/api/v1/relays/",
        {
            "name": "SES",
            "host": "email-smtp.example.com",
            "port": 587,
            "username": "u",
            "password": "s3cret-pw",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    relay = created.json()
    assert relay["has_password"] is True and "password" not in relay
    assert "s3cret-pw" not in admin.get(f"/api/v1/relays/{relay['id']}/").content.decode()
    assert "s3cret-pw" not in Relay.objects.get(pk=relay["id"]).password_encrypted
    patched = admin.patch(f"/api/v1/relays/{relay['id']}/", {"per_second": 14}, format="json")
    assert patched.status_code == 200 and patched.json()["per_second"] == 14
    from delivery.relays import relay_password

    assert relay_password(Relay.objects.get(pk=relay["id"])) == "s3cret-pw"  # kept when not sent
    bad = admin.post("/api/v1/relays/", {"name": "x", "host": "h", "port": 70000}, format="json")
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "port"
    # A developer's key cannot carry the scope, and a key whose owner lost admin loses it.
    developer = api_client_for("developer", ["events:read"])
    assert developer.get("/api/v1/relays/").status_code == 403
