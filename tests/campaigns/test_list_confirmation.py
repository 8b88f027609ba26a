"""A list's confirmation mail is an ordinary template a marketer edits, from a chosen sending
identity: chosen on the list's page (a delivery fragment), sent through the ledger to a real relay,
and its link confirms the subscription."""

from __future__ import annotations

import email
import re
from email import policy

import pytest
from django.test import Client
from django.urls import reverse

from contacts import services as contact_services
from contacts.models import MailingList, Subscription
from delivery.engine import drain
from delivery.models import Message
from templates.services import template_create
from templates.starters import STARTERS

pytestmark = pytest.mark.django_db


@pytest.fixture
def news():
    return MailingList.objects.create(name="News", opt_in="double", is_public=True)


@pytest.fixture
def edited():
    starter = STARTERS["confirmation"]
    return template_create(
        name="Our confirmation",
        subject="Almost there: confirm {{ list_name }}",
        html=starter.html.replace("Yes, subscribe me", "Count me in"),
        transactional=True,
    )


def test_the_edited_confirmation_mail_goes_from_the_chosen_identity_and_confirms(
    news, edited, sending_identity, relay_server, admin_client, django_capture_on_commit_callbacks, settings
):
    page = admin_client.get(reverse("contacts:list-edit", args=[news.pk])).content.decode()
    fragment_url = reverse("delivery:list-confirmation", args=[news.pk])
    assert f'hx-get="{fragment_url}"' in page
    assert "The built-in confirmation mail" in admin_client.get(fragment_url).content.decode()
    saved = admin_client.post(fragment_url, {"template": edited.pk, "identity": sending_identity.pk})
    assert "Saved" in saved.content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        contact_services.public_subscribe(news, email="ann@example.org", first_name="Ann")
    message = Message.objects.get(email="ann@example.org")
    assert message.mailing.meta["system"] == "confirmation"
    drain(message.mailing_id, seconds=20)
    mail = email.message_from_bytes(relay_server.received[0].content, policy=policy.default)
    assert mail["Subject"] == "Almost there: confirm News"
    assert mail["From"].addresses[0].addr_spec.endswith("@example.com")
    html = mail.get_body(preferencelist=("html",)).get_content()
    assert "Count me in" in html and "Hello Ann" in html
    confirm = re.search(r'href="([^"]+/contacts/p/confirm/[^"]+)"', html).group(1)
    Client().post(confirm.removeprefix(settings.SITE_URL))
    assert Subscription.objects.get(contact__email="ann@example.org").status == "confirmed"


def test_a_template_without_a_confirmation_link_is_refused(news, admin_client):
    plain = template_create(name="No link", subject="Hi", html="<p>Hi</p>", transactional=True)
    answer = admin_client.post(reverse("delivery:list-confirmation", args=[news.pk]), {"template": plain.pk})
    assert "has no confirmation link" in answer.content.decode()
    from delivery.models import ListConfirmation

    assert not ListConfirmation.objects.exists()


def test_without_a_choice_the_built_in_mail_goes(news, sending_identity, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        contact_services.public_subscribe(news, email="bob@example.org")
    message = Message.objects.get(email="bob@example.org")
    assert message.mailing.meta == {"system": "confirmation"}
