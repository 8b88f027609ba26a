"""Resend to non-openers: real sends to a loopback SMTP relay, real opens and clicks through the
tracking endpoints, and a follow-up that reaches only who received the campaign and did not open
it (people's opens; a privacy proxy's does not count), minus who unsubscribed or bounced since."""

from __future__ import annotations

import datetime as dt
import email
import re
from email import policy

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from campaigns import selectors, services
from campaigns.models import Campaign, CampaignState
from delivery import tracking
from delivery.engine import drain
from delivery.models import Message

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_tracking_buffer")]

HUMAN_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120 Safari/537.36"
PROXY_UA = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"


def _send_all(campaign: Campaign) -> None:
    for mailing_id in selectors.campaign_mailing_ids(campaign):
        drain(mailing_id, seconds=20)
    services.campaign_sync(campaign.pk)


def _html_by_recipient(received) -> dict[str, str]:
    bodies = {}
    for item in received:
        message = email.message_from_bytes(item.content, policy=policy.default)
        bodies[item.rcpt_tos[0]] = message.get_body(preferencelist=("html",)).get_content()
    return bodies


def _path(url: str, settings) -> str:
    return url.removeprefix(settings.SITE_URL)


@pytest.fixture
def sent_and_engaged(campaign_factory, relay_server, make_audience, settings):
    """A sent campaign to person0-5: 0 opened, 1 only clicked, 2's open was Gmail's image proxy,
    3 unsubscribed since, 4 bounced since, 5 did nothing; person6 joined the list afterwards."""
    from contacts.models import Contact
    from contacts.services import contact_mark_bounced, contact_unsubscribe

    campaign = campaign_factory(6)
    services.campaign_start(campaign.pk)
    campaign.refresh_from_db()
    _send_all(campaign)
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.SENT
    Message.objects.update(sent_at=timezone.now() - dt.timedelta(minutes=5))  # not "too fast" for a person
    html = _html_by_recipient(relay_server.received)
    pixel = {to: re.search(r'<img src="([^"]+\.gif)"', body).group(1) for to, body in html.items()}
    click = {to: re.findall(r'href="([^"]+/t/c/[^"]+)"', body)[0] for to, body in html.items()}
    assert (
        Client(HTTP_USER_AGENT=HUMAN_UA).get(_path(pixel["person0@example.org"], settings)).status_code == 200
    )
    assert (
        Client(HTTP_USER_AGENT=HUMAN_UA).get(_path(click["person1@example.org"], settings)).status_code == 302
    )
    assert (
        Client(HTTP_USER_AGENT=PROXY_UA).get(_path(pixel["person2@example.org"], settings)).status_code == 200
    )
    assert tracking.tracking_flush() == 3
    contact_unsubscribe(Contact.objects.get(email="person3@example.org").pk, source="test")
    contact_mark_bounced(Contact.objects.get(email="person4@example.org").pk, reason="5.1.1", source="test")
    make_audience(1, start=6)  # joins the same list now: never received the campaign
    return campaign


def test_resend_reaches_only_who_received_and_did_not_open(sent_and_engaged, relay_server, admin_client):
    campaign = sent_and_engaged
    page = admin_client.get(reverse("campaigns:detail", args=[campaign.pk])).content.decode()
    assert 'id="resend"' in page and "Resend to non-openers" in page
    before = len(relay_server.received)
    response = admin_client.post(
        reverse("campaigns:resend", args=[campaign.pk]), {"subject": "Did you miss it?", "delay_hours": "24"}
    )
    follow_up = Campaign.objects.get(resend_of=campaign)
    assert response.status_code == 302 and response["Location"] == reverse(
        "campaigns:detail", args=[follow_up.pk]
    )
    assert follow_up.state == CampaignState.SCHEDULED and follow_up.subject == "Did you miss it?"
    due = follow_up.scheduled_at
    assert abs((due - timezone.now()) - dt.timedelta(hours=24)) < dt.timedelta(minutes=1)
    assert (
        "A resend of" in admin_client.get(reverse("campaigns:detail", args=[follow_up.pk])).content.decode()
    )
    # The audience as it stands: who received it and did not open (person2's open was a proxy's),
    # minus the unsubscribed and the bounced; not the newcomer.
    assert selectors.audience_count(follow_up) == 2

    # Not before the delay ...
    assert services.campaigns_start_due()["started"] == 0
    assert len(relay_server.received) == before
    # ... then (the clock moved on: its time is now past) it goes, once.
    Campaign.objects.filter(pk=follow_up.pk).update(scheduled_at=timezone.now() - dt.timedelta(seconds=5))
    assert services.campaigns_start_due()["started"] == 1
    assert services.campaigns_start_due()["started"] == 0
    follow_up.refresh_from_db()
    _send_all(follow_up)
    follow_up.refresh_from_db()
    assert follow_up.state == CampaignState.SENT
    resent = relay_server.received[before:]
    assert sorted(item.rcpt_tos[0] for item in resent) == ["person2@example.org", "person5@example.org"]
    subjects = {email.message_from_bytes(item.content, policy=policy.default)["Subject"] for item in resent}
    assert subjects == {"Did you miss it?"}


@pytest.mark.parametrize(
    ("post", "message"),
    [
        ({"subject": "", "delay_hours": "24"}, "a new subject is required"),
        ({"subject": "Hi\r\nBcc: x@evil.example", "delay_hours": "24"}, "one line"),
        ({"subject": "Again", "delay_hours": "-3"}, "whole number of hours"),
        ({"subject": "Again", "delay_hours": "99999"}, "whole number of hours"),
    ],
)
def test_a_bad_resend_is_refused_and_makes_nothing(sent_and_engaged, admin_client, post, message):
    response = admin_client.post(reverse("campaigns:resend", args=[sent_and_engaged.pk]), post, follow=True)
    assert message in response.content.decode()
    assert not Campaign.objects.filter(resend_of=sent_and_engaged).exists()


def test_only_a_sent_campaign_can_be_resent(campaign_factory, marketer_client, client, make_user):
    from mailplatform.errors import Conflict

    draft = campaign_factory(2)
    with pytest.raises(Conflict, match="only a sent campaign"):
        services.campaign_resend_to_non_openers(draft.pk, subject="x", delay_hours=0)
    # Roles that may not send mail may not resend either.
    client.force_login(make_user("developer", "devon"))
    assert client.post(reverse("campaigns:resend", args=[draft.pk]), {"subject": "x"}).status_code == 403
