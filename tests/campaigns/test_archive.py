"""The public archive: off by default; a sent campaign a person publishes appears as a page and in
Atom / RSS feeds, rendered with fallback data, never a recipient's."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from campaigns import selectors, services
from campaigns.models import CampaignState
from delivery.engine import drain

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(campaign_factory, relay_server):
    campaign = campaign_factory(2)
    services.campaign_start(campaign.pk)
    campaign.refresh_from_db()
    for mailing_id in selectors.campaign_mailing_ids(campaign):
        drain(mailing_id, seconds=20)
    services.campaign_sync(campaign.pk)
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.SENT
    return campaign


def test_off_by_default(sent, settings):
    assert settings.CAMPAIGNS_ARCHIVE is False
    assert Client().get(reverse("campaigns:archive")).status_code == 404
    assert Client().get(reverse("campaigns:archive-feed", args=["atom"])).status_code == 404


def test_published_campaigns_show_with_fallback_data_only(sent, settings, admin_client):
    settings.CAMPAIGNS_ARCHIVE = True
    public = Client()
    assert public.get(reverse("campaigns:archive-item", args=[sent.pk])).status_code == 404  # not published
    page = admin_client.get(reverse("campaigns:detail", args=[sent.pk])).content.decode()
    assert "Publish to the archive" in page
    admin_client.post(reverse("campaigns:action", args=[sent.pk, "archive"]))
    listing = public.get(reverse("campaigns:archive")).content.decode()
    assert "Spring is here,<" in listing and "P0" not in listing and "P1" not in listing
    item = public.get(reverse("campaigns:archive-item", args=[sent.pk]))
    html = item.content.decode()
    assert item.status_code == 200 and "Hi there," in html  # the template's default, not a name
    assert "P0" not in html and "P1" not in html and "person0@" not in html
    assert "/t/o/" not in html and "/t/c/" not in html and "sandbox" in item["Content-Security-Policy"]
    atom = public.get(reverse("campaigns:archive-feed", args=["atom"]))
    assert atom["Content-Type"].startswith("application/atom+xml") and b"<feed" in atom.content
    assert b"archive/%d/" % sent.pk in atom.content and b"P0" not in atom.content
    rss = public.get(reverse("campaigns:archive-feed", args=["rss"]))
    assert b"<rss" in rss.content and b"Spring is here" in rss.content
    admin_client.post(reverse("campaigns:action", args=[sent.pk, "unarchive"]))
    assert public.get(reverse("campaigns:archive-item", args=[sent.pk])).status_code == 404


def test_only_a_sent_campaign_is_published(campaign_factory, settings):
    from campaigns.archive import archive_publish
    from mailplatform.errors import Conflict

    with pytest.raises(Conflict, match="only a sent campaign"):
        archive_publish(campaign_factory(1).pk)
