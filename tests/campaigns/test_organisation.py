"""Settings → Organisation: admins set the name, postal address, logo, default From / Reply-To and
web address; templates reach them as {{ org.* }} in previews, real mail and the web version."""

from __future__ import annotations

import email
from email import policy

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_admins_edit_it_and_templates_see_it(
    admin_client, make_user, campaign_factory, relay_server, settings
):
    from django.test import Client

    from campaigns import services
    from delivery.engine import drain
    from templates.services import template_update

    marketer = Client()
    marketer.force_login(make_user("marketer", "mo"))
    assert marketer.get(reverse("organisation")).status_code == 403
    response = admin_client.post(
        reverse("organisation"),
        {
            "name": "Acme Ltd",
            "postal_address": "1 Road Street, Springfield",
            "logo_url": "https://acme.example/logo.png",
            "default_from_email": "news@acme.example",
            "default_reply_to": "",
            "public_base_url": "https://acme.example",
        },
    )
    assert response.status_code == 302
    # The organisation's From (not a sending identity here) would be the new campaign's default.
    campaign = campaign_factory(1, from_email="news@example.com")
    template_update(
        campaign.template_id,
        html='<p>{{ org.name }}, {{ org.postal_address }}</p><a href="{{ org.website }}">Site</a>'
        '<a href="{{ unsubscribe_url }}">Unsubscribe</a>',
    )
    services.campaign_start(campaign.pk)
    campaign.refresh_from_db()
    drain(campaign.mailing_id, seconds=20)
    html = (
        email.message_from_bytes(relay_server.received[0].content, policy=policy.default)
        .get_body(preferencelist=("html",))
        .get_content()
    )
    assert "Acme Ltd, 1 Road Street, Springfield" in html and 'href="https://acme.example"' in html
    # ... and the web version shows them as the mail did.
    from django.test import Client

    from delivery.models import Message
    from delivery.webversion import view_url

    message = Message.objects.get(mailing_id=campaign.mailing_id)
    page = Client().get(view_url(message.pk).removeprefix(settings.SITE_URL)).content.decode()
    assert "Acme Ltd, 1 Road Street, Springfield" in page


def test_org_fields_are_known_to_the_checks():
    from templates.checks import unknown_fields

    assert unknown_fields(["org.name", "org.postal_address", "org.website"]) == []
    assert unknown_fields(["org.nmae"]) == ["org.nmae"]


def test_new_campaigns_start_from_the_organisation_default_from_and_reply_to(marketer_client, settings):
    """Issue #16 item 2: Settings > Organisation's default From / Reply-To, when set, are what a new
    campaign's settings step shows first; unset, the platform's DELIVERY_DEFAULT_FROM_EMAIL."""
    from campaigns.models import Campaign
    from mailplatform.services import organisation_save

    def new_campaign_settings(name):
        response = marketer_client.post(reverse("campaigns:create"), {"name": name})
        assert response.status_code == 302
        campaign = Campaign.objects.get(name=name)
        page = marketer_client.get(reverse("campaigns:step", args=[campaign.pk, "settings"]))
        return campaign, page.content.decode()

    before, page = new_campaign_settings("Before")
    assert (before.from_email, before.reply_to) == (settings.DELIVERY_DEFAULT_FROM_EMAIL, "")
    assert f'value="{settings.DELIVERY_DEFAULT_FROM_EMAIL}"' in page

    organisation_save(by=None, default_from_email="news@acme.example", default_reply_to="hello@acme.example")
    after, page = new_campaign_settings("After")
    assert (after.from_email, after.reply_to) == ("news@acme.example", "hello@acme.example")
    assert 'name="from_email"' in page and 'value="news@acme.example"' in page
    assert 'name="reply_to"' in page and 'value="hello@acme.example"' in page
    before.refresh_from_db()
    assert before.from_email == settings.DELIVERY_DEFAULT_FROM_EMAIL  # existing campaigns keep theirs

    organisation_save(by=None, default_from_email="", default_reply_to="")
    cleared, _ = new_campaign_settings("Cleared")
    assert (cleared.from_email, cleared.reply_to) == (settings.DELIVERY_DEFAULT_FROM_EMAIL, "")


def test_platform_mail_goes_from_the_organisation_only_when_it_is_an_enabled_identity(
    settings, relay_server, django_capture_on_commit_callbacks
):
    """Issue #16 item 2: confirmations and password resets keep DELIVERY_DEFAULT_FROM_EMAIL unless
    the organisation's default From is set and an enabled sending identity allows it."""
    from contacts import services as contact_services
    from contacts.models import MailingList
    from delivery.engine import drain
    from delivery.identities import identity_ensure_default, identity_save, platform_from_email
    from delivery.models import Message
    from delivery.transactional import password_reset_send
    from mailplatform.services import organisation_save

    default = settings.DELIVERY_DEFAULT_FROM_EMAIL
    identity_ensure_default()
    assert platform_from_email() == default  # nothing set
    assert password_reset_send("a@example.org", "https://x.test/r/1").mailing.from_email == default

    organisation_save(by=None, default_from_email="hello@acme.example")
    assert platform_from_email() == default  # set, but nobody may send from acme.example
    assert password_reset_send("a@example.org", "https://x.test/r/2").mailing.from_email == default

    acme = identity_save(address="acme.example")
    assert platform_from_email() == "hello@acme.example"
    reset = password_reset_send("a@example.org", "https://x.test/r/3")
    assert reset.mailing.from_email == "hello@acme.example"
    news = MailingList.objects.create(name="News", opt_in="double", is_public=True)
    with django_capture_on_commit_callbacks(execute=True):
        contact_services.public_subscribe(news, email="bob@example.org")
    confirmation = Message.objects.get(email="bob@example.org")
    assert confirmation.mailing.meta == {"system": "confirmation"}
    assert confirmation.mailing.from_email == "hello@acme.example"
    drain(reset.mailing_id, seconds=20)
    sent = [email.message_from_bytes(m.content, policy=policy.default) for m in relay_server.received]
    assert any(m["To"] == "a@example.org" and "hello@acme.example" in m["From"] for m in sent)

    identity_save(acme, address="acme.example", enabled=False)
    assert platform_from_email() == default  # disabled: back to the platform's own
    assert password_reset_send("a@example.org", "https://x.test/r/4").mailing.from_email == default
