"""The frequency cap: delivery counts every marketing message sent to a contact (campaigns and
automations alike) and skips one over the cap when it is claimed; a campaign's "skip contacts
mailed in the last N hours" is a cap of one per N hours on its Mailing."""

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from delivery.eligibility import over_frequency_cap, unsendable
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
    assert over_frequency_cap(next_one, ids) == {busy.pk}
    assert unsendable(next_one, [(c, c, "") for c in ids]) == {busy.pk}
    assert unsendable(_mailing("transactional"), [(busy.pk, busy.pk, busy.email)]) == set()  # never capped
    settings.DELIVERY_FREQUENCY_CAP_MESSAGES = 0
    assert over_frequency_cap(next_one, ids) == set()


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
    assert over_frequency_cap(mailing, [c.pk for c in contacts]) == {contacts[0].pk}


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
