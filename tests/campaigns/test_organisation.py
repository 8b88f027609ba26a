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
    campaign = campaign_factory(1)
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
