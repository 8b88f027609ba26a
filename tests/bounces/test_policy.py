"""The policy: what each kind of bounce does to a contact, attributed by VERP token or recipient."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from contacts.models import Contact, ContactStatus, MailingList, Subscription, Suppression
from contacts.services import contact_create, mailing_list_get_or_create
from delivery.bounces.models import BounceEvent, BouncePolicy, InboundMessage
from delivery.bounces.services import bounce_process, smtp_rejection_process
from delivery.models import Mailing, Message, MessageEvent
from delivery.verp import unsubscribe_address, verp_address

SAMPLES = Path(__file__).parent / "samples"
pytestmark = pytest.mark.django_db


def _mailing(n: int = 1) -> Mailing:
    return Mailing.objects.create(
        name=f"m{n}", send_group=f"g{n}", from_email="news@sender.example.net", subject="News", compiled={}
    )


def _message(contact: Contact, mailing: Mailing | None = None) -> Message:
    mailing = mailing or _mailing()
    return Message.objects.create(
        mailing=mailing, send_group=mailing.send_group, contact=contact, email=contact.email, state="sent"
    )


def _dsn(address: str, status: str, diagnostic: str) -> bytes:
    return (
        "From: MAILER-DAEMON@mx.example.org\nSubject: Undelivered Mail Returned to Sender\n"
        'MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary="B"\n\n'
        "--B\nContent-Type: text/plain\n\nSorry.\n\n--B\nContent-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; mx.example.org\n\n"
        f"Final-Recipient: rfc822; {address}\nAction: failed\nStatus: {status}\n"
        f"Diagnostic-Code: smtp; {diagnostic}\n\n--B--\n"
    ).encode()


def _status(contact: Contact) -> str:
    contact.refresh_from_db()
    return contact.status


def test_hard_bounce_with_a_valid_token_marks_the_contact_bounced_and_keeps_evidence() -> None:
    contact = contact_create(email="ghost@example.com")
    message = _message(contact)
    raw = _dsn("ghost@example.com", "5.1.1", "550 5.1.1 User unknown")
    result = bounce_process(raw, source="smtp", envelope_to=[verp_address(message.pk)])
    assert result.outcome == "applied" and result.actions == ["contact bounced"]
    assert _status(contact) == ContactStatus.BOUNCED
    event = BounceEvent.objects.get()
    assert (event.message_id, event.contact_id, event.attributed_by) == (message.pk, contact.pk, "token")
    assert bytes(InboundMessage.objects.get().raw) == raw
    assert MessageEvent.objects.get(message=message).kind == "bounced"


def test_a_forged_token_changes_nothing() -> None:
    contact = contact_create(email="ghost@example.com")
    message = _message(contact)
    token_address = verp_address(message.pk)
    forged = token_address.replace(token_address.split("-")[-1].split("@")[0], "aaaaaaaa")
    result = bounce_process(
        _dsn("ghost@example.com", "5.1.1", "550 unknown"), source="smtp", envelope_to=[forged]
    )
    assert result.outcome == "forged"
    assert _status(contact) == ContactStatus.ACTIVE
    assert not BounceEvent.objects.exists() and InboundMessage.objects.get().outcome == "forged"


def test_a_token_for_a_message_that_does_not_exist_changes_nothing() -> None:
    contact = contact_create(email="ghost@example.com")
    result = bounce_process(
        _dsn("ghost@example.com", "5.1.1", "550 unknown"), source="smtp", envelope_to=[verp_address(999999)]
    )
    assert result.outcome == "unknown_message" and _status(contact) == ContactStatus.ACTIVE


def test_without_a_token_a_report_is_evidence_and_changes_nobody() -> None:
    """Issue #12: anyone can send a DSN naming any address; only what we signed attributes it."""
    contact = contact_create(email="gone@example.com")
    other = contact_create(email="someone@example.com")
    result = bounce_process((SAMPLES / "exim-text.eml").read_bytes(), source="pipe")
    assert result.outcome == "unattributed"
    assert _status(contact) == ContactStatus.ACTIVE and _status(other) == ContactStatus.ACTIVE
    event = BounceEvent.objects.get()
    assert (event.contact_id, event.attributed_by, event.recipient) == (None, "", "gone@example.com")
    assert "unattributed" in event.action


def test_a_token_for_one_recipient_does_not_bounce_another_the_report_lists() -> None:
    contact = contact_create(email="full@example.com")
    message = _message(contact)
    raw = (SAMPLES / "dsn-two-recipients-mixed.eml").read_bytes()
    bounce_process(raw, source="smtp", envelope_to=[verp_address(message.pk)])
    event = BounceEvent.objects.get()
    assert (event.recipient, event.kind) == ("full@example.com", "soft")


def test_soft_bounces_need_different_mailings_within_the_window() -> None:
    contact = contact_create(email="full@example.com")
    raw = _dsn("full@example.com", "4.2.2", "452 4.2.2 Mailbox full")
    first = _message(contact, _mailing(1))
    bounce_process(raw, source="smtp", envelope_to=[verp_address(first.pk)])
    bounce_process(raw, source="smtp", envelope_to=[verp_address(first.pk)])  # same mailing again
    assert _status(contact) == ContactStatus.ACTIVE
    second = _message(contact, _mailing(2))
    result = bounce_process(raw, source="smtp", envelope_to=[verp_address(second.pk)])
    assert result.actions == ["soft bounce 2/3"] and _status(contact) == ContactStatus.ACTIVE
    third = _message(contact, _mailing(3))
    result = bounce_process(raw, source="smtp", envelope_to=[verp_address(third.pk)])
    assert result.actions == ["contact bounced (soft threshold)"]
    assert _status(contact) == ContactStatus.BOUNCED


def test_old_soft_bounces_expire() -> None:
    policy = BouncePolicy.current()
    policy.soft_bounce_threshold = 2
    policy.save()
    contact = contact_create(email="full@example.com")
    raw = _dsn("full@example.com", "4.2.2", "452 4.2.2 Mailbox full")
    bounce_process(raw, source="smtp", envelope_to=[verp_address(_message(contact, _mailing(1)).pk)])
    BounceEvent.objects.update(at=timezone.now() - dt.timedelta(days=policy.soft_bounce_window_days + 1))
    bounce_process(raw, source="smtp", envelope_to=[verp_address(_message(contact, _mailing(2)).pk)])
    assert _status(contact) == ContactStatus.ACTIVE


def test_complaint_unsubscribes_everywhere_and_suppresses() -> None:
    news = mailing_list_get_or_create("News")
    offers = mailing_list_get_or_create("Offers")
    contact = contact_create(email="angry@example.com", list_ids=[news.pk, offers.pk])
    message = _message(contact)
    bounce_process(
        (SAMPLES / "arf-abuse.eml").read_bytes(), source="smtp", envelope_to=[verp_address(message.pk)]
    )
    assert _status(contact) == ContactStatus.COMPLAINED
    assert set(Subscription.objects.filter(contact=contact).values_list("status", flat=True)) == {
        "unsubscribed"
    }
    assert Suppression.objects.filter(value="angry@example.com").exists()
    assert MessageEvent.objects.get(message=message).kind == "complained"
    assert MailingList.objects.count() == 2


def test_a_block_leaves_the_contact_alone_and_alerts() -> None:
    contact = contact_create(email="reader@example.com")
    message = _message(contact)
    raw = _dsn(
        "reader@example.com", "5.7.1", "554 5.7.1 Client host [192.0.2.1] blocked using zen.spamhaus.org"
    )
    result = bounce_process(raw, source="smtp", envelope_to=[verp_address(message.pk)])
    assert result.actions == ["admin alerted (block)"]
    assert _status(contact) == ContactStatus.ACTIVE
    event = BounceEvent.objects.get()
    assert event.kind == "block" and event.sending_domain == "sender.example.net"


def test_auto_replies_and_delays_are_only_recorded() -> None:
    contact = contact_create(email="holiday@example.com")
    bounce_process((SAMPLES / "auto-reply-rfc3834.eml").read_bytes(), source="pipe")
    message = _message(contact)
    delayed = _dsn("holiday@example.com", "4.4.1", "451 4.4.1 timeout").replace(
        b"Action: failed", b"Action: delayed"
    )
    bounce_process(delayed, source="smtp", envelope_to=[verp_address(message.pk)])
    assert _status(contact) == ContactStatus.ACTIVE
    assert sorted(BounceEvent.objects.values_list("kind", flat=True)) == ["auto_reply", "delayed"]


def test_a_5xx_to_rcpt_during_sending_is_a_bounce() -> None:
    contact = contact_create(email="nobody@example.com")
    message = _message(contact)
    smtp_rejection_process(message.pk, code=550, reply="5.1.1 No such user", stage="rcpt")
    assert _status(contact) == ContactStatus.BOUNCED
    assert BounceEvent.objects.get().source == "send"
    # Recorded once: one bounced event on the Message, with the classifier's kind, kept on the Message.
    [event] = MessageEvent.objects.filter(message=message)
    assert event.kind == "bounced" and event.data["kind"] == "hard" and event.data["code"] == 550
    message.refresh_from_db()
    assert message.bounce_kind == "hard"
    # A refused MAIL FROM speaks of the sender: nothing happens to the recipient.
    other = contact_create(email="fine@example.com")
    assert smtp_rejection_process(_message(other).pk, code=550, reply="sender rejected", stage="mail") is None
    assert _status(other) == ContactStatus.ACTIVE


def test_mailto_unsubscribe_on_the_bounce_domain() -> None:
    news = mailing_list_get_or_create("News")
    contact = contact_create(email="leaving@example.com", list_ids=[news.pk])
    mailing = _mailing()
    mailing.list_ids = [news.pk]
    mailing.save()
    message = _message(contact, mailing)
    raw = b"From: leaving@example.com\nTo: x\nSubject: unsubscribe\n\nplease"
    result = bounce_process(raw, source="smtp", envelope_to=[unsubscribe_address(message.pk)])
    assert result.outcome == "unsubscribed"
    assert Subscription.objects.get(contact=contact).status == "unsubscribed"
    assert settings.BOUNCE_DOMAIN in unsubscribe_address(message.pk)
