"""Issue #12: an anonymous POST of a fake Postmark HardBounce or SpamComplaint to
/bounces/webhooks/postmark/tracking/ (no webhook secret configured by default) marked the named
contact bounced or complained; any ESP's route worked the same. Now each ESP webhook is refused
(403, nothing stored) until that ESP's secret is configured, and the bounces page says which are live."""

from __future__ import annotations

import base64
import json

import pytest

from contacts.models import ContactStatus
from contacts.services import contact_create
from delivery.bounces.models import BounceEvent, InboundMessage

pytestmark = pytest.mark.django_db

POSTMARK_BOUNCE = {
    "RecordType": "Bounce",
    "ID": 4323372036854775807,
    "Type": "HardBounce",
    "TypeCode": 1,
    "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
    "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
    "Email": "victim@example.com",
    "BouncedAt": "2026-11-02T10:00:00Z",
}
POSTMARK_COMPLAINT = {**POSTMARK_BOUNCE, "RecordType": "SpamComplaint", "ID": 4323372036854775808,
                      "Type": "SpamComplaint", "TypeCode": 512}  # fmt: skip
OTHER_ESPS = {
    "sendgrid": [{"email": "victim@example.com", "event": "bounce", "type": "bounce", "sg_event_id": "x1",
                  "timestamp": 1762077600, "reason": "550 5.1.1 no such user"}],
    "amazon_ses": {"Type": "Notification", "MessageId": "m1", "Message": json.dumps(
        {"notificationType": "Complaint", "complaint": {"complainedRecipients": [{"emailAddress": "victim@example.com"}],
         "timestamp": "2026-11-02T10:00:00Z", "feedbackId": "f1"}, "mail": {"messageId": "m1"}})},
    "mailgun": {"signature": {"timestamp": "1762077600", "token": "t" * 50, "signature": "0" * 64},
                "event-data": {"event": "failed", "severity": "permanent", "recipient": "victim@example.com",
                               "id": "e1", "timestamp": 1762077600.0}},
}  # fmt: skip


def _post(client, esp: str, payload, **extra):
    return client.post(
        f"/bounces/webhooks/{esp}/tracking/",
        data=json.dumps(payload),
        content_type="application/json",
        **extra,
    )


def _nothing_changed(victim) -> None:
    victim.refresh_from_db()
    assert victim.status == ContactStatus.ACTIVE
    assert not BounceEvent.objects.exists() and not InboundMessage.objects.exists()


def test_a_fresh_install_refuses_the_forged_postmark_bounce_and_complaint(client):
    from django.conf import settings

    assert not settings.ANYMAIL.get("WEBHOOK_SECRET")  # the default, as a fresh install has it
    victim = contact_create(email="victim@example.com")
    for payload in (POSTMARK_BOUNCE, POSTMARK_COMPLAINT):
        response = _post(client, "postmark", payload)
        assert response.status_code == 403
    _nothing_changed(victim)


@pytest.mark.parametrize("esp", sorted(OTHER_ESPS))
def test_every_other_esp_route_is_refused_too(client, esp):
    victim = contact_create(email="victim@example.com")
    assert _post(client, esp, OTHER_ESPS[esp]).status_code == 403
    _nothing_changed(victim)


def test_a_configured_webhook_still_refuses_a_post_without_the_secret(client, settings):
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": "esp:hook-secret-123"}
    victim = contact_create(email="victim@example.com")
    wrong = {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(b"esp:guess").decode()}
    assert _post(client, "postmark", POSTMARK_BOUNCE).status_code in (400, 401, 403)
    assert _post(client, "postmark", POSTMARK_BOUNCE, **wrong).status_code in (400, 401, 403)
    _nothing_changed(victim)
    right = {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(b"esp:hook-secret-123").decode()}
    assert _post(client, "postmark", POSTMARK_BOUNCE, **right).status_code == 200
    victim.refresh_from_db()
    assert victim.status == ContactStatus.BOUNCED


def test_the_bounces_page_says_which_webhooks_are_live_and_how_to_configure_them(admin_client, settings):
    page = admin_client.get("/bounces/").content.decode()
    assert page.count('<span class="pill bad">off</span>') == 4 and "MAILGUN_WEBHOOK_SIGNING_KEY" in page
    settings.ANYMAIL = {**settings.ANYMAIL, "MAILGUN_WEBHOOK_SIGNING_KEY": "key-1"}
    page = admin_client.get("/bounces/").content.decode()
    assert page.count('<span class="pill bad">off</span>') == 3 and '<span class="pill">live</span>' in page
