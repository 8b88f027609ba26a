"""The frequency cap: delivery counts every marketing message sent to a contact (campaigns and
automations alike); a message over the cap when it is claimed waits in the ledger until the cap has
room, and is sent then (checked again). A campaign's "skip contacts mailed in the last N hours" is a
cap of one per N hours on its Mailing that skips instead."""

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from delivery import engine, ledger
from delivery.eligibility import frequency_cap_until, frequency_holds, unsendable
from delivery.mailings import mailing_create
from delivery.models import Message

pytestmark = pytest.mark.django_db

COMPILED = {"subject": "Hi", "html": "<p>x</p>", "text": "x"}


def _mailing(kind: str = "marketing", **meta):
    return mailing_create(
        name="m",
        compiled=COMPILED,
        from_email=django_settings.DELIVERY_DEFAULT_FROM_EMAIL,
        kind=kind,
        meta=meta,
    )


def _sent(contact, mailing, hours_ago: float) -> None:
    Message.objects.create(
        mailing=mailing, send_group=mailing.send_group, contact=contact, email=contact.email, state="sent",
        sent_at=timezone.now() - dt.timedelta(hours=hours_ago), idempotency_key=f"k{Message.objects.count()}",
    )  # fmt: skip


def test_the_install_cap_counts_marketing_mail_of_any_mailing(settings):
    from contacts.models import Contact

    settings.DELIVERY_FREQUENCY_CAP_MESSAGES = 2
    settings.DELIVERY_FREQUENCY_CAP_HOURS = 24
    busy, quiet, old = (Contact.objects.create(email=f"{n}@example.org") for n in ("busy", "quiet", "old"))
    campaign, automation, receipts = (
        _mailing(campaign_id=1),
        _mailing(automation_id=1),
        _mailing("transactional"),
    )
    _sent(busy, campaign, 3)
    _sent(busy, automation, 1)
    _sent(quiet, campaign, 2)
    _sent(quiet, receipts, 1)  # transactional mail does not count
    _sent(old, campaign, 30)
    _sent(old, automation, 26)
    next_one = _mailing(automation_id=2)
    ids = [busy.pk, quiet.pk, old.pk]
    assert set(frequency_cap_until(next_one, ids)) == {busy.pk}
    assert (
        unsendable(next_one, [(c, c, "") for c in ids]) == set()
    )  # over the install's cap: held, not refused
    ((until, held),) = frequency_holds(next_one, [(c, c, "") for c in ids]).items()
    assert held == [busy.pk]
    # Two messages in 24 h: room again when the older one (3 h ago) leaves the window.
    assert abs(until - (timezone.now() + dt.timedelta(hours=21))) < dt.timedelta(minutes=1)
    assert unsendable(_mailing("transactional"), [(busy.pk, busy.pk, busy.email)]) == set()  # never capped
    settings.DELIVERY_FREQUENCY_CAP_MESSAGES = 0
    assert set(frequency_cap_until(next_one, ids)) == set()


def test_a_campaigns_cap_applies_at_claim_time_to_mail_sent_after_its_plan(campaign_factory_for_cap):
    from campaigns import services
    from delivery.eligibility import frequency_caps

    campaign, contacts = campaign_factory_for_cap
    services.campaign_start(campaign.pk)
    campaign.refresh_from_db()
    mailing = campaign.mailing
    assert frequency_caps(mailing) == [(1, 12)]
    # After the plan, an automation mails the first contact: the campaign's message to them is skipped.
    _sent(contacts[0], _mailing(automation_id=1), 1)
    assert set(frequency_cap_until(mailing, [c.pk for c in contacts])) == {contacts[0].pk}
    # The campaign's own cap skips (its setting says so); it holds nothing.
    recipients = [(c.pk, c.pk, c.email) for c in contacts]
    assert unsendable(mailing, recipients) == {contacts[0].pk}
    assert frequency_holds(mailing, recipients) == {}


def test_mail_over_the_cap_waits_with_its_reason_and_goes_when_the_cap_has_room(
    settings, make_relay, make_audience, start_mailing, sink
):
    from django.template.loader import render_to_string

    from delivery.selectors import mailing_progress

    settings.DELIVERY_FREQUENCY_CAP_MESSAGES = 1
    settings.DELIVERY_FREQUENCY_CAP_HOURS = 24
    make_relay(sink)
    mailing_list, (busy, quiet) = make_audience(2)
    earlier = _mailing(automation_id=1)
    _sent(busy, earlier, 23)  # one marketing message 23 h ago: the cap has room again in an hour
    mailing = start_mailing(mailing_list)
    engine.drain(mailing.pk)
    assert sink.handler.recipients() == [quiet.email]
    held = Message.objects.get(mailing=mailing, contact=busy)
    assert (held.state, held.hold_reason, held.attempts) == ("deferred", "frequency", 0)
    assert abs(held.next_attempt_at - (timezone.now() + dt.timedelta(hours=1))) < dt.timedelta(minutes=1)
    assert mailing_progress(mailing.pk)["held"] == {"frequency": 1}
    note = render_to_string("delivery/held_note.html", {"progress": mailing_progress(mailing.pk)})
    assert "Held by the frequency cap:</strong> 1 message waits until its contact is under the cap" in note
    assert held.next_attempt_at > timezone.now() and ledger.requeue_due() == 0  # not before its time

    # Its time comes while the cap is still full (another campaign mailed them meanwhile): the
    # claim-time re-check holds it again.
    _sent(busy, _mailing(campaign_id=9), 0.5)
    Message.objects.filter(pk=held.pk).update(next_attempt_at=timezone.now() - dt.timedelta(seconds=1))
    assert ledger.requeue_due() == 1
    engine.drain(mailing.pk)
    held.refresh_from_db()
    assert (held.state, held.hold_reason) == ("deferred", "frequency")
    assert sink.handler.recipients() == [quiet.email]

    # The cap has room: it goes, once.
    Message.objects.filter(mailing__in=[earlier], contact=busy).update(
        sent_at=timezone.now() - dt.timedelta(days=2)
    )
    Message.objects.filter(sent_at__gt=timezone.now() - dt.timedelta(hours=1), contact=busy).update(
        sent_at=timezone.now() - dt.timedelta(days=2)
    )
    Message.objects.filter(pk=held.pk).update(next_attempt_at=timezone.now() - dt.timedelta(seconds=1))
    assert ledger.requeue_due() == 1
    engine.drain(mailing.pk)
    held.refresh_from_db()
    assert held.state == "sent" and held.attempts == 1
    assert sorted(sink.handler.recipients()) == sorted([quiet.email, busy.email])


@pytest.fixture
def campaign_factory_for_cap(db):
    from campaigns.services import campaign_create
    from contacts.models import Contact, MailingList, Subscription
    from templates.services import template_create

    readers = MailingList.objects.create(name="Readers")
    contacts = [Contact.objects.create(email=f"r{i}@example.org") for i in range(2)]
    for contact in contacts:
        Subscription.objects.create(contact=contact, mailing_list=readers, status="confirmed")
    template = template_create(name="T", subject="Hi", html='<p>x <a href="{{ unsubscribe_url }}">u</a></p>')
    campaign = campaign_create(
        name="Capped", template=template, lists=[readers], frequency_cap_hours=12,
        from_email=django_settings.DELIVERY_DEFAULT_FROM_EMAIL,
    )  # fmt: skip
    return campaign, contacts
