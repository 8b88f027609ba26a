"""A/B tests (disjoint arms in one send group, winner to the rest) and the deliverability guard."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from campaigns import selectors, services
from campaigns.models import Campaign, CampaignState, GuardLimits
from delivery import selectors as delivery_selectors
from delivery.engine import drain
from delivery.models import Message, MessageEvent

pytestmark = pytest.mark.django_db


def _ab_campaign(campaign_factory, template, count=200, **fields):
    return campaign_factory(
        count,
        ab_test=True,
        ab_test_percent=40,
        ab_wait_minutes=60,
        variants=[
            {"subject": ""},
            {"subject": "Last chance, {{ contact.first_name }}"},
            {"subject": "Hello"},
        ],
        **fields,
    )


def test_variants_get_disjoint_test_shares_and_the_winner_goes_to_the_rest(campaign_factory, template):
    campaign = _ab_campaign(campaign_factory, template)
    services.campaign_start(campaign.pk)
    campaign.refresh_from_db()
    variants = list(campaign.variants.all())
    assert [v.label for v in variants] == ["A", "B", "C"]
    per_arm = [Message.objects.filter(mailing_id=v.mailing_id).count() for v in variants]
    # 40% of 200 split three ways, by a stable hash: roughly 27 each, never the same contact twice.
    assert 50 <= sum(per_arm) <= 110 and all(n > 5 for n in per_arm)
    assert Message.objects.values("contact_id").distinct().count() == sum(per_arm)
    assert {v.mailing.subject for v in variants} == {
        "Spring is here, {{ contact.first_name }}",
        "Last chance, {{ contact.first_name }}",
        "Hello",
    }

    # B's recipients open the most (human opens); then the wait passes.
    Message.objects.update(state="sent", sent_at=timezone.now())
    b = variants[1]
    for message_id in Message.objects.filter(mailing_id=b.mailing_id).values_list("id", flat=True)[:5]:
        MessageEvent.objects.create(
            message_id=message_id, mailing_id=b.mailing_id, kind="opened", at=timezone.now()
        )
    a = variants[0]
    for message_id in Message.objects.filter(mailing_id=a.mailing_id).values_list("id", flat=True)[:10]:
        MessageEvent.objects.create(
            message_id=message_id, mailing_id=a.mailing_id, kind="opened", at=timezone.now(),
            data={"machine": "apple-mpp"},
        )  # fmt: skip
    services.campaign_sync(campaign.pk)
    campaign.refresh_from_db()
    assert campaign.ab_decided_at is None  # not before the wait
    Campaign.objects.filter(pk=campaign.pk).update(started_at=timezone.now() - dt.timedelta(minutes=61))
    services.campaign_sync(campaign.pk)
    campaign.refresh_from_db()
    assert campaign.winner.label == "B"  # machine opens of A do not count
    rest = campaign.mailing
    assert (
        rest.subject == "Last chance, {{ contact.first_name }}"
        and rest.send_group == f"campaign:{campaign.pk}"
    )
    assert Message.objects.filter(mailing_id=rest.pk).count() == 200 - sum(per_arm)
    assert Message.objects.values("contact_id").distinct().count() == 200  # everyone exactly once


def test_a_b_test_needs_two_to_four_variants(campaign_factory):
    from mailplatform.errors import PlatformError as ValidationError

    campaign = campaign_factory(3)
    with pytest.raises(ValidationError, match="two to four"):
        services.campaign_update(campaign.pk, ab_test=True, variants=[{"subject": "x"}])
    with pytest.raises(ValidationError, match="two to four"):
        services.campaign_update(campaign.pk, ab_test=True, variants=[{"subject": str(i)} for i in range(5)])


def test_guard_pauses_a_campaign_whose_hard_bounces_cross_the_limit(campaign_factory, relay_server):
    GuardLimits.objects.create(min_messages=20)
    # The receiving side refuses 3 in 30 addresses at RCPT: 10% hard bounces, above 5%.
    relay_server.rcpt_reply = lambda address: (
        "550 5.1.1 no such user" if address.endswith(("7@example.org",)) else None
    )
    campaign = campaign_factory(30)
    services.campaign_start(campaign.pk)
    campaign.refresh_from_db()
    drain(campaign.mailing_id, seconds=20)
    assert services.campaign_sync(campaign.pk) == CampaignState.PAUSED
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.PAUSED
    assert "10.0% hard bounces over the first 30 messages is above the 5.00% limit" in campaign.state_reason
    report = delivery_selectors.mailing_figures([campaign.mailing_id])
    assert report["hard"] == 3 and report["rates"]["hard"] == 10.0
    assert [row["email"] for row in selectors.not_received(campaign)] == [
        "person7@example.org", "person17@example.org", "person27@example.org",
    ]  # fmt: skip
    # A person who resumes overrides the guard for this campaign.
    services.campaign_resume(campaign.pk)
    assert services.campaign_sync(campaign.pk) == CampaignState.SENT


def test_guard_counts_complaints_against_their_own_limit(campaign_factory, relay_server):
    GuardLimits.objects.create(min_messages=10)
    campaign = campaign_factory(10)
    services.campaign_start(campaign.pk)
    campaign.refresh_from_db()
    drain(campaign.mailing_id, seconds=20)
    assert services.guard_check(campaign.pk) is None
    message = Message.objects.filter(mailing_id=campaign.mailing_id).first()
    MessageEvent.objects.create(
        message=message, mailing_id=campaign.mailing_id, kind="complained", at=timezone.now()
    )
    reason = services.guard_check(campaign.pk)
    assert reason and "10.00% spam complaints" in reason and "0.10% limit" in reason


def test_a_refusal_counts_once_in_the_classifiers_class(campaign_factory, relay_server):
    """A RCPT 5xx is recorded once with the classifier's kind; a later report on it decides anew."""
    from delivery.bounces.services import bounce_process
    from delivery.verp import verp_address
    from tests.bounces.test_policy import _dsn

    relay_server.rcpt_reply = lambda address: (
        "550 5.7.1 rejected by policy" if address.startswith("person1@") else None
    )
    campaign = campaign_factory(3)
    services.campaign_start(campaign.pk)
    campaign.refresh_from_db()
    drain(campaign.mailing_id, seconds=20)
    message = Message.objects.get(email="person1@example.org")
    assert MessageEvent.objects.filter(message=message, kind="bounced").count() == 1
    figures = delivery_selectors.mailing_figures([campaign.mailing_id])
    assert (figures["bounced"], figures["hard"], figures["block"]) == (1, 0, 1)
    # A DSN about the same Message (through the bounce path): its kind is the Message's now.
    raw = _dsn("person1@example.org", "5.1.1", "550 5.1.1 user unknown")
    bounce_process(raw, source="smtp", envelope_to=[verp_address(message.pk)])
    figures = delivery_selectors.mailing_figures([campaign.mailing_id])
    assert (figures["bounced"], figures["hard"], figures["block"]) == (1, 1, 0)
    assert selectors.not_received(campaign)[0]["why"] == "hard bounce: 550 5.1.1 user unknown"
