"""ESP tracking webhooks (anymail) with the payloads the ESPs document: stored once per event id."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from contacts.models import ContactStatus, Suppression
from contacts.services import contact_create
from delivery.bounces.models import BounceEvent

pytestmark = pytest.mark.django_db
AUTH = {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(b"esp:hook-secret").decode()}
SIGNING_KEY = "mailgun-signing-key"


@pytest.fixture(autouse=True)
def anymail_settings(settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": "esp:hook-secret", "MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY}


def _ses(client, event: dict, message_id: str = "sns-1"):
    body = {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": "arn:aws:sns:us-east-1:111122223333:ses-events",
        "Message": json.dumps(event),
        "Timestamp": "2026-11-02T10:00:01.000Z",
        "SignatureVersion": "1",
    }
    return client.post(
        "/bounces/webhooks/amazon_ses/tracking/",
        data=json.dumps(body),
        content_type="text/plain; charset=UTF-8",
        HTTP_X_AMZ_SNS_MESSAGE_TYPE="Notification",
        HTTP_X_AMZ_SNS_MESSAGE_ID=message_id,
        HTTP_X_AMZ_SNS_TOPIC_ARN=body["TopicArn"],
        **AUTH,
    )


def _ses_bounce(address: str, bounce_type: str, sub_type: str, diagnostic: str) -> dict:
    return {
        "eventType": "Bounce",
        "bounce": {
            "bounceType": bounce_type,
            "bounceSubType": sub_type,
            "bouncedRecipients": [
                {"emailAddress": address, "action": "failed", "diagnosticCode": diagnostic}
            ],
            "timestamp": "2026-11-02T10:00:00.000Z",
            "feedbackId": "0100-feedback",
        },
        "mail": {
            "timestamp": "2026-11-02T09:59:00.000Z",
            "source": "news@sender.example.net",
            "messageId": "0100-abc",
            "destination": [address],
            "headers": [],
            "commonHeaders": {},
        },
    }


def test_ses_permanent_bounce_marks_bounced_once_even_when_retried(client) -> None:
    contact = contact_create(email="ghost@example.com")
    event = _ses_bounce("ghost@example.com", "Permanent", "General", "smtp; 550 5.1.1 user unknown")
    assert _ses(client, event).status_code == 200
    assert _ses(client, event).status_code == 200  # SNS retries with the same MessageId
    stored = BounceEvent.objects.get()
    assert (stored.esp, stored.kind, stored.reason, stored.status) == (
        "Amazon SES",
        "hard",
        "userunknown",
        "5.1.1",
    )
    contact.refresh_from_db()
    assert contact.status == ContactStatus.BOUNCED and contact.bounce_count == 1


def test_ses_transient_mailbox_full_is_soft_and_content_rejected_is_a_block(client) -> None:
    contact = contact_create(email="full@example.com")
    _ses(client, _ses_bounce("full@example.com", "Transient", "MailboxFull", "smtp; 452 4.2.2 full"), "sns-2")
    _ses(client, _ses_bounce("full@example.com", "Transient", "ContentRejected", "smtp; 554 spam"), "sns-3")
    assert sorted(BounceEvent.objects.values_list("kind", flat=True)) == ["block", "soft"]
    contact.refresh_from_db()
    assert contact.status == ContactStatus.ACTIVE


def test_ses_complaint(client) -> None:
    contact = contact_create(email="angry@example.com")
    event = {
        "eventType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": "angry@example.com"}],
            "timestamp": "2026-11-02T10:00:00.000Z",
            "feedbackId": "0100-c",
            "complaintFeedbackType": "abuse",
        },
        "mail": {
            "timestamp": "2026-11-02T09:59:00.000Z",
            "source": "news@sender.example.net",
            "messageId": "0100-def",
            "destination": ["angry@example.com"],
            "headers": [],
            "commonHeaders": {},
        },
    }
    _ses(client, event, "sns-4")
    contact.refresh_from_db()
    assert contact.status == ContactStatus.COMPLAINED
    assert Suppression.objects.filter(value="angry@example.com").exists()


def test_sendgrid_blocked_and_bounce_events(client) -> None:
    contact = contact_create(email="reader@example.com")
    payload = [
        {
            "email": "reader@example.com",
            "timestamp": 1793613600,
            "event": "bounce",
            "type": "blocked",
            "reason": "550 5.7.1 Service unavailable; client host blocked using Spamhaus",
            "status": "5.7.1",
            "sg_event_id": "sg-1",
            "sg_message_id": "m1.filter",
        },
        {
            "email": "ghost@example.com",
            "timestamp": 1793613601,
            "event": "bounce",
            "type": "bounce",
            "reason": "550 5.1.1 The email account that you tried to reach does not exist",
            "status": "5.1.1",
            "sg_event_id": "sg-2",
            "sg_message_id": "m2.filter",
        },
        {"email": "reader@example.com", "timestamp": 1793613602, "event": "open", "sg_event_id": "sg-3"},
    ]
    response = client.post(
        "/bounces/webhooks/sendgrid/tracking/",
        data=json.dumps(payload),
        content_type="application/json",
        **AUTH,
    )
    assert response.status_code == 200
    assert sorted(BounceEvent.objects.values_list("esp_event_id", "kind")) == [
        ("sg-1", "block"),
        ("sg-2", "hard"),
    ]
    contact.refresh_from_db()
    assert contact.status == ContactStatus.ACTIVE  # a block is the sender's problem


def _mailgun_signature(timestamp: str, token: str) -> str:
    return hmac.new(SIGNING_KEY.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()


def test_mailgun_permanent_failure_with_a_valid_signature(client) -> None:
    contact = contact_create(email="ghost@example.com")
    timestamp, token = "1793613600", "a" * 50
    payload = {
        "signature": {
            "timestamp": timestamp,
            "token": token,
            "signature": _mailgun_signature(timestamp, token),
        },
        "event-data": {
            "event": "failed",
            "severity": "permanent",
            "reason": "bounce",
            "recipient": "ghost@example.com",
            "timestamp": 1793613600.0,
            "id": "mg-1",
            "delivery-status": {"code": 550, "message": "5.1.1 No such user", "description": ""},
            "message": {"headers": {"message-id": "x@sender.example.net"}},
        },
    }
    response = client.post(
        "/bounces/webhooks/mailgun/tracking/",
        data=json.dumps(payload),
        content_type="application/json",
        **AUTH,
    )
    assert response.status_code == 200
    contact.refresh_from_db()
    assert contact.status == ContactStatus.BOUNCED


def test_mailgun_forged_signature_is_refused(client) -> None:
    contact = contact_create(email="ghost@example.com")
    payload = {
        "signature": {"timestamp": "1793613600", "token": "b" * 50, "signature": "0" * 64},
        "event-data": {
            "event": "failed",
            "severity": "permanent",
            "recipient": "ghost@example.com",
            "id": "mg-2",
        },
    }
    response = client.post(
        "/bounces/webhooks/mailgun/tracking/",
        data=json.dumps(payload),
        content_type="application/json",
        **AUTH,
    )
    assert response.status_code == 400
    contact.refresh_from_db()
    assert contact.status == ContactStatus.ACTIVE and not BounceEvent.objects.exists()


def test_postmark_hard_bounce_and_spam_complaint(client) -> None:
    ghost = contact_create(email="ghost@example.com")
    angry = contact_create(email="angry@example.com")
    bounce = {
        "RecordType": "Bounce",
        "ID": 4323372036854775807,
        "Type": "HardBounce",
        "TypeCode": 1,
        "Name": "Hard bounce",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": "ghost@example.com",
        "From": "news@sender.example.net",
        "BouncedAt": "2026-11-02T10:00:00Z",
        "Inactive": True,
        "CanActivate": True,
        "Subject": "News",
        "MessageStream": "outbound",
    }
    complaint = {
        **bounce,
        "RecordType": "SpamComplaint",
        "ID": 4323372036854775808,
        "Type": "SpamComplaint",
        "TypeCode": 512,
        "Email": "angry@example.com",
        "Details": "Test spam complaint details",
    }
    for payload in (bounce, complaint, bounce):
        response = client.post(
            "/bounces/webhooks/postmark/tracking/",
            data=json.dumps(payload),
            content_type="application/json",
            **AUTH,
        )
        assert response.status_code == 200
    assert BounceEvent.objects.count() == 2
    ghost.refresh_from_db()
    angry.refresh_from_db()
    assert (ghost.status, angry.status) == (ContactStatus.BOUNCED, ContactStatus.COMPLAINED)


def test_webhooks_refuse_requests_without_the_shared_secret(client) -> None:
    response = client.post("/bounces/webhooks/postmark/tracking/", data="{}", content_type="application/json")
    assert response.status_code in (400, 401)
    assert not BounceEvent.objects.exists()
