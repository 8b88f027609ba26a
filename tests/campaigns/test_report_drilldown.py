"""Issue #14 item 6 (report part): a clicker counts as an opener, each count links to the contacts
behind it, and the CSV has no lone ' in its empty cells."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns import services

pytestmark = pytest.mark.django_db


def test_counts_lead_to_their_contacts_and_a_click_is_an_open(marketer_client, campaign_factory):
    from delivery.models import Message, MessageEvent

    campaign = campaign_factory(3)
    services.campaign_start(campaign.pk)
    campaign.refresh_from_db()
    Message.objects.update(state="sent", sent_at=timezone.now())
    clicker = Message.objects.get(email="person1@example.org")
    # A human click, no open (the pixel was blocked); and a privacy proxy's open for another.
    MessageEvent.objects.create(
        message=clicker, mailing_id=clicker.mailing_id, kind="clicked", at=timezone.now()
    )
    other = Message.objects.get(email="person2@example.org")
    MessageEvent.objects.create(
        message=other,
        mailing_id=other.mailing_id,
        kind="opened",
        at=timezone.now(),
        data={"machine": "apple-mpp"},
    )

    report = marketer_client.get(reverse("campaigns:report", args=[campaign.pk])).content.decode()
    opened_url = reverse("campaigns:report-people", args=[campaign.pk, "opened"])
    assert (
        f'href="{opened_url}" title="Who: the contacts behind this number" data-figure="human_opens">1<'
        in report
    )

    people = marketer_client.get(opened_url).content.decode()
    contact_url = reverse("contacts:detail", args=[clicker.contact_id])
    assert "1 contact opened it" in people and f'<a href="{contact_url}">person1@example.org</a>' in people
    assert "person2@example.org" not in people  # a machine's open is not a person's
    sent = marketer_client.get(
        reverse("campaigns:report-people", args=[campaign.pk, "sent"])
    ).content.decode()
    assert "3 contacts were sent the campaign" in sent
    assert (
        marketer_client.get(reverse("campaigns:report-people", args=[campaign.pk, "nope"])).status_code == 404
    )

    body = b"".join(
        marketer_client.get(reverse("campaigns:report-csv", args=[campaign.pk])).streaming_content
    )
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert all(value != "'" for row in rows for value in row.values())
    by_email = {row["email"]: row for row in rows}
    assert (
        by_email["person1@example.org"]["opened"] == "yes"
        and by_email["person1@example.org"]["clicked"] == "yes"
    )
    assert by_email["person0@example.org"]["opened"] == "" and by_email["person0@example.org"]["reason"] == ""
