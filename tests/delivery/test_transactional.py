"""Transactional sends, "send a test", the double opt-in confirmation: same engine, same ledger."""

from __future__ import annotations

import base64
import email
import email.policy
import json

import pytest

from delivery import engine, transactional
from delivery.models import Mailing, Message
from delivery.runners import SEND_TASK
from mailplatform.errors import PlatformError as ValidationError

pytestmark = pytest.mark.django_db


@pytest.fixture
def receipt_template(db):
    from templates.services import template_create

    return template_create(
        name="Receipt",
        subject="Your order {{ order.number }}",
        html="<p>Thanks {{ contact.first_name | default: 'friend' }}, order {{ order.number }} is on its way.</p>",
    )


def _parsed(received):
    return email.message_from_bytes(received.content, policy=email.policy.default)


def test_to_a_contact_and_to_a_bare_address_with_idempotency(receipt_template, make_relay, sink):
    from contacts.services import contact_create

    make_relay(sink)
    contact = contact_create(email="ada@example.org", first_name="Ada")
    first = transactional.transactional_send(
        template_id=receipt_template.pk,
        to=contact.pk,
        data={"order": {"number": "A-17"}},
        idempotency_key="order-17",
    )
    again = transactional.transactional_send(
        template_id=receipt_template.pk,
        to=contact.pk,
        data={"order": {"number": "A-17"}},
        idempotency_key="order-17",
    )
    assert again.pk == first.pk
    bare = transactional.transactional_send(
        template_id=receipt_template.pk, to="someone@example.net", data={"order": {"number": "B-2"}}
    )
    assert bare.contact_id is None and bare.idempotency_key.startswith("auto:")
    assert first.mailing_id == bare.mailing_id and first.mailing.state == Mailing.State.STANDING
    engine.drain(first.mailing_id)
    subjects = {r.rcpt_tos[0]: _parsed(r)["Subject"] for r in sink.handler.received}
    assert subjects == {"ada@example.org": "Your order A-17", "someone@example.net": "Your order B-2"}
    body = _parsed(next(r for r in sink.handler.received if r.rcpt_tos[0] == "ada@example.org"))
    assert "Thanks Ada, order A-17" in body.get_body(("html",)).get_content()
    assert set(Message.objects.values_list("state", flat=True)) == {"sent"}


def test_editing_the_template_starts_a_new_standing_mailing(receipt_template):
    from templates.services import template_update

    first = transactional.transactional_send(
        template_id=receipt_template.pk, to="a@example.net", data={"order": {"number": 1}}
    )
    template_update(receipt_template.pk, subject="Order {{ order.number }} shipped")
    second = transactional.transactional_send(
        template_id=receipt_template.pk, to="a@example.net", data={"order": {"number": 2}}
    )
    assert first.mailing_id != second.mailing_id
    assert Mailing.objects.get(pk=first.mailing_id).subject.startswith("Your order")


def test_suppressed_and_bounced_are_skipped_but_marketing_unsubscribes_are_not(receipt_template):
    from contacts.services import contact_create, contact_mark_bounced, contact_unsubscribe, suppression_add

    unsubscribed = contact_create(email="left@example.org")
    contact_unsubscribe(unsubscribed.pk, list_ids=None, source="test")
    bounced = contact_create(email="gone@example.org")
    contact_mark_bounced(bounced.pk, reason="550 no such user", source="test")
    suppression_add("blocked@example.net", reason="legal", source="test")
    assert (
        transactional.transactional_send(template_id=receipt_template.pk, to=unsubscribed.pk).state
        == "queued"
    )
    assert transactional.transactional_send(template_id=receipt_template.pk, to=bounced.pk).state == "skipped"
    assert (
        transactional.transactional_send(template_id=receipt_template.pk, to="blocked@example.net").state
        == "skipped"
    )


def test_bad_recipients_are_refused_clearly(receipt_template):
    with pytest.raises(ValidationError, match="line break"):
        transactional.transactional_send(
            template_id=receipt_template.pk, to="x@example.com\r\nBcc: y@example.com"
        )
    with pytest.raises(ValidationError, match="not a valid email address"):
        transactional.transactional_send(template_id=receipt_template.pk, to="not-an-address")
    with pytest.raises(ValidationError, match="contact 999999 does not exist"):
        transactional.transactional_send(template_id=receipt_template.pk, to=999999)
    with pytest.raises(ValidationError, match="template 999999 does not exist"):
        transactional.transactional_send(template_id=999999, to="a@example.com")
    with pytest.raises(ValidationError, match="data must be an object"):
        transactional.transactional_send(template_id=receipt_template.pk, to="a@example.com", data=["x"])


def test_send_a_test(make_relay, sink):
    from templates.compiler import compile_template

    make_relay(sink)
    compiled = compile_template(
        subject="Preview for {{ contact.first_name | default: 'you' }}", html="<p>Hi</p>"
    )
    message = transactional.test_send(compiled, "me@example.com")
    engine.drain(message.mailing_id)
    [received] = sink.handler.received
    assert received.rcpt_tos == ["me@example.com"] and _parsed(received)["Subject"] == "Preview for you"
    # A test send does not show among the mailings on the delivery page.
    from delivery import selectors

    assert message.mailing_id not in [m.pk for m in selectors.mailings_page()]


def test_double_opt_in_sends_the_confirmation(make_relay, sink, django_capture_on_commit_callbacks):
    from contacts.models import MailingList
    from contacts.services import contact_create, contact_subscribe
    from contacts.signals import confirmation_requested
    from contacts.tokens import confirm_url

    make_relay(sink)
    weekly = MailingList.objects.create(name="Weekly digest")
    contact = contact_create(email="reader@example.org", first_name="Rea")
    subscription = contact_subscribe(contact, weekly, confirmed=False, source="form")
    url = confirm_url(subscription.pk)
    confirmation_requested.send(sender=None, subscription_id=subscription.pk, confirm_url=url)
    message = Message.objects.get(contact=contact)
    engine.drain(message.mailing_id)
    [received] = sink.handler.received
    parsed = _parsed(received)
    assert parsed["Subject"] == "Please confirm your subscription to Weekly digest"
    assert url in parsed.get_body(("html",)).get_content()


def test_send_a_test_from_the_template_page(marketer_client, receipt_template, make_relay, sink):
    from django.urls import reverse

    make_relay(sink)
    url = reverse("delivery:template-test-send", args=[receipt_template.pk])
    response = marketer_client.post(url, {"to": "me@example.com"})
    assert response.status_code == 200 and "Test queued for me@example.com" in response.content.decode()
    message = Message.objects.get(email="me@example.com")
    engine.drain(message.mailing_id)
    assert sink.handler.recipients() == ["me@example.com"]
    bad = marketer_client.post(url, {"to": "me@example.com\r\nBcc: x@example.com"})
    assert bad.status_code == 400 and "Not sent" in bad.content.decode()
    assert (
        marketer_client.post(
            reverse("delivery:template-test-send", args=[999999]), {"to": "a@b.com"}
        ).status_code
        == 404
    )


def test_developers_cannot_send_tests(developer_client, receipt_template):
    from django.urls import reverse

    url = reverse("delivery:template-test-send", args=[receipt_template.pk])
    assert developer_client.post(url, {"to": "me@example.com"}).status_code == 403


def test_a_fresh_install_sends_transactional_mail_through_the_capture_relay(receipt_template, sink, settings):
    from delivery.models import Relay

    # No relay configured yet: the first transactional send points one at the capture relay.
    settings.CAPTURE_SMTP_HOST, settings.CAPTURE_SMTP_PORT = "127.0.0.1", sink.port
    assert not Relay.objects.exists()
    message = transactional.transactional_send(
        template_id=receipt_template.pk, to="first@example.org", data={"order": {"number": "F-1"}}
    )
    engine.drain(message.mailing_id)
    assert Relay.objects.get().port == sink.port
    assert [r.rcpt_tos for r in sink.handler.received] == [["first@example.org"]]
    message.refresh_from_db()
    assert message.state == "sent"


def _runners_queued_for(mailing_id: int) -> list[str]:
    """The tokens of the send tasks waiting in the broker for this Mailing."""
    from mailplatform.celery import app

    with app.connection_for_write() as connection:
        waiting = [json.loads(raw) for raw in connection.default_channel.client.lrange("sending", 0, -1)]
    tasks = [json.loads(base64.b64decode(w["body"]))[0] for w in waiting if w["headers"]["task"] == SEND_TASK]
    return [token for mailing, token in tasks if mailing == mailing_id]


def test_mail_queued_as_the_last_runner_leaves_empty_gets_a_runner(
    receipt_template, make_relay, sink, settings
):
    """The race of a standing Mailing: mail arrives after its only runner's last look but before it
    gives up its place, so the mail's dispatch finds no room. The leaving runner looks once more."""
    from delivery import ledger, runners

    settings.DELIVERY_PARALLEL = 1
    make_relay(sink)
    first = transactional.transactional_send(template_id=receipt_template.pk, to="a@example.net", data={})
    mailing_id = first.mailing_id
    engine.drain(mailing_id)
    token = "the-last-runner"
    assert runners.semaphore(mailing_id, token, lease=30, limit=1).acquire() == 0.0
    looks: list[bool] = []
    real_look = ledger.has_queued

    def look_while_mail_arrives(mid: int) -> bool:
        looks.append(real_look(mid))
        if len(looks) == 1:
            transactional.transactional_send(template_id=receipt_template.pk, to="b@example.net", data={})
            assert runners.dispatch(mid) == 0  # the runner still holds the only place
        return looks[-1]

    before = _runners_queued_for(mailing_id)  # ids repeat across test databases: older runs' tasks
    ledger.has_queued = look_while_mail_arrives
    try:
        result = engine.run(mailing_id, token, seconds=10)
    finally:
        ledger.has_queued = real_look
    assert result.reason == "empty" and looks[0] is False
    queued = [token for token in _runners_queued_for(mailing_id) if token not in before]
    assert len(queued) == 1, queued
    # That runner sends it.
    engine.run(mailing_id, queued[0], seconds=10)
    assert [r.rcpt_tos[0] for r in sink.handler.received] == ["a@example.net", "b@example.net"]
