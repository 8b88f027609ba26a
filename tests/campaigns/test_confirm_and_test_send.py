"""Issue #14 items 1-2: no campaign goes out on one click (the confirmation names subject, audience
and count; above the threshold the count or the name is typed, checked on the server), and a test
send renders as a real contact, to several addresses, subject marked "[Test]"."""

from __future__ import annotations

import email
import email.policy

import pytest
from django.urls import reverse

from campaigns.models import CampaignState
from delivery.engine import drain

pytestmark = pytest.mark.django_db


def _parsed(handler) -> list:
    with handler.lock:
        return [email.message_from_bytes(r.content, policy=email.policy.default) for r in handler.received]


def _state(campaign) -> str:
    campaign.refresh_from_db()
    return campaign.state


def test_send_now_shows_what_goes_to_whom_and_refuses_without_the_confirmation(
    marketer_client, campaign_factory
):
    campaign = campaign_factory(3)
    url = reverse("campaigns:send", args=[campaign.pk])
    page = marketer_client.get(url).content.decode()
    assert 'id="confirm-subject">Spring is here, {{ contact.first_name }}<' in page
    assert 'id="confirm-audience">Customers<' in page and 'id="confirm-count">3<' in page
    assert "Send now to 3 recipients" in page and 'name="typed"' not in page  # 3 is under the threshold
    assert _state(campaign) == CampaignState.DRAFT  # looking sends nothing

    # A bare POST (a one-click form, a replayed request) is refused and sends nothing.
    refused = marketer_client.post(url)
    assert refused.status_code == 400 and "Confirm on this page" in refused.content.decode()
    assert _state(campaign) == CampaignState.DRAFT
    # The audience grew after the person looked: they confirm the new number.
    changed = marketer_client.post(url, {"shown_count": "2"})
    assert changed.status_code == 400 and "changed from 2 to 3 recipients" in changed.content.decode()
    assert _state(campaign) == CampaignState.DRAFT

    assert marketer_client.post(url, {"shown_count": "3"}).url == reverse(
        "campaigns:detail", args=[campaign.pk]
    )
    assert _state(campaign) == CampaignState.SCHEDULED and campaign.starting


def test_above_the_threshold_the_count_or_the_name_is_typed(marketer_client, campaign_factory, settings):
    settings.CAMPAIGNS_CONFIRM_TYPED_ABOVE = 2
    campaign = campaign_factory(3)
    url = reverse("campaigns:send", args=[campaign.pk])
    page = marketer_client.get(url).content.decode()
    assert "To confirm, type 3 (the number of recipients) or the campaign&#x27;s name" in page
    missing = marketer_client.post(url, {"shown_count": "3"}).content.decode()
    assert "Type 3 or the campaign&#x27;s name to confirm." in missing
    wrong = marketer_client.post(url, {"shown_count": "3", "typed": "30"})
    assert wrong.status_code == 400 and "neither 3 nor the campaign" in wrong.content.decode()
    assert 'value="30"' in wrong.content.decode()  # what was typed stays in its field
    assert _state(campaign) == CampaignState.DRAFT
    assert marketer_client.post(url, {"shown_count": "3", "typed": " spring SALE "}).status_code == 302
    assert _state(campaign) == CampaignState.SCHEDULED and campaign.starting


def test_scheduling_is_confirmed_the_same_way_and_errors_sit_by_their_field(
    marketer_client, campaign_factory, settings
):
    settings.CAMPAIGNS_CONFIRM_TYPED_ABOVE = 1
    campaign = campaign_factory(2)
    url = reverse("campaigns:schedule", args=[campaign.pk])
    chosen = {"local_time": "2099-06-01T09:30", "timezone": "Europe/Paris"}
    page = marketer_client.get(url, chosen).content.decode()
    assert 'id="confirm-count">2<' in page and "Schedule for 2 recipients" in page
    assert 'value="2099-06-01T09:30"' in page and _state(campaign) == CampaignState.DRAFT
    refused = marketer_client.post(url, {**chosen, "shown_count": "2"})
    assert refused.status_code == 400 and _state(campaign) == CampaignState.DRAFT
    past = marketer_client.post(
        url, {**chosen, "local_time": "2001-01-01T09:00", "shown_count": "2", "typed": "2"}
    )
    body = past.content.decode()
    field = body[body.index('data-field="local_time"') :]
    assert "the scheduled time is in the past" in field[: field.index('data-field="timezone"')]
    done = marketer_client.post(url, {**chosen, "shown_count": "2", "typed": "2"})
    assert done.status_code == 302 and _state(campaign) == CampaignState.SCHEDULED


def test_a_test_send_renders_as_a_real_contact_to_several_addresses_marked_test(
    marketer_client, campaign_factory, relay_server
):
    from contacts.models import Contact
    from delivery.models import Message

    campaign = campaign_factory(2)
    url = reverse("campaigns:test-send", args=[campaign.pk])
    response = marketer_client.post(url, {"to": "me@example.com, boss@example.com"}, follow=True)
    assert (
        "Test sent to me@example.com, boss@example.com, as person0@example.org." in response.content.decode()
    )
    messages = list(Message.objects.filter(mailing__meta__test=True).order_by("email"))
    assert [m.email for m in messages] == ["boss@example.com", "me@example.com"]
    drain(messages[0].mailing_id, seconds=20)
    subjects = sorted(m["subject"] for m in _parsed(relay_server))
    assert subjects == ["[Test] Spring is here, P0"] * 2
    assert all(m["X-Posthorn-Test"] == "yes" for m in _parsed(relay_server))

    # Chosen by address: that contact's fields, even for an address that is itself a contact.
    Contact.objects.create(email="me@example.com", first_name="Me")
    Contact.objects.create(email="vip@example.net", first_name="Vera")
    marketer_client.post(url, {"to": "me@example.com", "as_contact": "vip@example.net"})
    latest = Message.objects.filter(mailing__meta__test=True).latest("id")
    drain(latest.mailing_id, seconds=20)
    assert _parsed(relay_server)[-1]["subject"] == "[Test] Spring is here, Vera"


def test_a_failed_test_send_keeps_what_was_typed_and_says_which_field(marketer_client, campaign_factory):
    from delivery.models import Message

    campaign = campaign_factory(1)
    url = reverse("campaigns:test-send", args=[campaign.pk])
    bad = marketer_client.post(url, {"to": "me@example.com, not-an-address"})
    body = bad.content.decode()
    assert bad.status_code == 400 and 'value="me@example.com, not-an-address"' in body
    to_field = body[body.index('data-field="to"') : body.index('data-field="as_contact"')]
    assert "Not an email address: not-an-address." in to_field
    unknown = marketer_client.post(
        url, {"to": "me@example.com", "as_contact": "ghost@example.net"}
    ).content.decode()
    assert (
        "no contact has the address ghost@example.net" in unknown[unknown.index('data-field="as_contact"') :]
    )
    assert 'value="ghost@example.net"' in unknown
    assert not Message.objects.exists()
