"""The public archive: campaigns a person published, as web pages and an Atom / RSS feed (feedgen).

Off by default (settings.CAMPAIGNS_ARCHIVE). A page renders the campaign's sent snapshot (the
Mailing's compiled template) with fallback data only: an empty contact, so `| default:` values
show, the organisation's details, and no working unsubscribe, preferences or web version link.
Never a recipient's data.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from campaigns.models import Campaign, CampaignState
from mailplatform.errors import Conflict
from mailplatform.services import audit_record

FALLBACK_CONTACT = {"email": "", "first_name": "", "last_name": ""}


def archive_publish(campaign_id: int, *, by: Any = None) -> Campaign:
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign_id)
        if campaign.state != CampaignState.SENT or campaign.mailing_id is None:
            raise Conflict("only a sent campaign can be published to the archive", code="state")
        campaign.archived_at = campaign.archived_at or timezone.now()
        campaign.save(update_fields=["archived_at", "updated_at"])
        audit_record(by, "campaign.archived", campaign)
    return campaign


def archive_remove(campaign_id: int, *, by: Any = None) -> Campaign:
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign_id)
        campaign.archived_at = None
        campaign.save(update_fields=["archived_at", "updated_at"])
        audit_record(by, "campaign.unarchived", campaign)
    return campaign


def archived() -> list[Campaign]:
    return list(
        Campaign.objects.filter(archived_at__isnull=False, state=CampaignState.SENT, mailing__isnull=False)
        .select_related("mailing")
        .order_by("-archived_at", "-id")[:200]
    )


def archived_one(campaign_id: int) -> Campaign | None:
    return next((c for c in archived() if c.pk == campaign_id), None) if campaign_id else None


def rendered(campaign: Campaign) -> tuple[str, str]:
    """(subject, html) of the sent snapshot with fallback data."""
    from mailplatform.selectors import org_data
    from templates.compiler import CompiledTemplate
    from templates.context import recipient_context

    compiled = CompiledTemplate.from_dict(campaign.mailing.compiled)
    result = compiled.render(recipient_context(contact=FALLBACK_CONTACT, urls={}, org=org_data()))
    return result.subject, result.html


def feed(kind: str, base_url: str) -> bytes:
    """The archive as an Atom ("atom") or RSS ("rss") feed."""
    from django.urls import reverse
    from feedgen.feed import FeedGenerator

    generator = FeedGenerator()
    archive_url = base_url + reverse("campaigns:archive")
    generator.id(archive_url)
    generator.title(settings.CAMPAIGNS_ARCHIVE_TITLE)
    generator.link(href=archive_url, rel="alternate")
    generator.description(settings.CAMPAIGNS_ARCHIVE_TITLE)
    generator.language("en")
    for campaign in reversed(archived()):
        subject, html = rendered(campaign)
        url = base_url + reverse("campaigns:archive-item", args=[campaign.pk])
        entry = generator.add_entry()
        entry.id(url)
        entry.title(subject or campaign.name)
        entry.link(href=url)
        entry.published(campaign.archived_at or dt.datetime.now(dt.UTC))
        entry.updated(campaign.archived_at or dt.datetime.now(dt.UTC))
        entry.content(html, type="CDATA" if kind == "rss" else "html")
    return generator.atom_str(pretty=True) if kind == "atom" else generator.rss_str(pretty=True)
