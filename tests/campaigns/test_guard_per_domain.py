"""The deliverability guard per receiving domain group: when Gmail complains, only the campaign's
Gmail recipients wait (hold reason `guard`); the other domains keep flowing, the progress page says
so with a resume action, and a person who resumes the group lets its mail go."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns import services
from campaigns.models import CampaignState, GuardLimits
from delivery import ratelimit
from delivery.engine import drain
from delivery.ledger import record_bounces
from delivery.models import GroupPause, Message, Relay
from delivery.relays import relay_save
from mailplatform.models import AuditEntry

pytestmark = pytest.mark.django_db(transaction=True)


def _mixed_list(make_audience, n: int):
    mailing_list = None
    for i in range(n):  # interleaved, as a real list is
        mailing_list = make_audience(1, name="Mixed", domain="gmail.com", start=i)
        make_audience(1, name="Mixed", domain="example.org", start=i)
    return mailing_list


def _limit_relay_this_hour(relay: Relay, per_hour: int) -> None:
    """The relay's hourly limit counts per clock hour: a test that relies on it binding must not
    straddle the hour's turn (the new hour would let the rest go before the guard looked)."""
    to_next_hour = 3600 - time.time() % 3600
    if to_next_hour < 60:
        time.sleep(to_next_hour + 1)  # the one wait on the clock itself, at most a minute an hour
    relay_save(relay, per_hour=per_hour)


def _received(handler, domain: str) -> list[str]:
    return [r for r in handler.recipients() if r.endswith("@" + domain)]


def test_the_guard_pauses_only_the_complaining_domain_group_and_the_rest_flows(
    campaign_factory, relay_server, make_audience, marketer_client
):
    GuardLimits.objects.create(min_messages=50)
    relay = Relay.objects.get(name="test relay")
    _limit_relay_this_hour(relay, 120)  # the first 120 go now, the rest after the guard has looked
    campaign = campaign_factory(mailing_list=_mixed_list(make_audience, 100))
    services.campaign_start(campaign.pk)
    campaign.refresh_from_db()
    mailing_id = campaign.mailing_id
    drain(mailing_id, seconds=20)
    assert (
        len(_received(relay_server, "gmail.com")) == 60 and len(_received(relay_server, "example.org")) == 60
    )

    # Gmail's feedback loop reports 3 complaints among its 60: 5 %, above the 0.10 % limit.
    gmail = Message.objects.filter(mailing_id=mailing_id, state="sent", email__endswith="@gmail.com")
    record_bounces([(m.pk, mailing_id, "complained", {}, timezone.now()) for m in gmail[:3]])
    assert services.campaign_sync(campaign.pk) == CampaignState.SENDING  # not the whole campaign
    pause = GroupPause.objects.get(mailing_id=mailing_id)
    assert pause.group == "gmail" and "5.00% spam complaints over 60 messages to gmail" in pause.reason
    held = Message.objects.filter(mailing_id=mailing_id, state="deferred", hold_reason="guard")
    assert held.count() == 40 and all(m.email.endswith("@gmail.com") for m in held)

    # The rest keeps flowing: every example.org recipient gets it, no Gmail one more.
    relay_save(relay, per_hour=0)
    ratelimit.reset(relay.pk)
    drain(mailing_id, seconds=20)
    assert len(_received(relay_server, "example.org")) == 100
    assert len(_received(relay_server, "gmail.com")) == 60
    assert services.campaign_sync(campaign.pk) == CampaignState.SENDING  # Gmail's 40 still wait

    # The progress page says so, with the resume action.
    page = marketer_client.get(reverse("campaigns:detail", args=[campaign.pk])).content.decode()
    assert 'data-paused-group="gmail"' in page and "Resume gmail" in page
    assert "the other domains keep flowing" in page

    response = marketer_client.post(
        reverse("campaigns:action", args=[campaign.pk, "resume-group"]), {"group": "gmail"}
    )
    assert response.status_code == 302
    assert not Message.objects.filter(mailing_id=mailing_id, hold_reason="guard").exists()
    # The guard leaves a resumed group alone (its rate is still 5 %).
    assert services.campaign_sync(campaign.pk) == CampaignState.SENDING
    drain(mailing_id, seconds=20)
    assert len(_received(relay_server, "gmail.com")) == 100
    assert len(set(relay_server.recipients())) == len(relay_server.recipients()) == 200
    assert services.campaign_sync(campaign.pk) == CampaignState.SENT
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {"mailing.group_paused", "mailing.group_resumed", "campaign.group_resumed"} <= actions


def test_with_per_domain_off_the_guard_pauses_the_whole_campaign(
    campaign_factory, relay_server, make_audience
):
    GuardLimits.objects.create(min_messages=50, per_domain=False)
    relay = Relay.objects.get(name="test relay")
    _limit_relay_this_hour(relay, 120)
    campaign = campaign_factory(mailing_list=_mixed_list(make_audience, 100))
    services.campaign_start(campaign.pk)
    campaign.refresh_from_db()
    drain(campaign.mailing_id, seconds=20)
    gmail = Message.objects.filter(mailing_id=campaign.mailing_id, state="sent", email__endswith="@gmail.com")
    record_bounces([(m.pk, campaign.mailing_id, "complained", {}, timezone.now()) for m in gmail[:3]])
    assert services.campaign_sync(campaign.pk) == CampaignState.PAUSED
    assert not GroupPause.objects.exists()
