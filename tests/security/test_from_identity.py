"""Issue #12, item 8: marketing and transactional sends refuse a From whose address and domain are not
a sending identity; a fresh install has one, for its default From (the capture relay's mail)."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.fixture
def template(db):
    from templates.services import template_create

    return template_create(
        name="Receipt", subject="Your receipt", html='<p>Thanks</p><a href="{{ unsubscribe_url }}">u</a>'
    )


@pytest.fixture
def newsletter(db):
    from contacts.models import MailingList
    from contacts.services import contact_create

    news = MailingList.objects.create(name="News", opt_in="single")
    contact_create(email="reader@example.org", list_ids=[news.pk])
    return news


def _fields(response) -> list[str]:
    return [error.get("field") for error in response.json().get("errors", [])]


def test_a_fresh_install_sends_from_its_default_from_and_allows_only_that(api_client_for, template):
    from delivery.identities import check_from
    from delivery.models import SendingIdentity
    from mailplatform.models import AuditEntry

    assert not SendingIdentity.objects.exists()
    sender = api_client_for("admin", ["send"])
    sent = sender.post("/api/v1/send", {"template": template.pk, "to": "buyer@example.com"}, format="json")
    assert sent.status_code == 202, sent.content
    default_domain = settings.DELIVERY_DEFAULT_FROM_EMAIL.rsplit("@", 1)[-1]
    assert list(SendingIdentity.objects.values_list("address", flat=True)) == [default_domain]
    assert AuditEntry.objects.filter(action="identity.created").exists()
    with pytest.raises(Exception) as refused:
        check_from("ceo@bank.example")
    assert refused.value.field == "from_email" and "not an allowed sender" in str(refused.value)


def test_a_transactional_send_from_a_domain_that_is_not_an_identity_is_refused(api_client_for, template):
    from delivery.identities import identity_save
    from delivery.models import Mailing, Message

    identity_save(address="shop.test")  # the admin's own domain; the default From is not in it
    sender = api_client_for("admin", ["send"])
    refused = sender.post("/api/v1/send", {"template": template.pk, "to": "buyer@example.com"}, format="json")
    assert refused.status_code == 400, refused.content
    assert _fields(refused) == ["from_email"]
    assert "not an allowed sender" in refused.content.decode()
    assert not Message.objects.exists() and not Mailing.objects.exists()


def test_an_api_campaign_from_a_foreign_domain_is_refused_at_creation(api_client_for, template, newsletter):
    from campaigns.models import Campaign

    client = api_client_for("admin", ["campaigns:read", "campaigns:write"])
    body = {
        "name": "Phish",
        "template": template.pk,
        "lists": [newsletter.pk],
        "from_email": "ceo@bank.example",
    }
    refused = client.post("/api/v1/campaigns/", body, format="json")
    assert refused.status_code == 400, refused.content
    assert "from_email" in _fields(refused)
    assert not Campaign.objects.exists()


def test_an_api_campaign_whose_from_stopped_being_an_identity_is_not_sent(
    api_client_for, template, newsletter, sending_identity
):
    from campaigns.models import Campaign
    from delivery.identities import identity_save
    from delivery.models import Message

    client = api_client_for("admin", ["campaigns:read", "campaigns:write"])
    body = {
        "name": "News",
        "template": template.pk,
        "lists": [newsletter.pk],
        "from_email": "news@example.com",
    }
    created = client.post("/api/v1/campaigns/", body, format="json")
    assert created.status_code == 201, created.content
    identity_save(sending_identity, address=sending_identity.address, enabled=False)
    refused = client.post(f"/api/v1/campaigns/{created.json()['id']}/send", {}, format="json")
    assert refused.status_code == 409, refused.content
    assert "news@example.com is not an allowed sender" in refused.content.decode()
    assert Campaign.objects.get().state == "draft" and not Message.objects.exists()


def test_the_dashboard_campaign_form_refuses_a_foreign_from_on_its_field(marketer_client, template):
    from campaigns.models import Campaign
    from campaigns.services import campaign_create

    campaign = campaign_create(name="Spring", template=template)
    before = campaign.from_email
    response = marketer_client.post(
        reverse("campaigns:step", args=[campaign.pk, "settings"]),
        {"from_email": "ceo@bank.example", "from_name": "Bank", "ab_test_percent": "20", "ab_metric": "opens",
         "ab_wait_minutes": "60"},
    )  # fmt: skip
    assert response.status_code == 200  # the form again, with the error on the field
    assert "from_email" in response.context["form"].errors
    assert "not an allowed sender" in response.context["form"].errors["from_email"][0]
    assert Campaign.objects.get().from_email == before
