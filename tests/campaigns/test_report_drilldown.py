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


def test_every_count_links_to_its_contacts_and_the_count_agrees(marketer_client, campaign_factory):
    """Issue #14: every count in the report opens the contacts behind it, as many as it says."""
    import re

    from delivery.models import Message, MessageEvent

    campaign = campaign_factory(4)
    services.campaign_start(campaign.pk)
    Message.objects.update(state="sent", sent_at=timezone.now())
    Message.objects.filter(email="person3@example.org").update(state="skipped", sent_at=None)
    Message.objects.filter(email="person2@example.org").update(bounce_kind="hard")
    opener = Message.objects.get(email="person0@example.org")
    MessageEvent.objects.create(
        message=opener, mailing_id=opener.mailing_id, kind="opened", at=timezone.now()
    )
    MessageEvent.objects.create(
        message=opener,
        mailing_id=opener.mailing_id,
        kind="clicked",
        at=timezone.now(),
        data={"machine": "scanner"},
    )
    report = marketer_client.get(reverse("campaigns:report", args=[campaign.pk])).content.decode()
    table = report[report.index('id="figures"') : report.index("</table>", report.index('id="figures"'))]
    cells = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td>", table, re.S)
    assert len(cells) == 16
    for label, cell in cells:
        link = re.search(r'<a href="([^"]+)"[^>]*>(\d+)</a>', cell)
        assert link, f"{label} is not a link: {cell}"
        people = marketer_client.get(link.group(1))
        assert people.status_code == 200
        heading = re.search(r"<h1>(\d+) contacts?", people.content.decode())
        assert heading and heading.group(1) == link.group(2), (label, link.group(2), heading)


def test_a_drilldown_saves_as_a_segment_that_selects_the_same_people(marketer_client, campaign_factory):
    from contacts.models import Contact, Segment
    from contacts.selectors import segment_count
    from delivery.models import Message, MessageEvent

    campaign = campaign_factory(3)
    services.campaign_start(campaign.pk)
    Message.objects.update(state="sent", sent_at=timezone.now())
    for email, data in (("person0@example.org", {}), ("person1@example.org", {"machine": "apple-mpp"})):
        message = Message.objects.get(email=email)
        MessageEvent.objects.create(
            message=message, mailing_id=message.mailing_id, kind="opened", at=timezone.now(), data=data
        )

    url = reverse("campaigns:report-people", args=[campaign.pk, "opened"])
    assert "Save as a segment" in marketer_client.get(url).content.decode()
    response = marketer_client.post(url)
    segment = Segment.objects.get()
    assert response.url == reverse("contacts:segment-edit", args=[segment.pk])
    assert segment_count(segment.rules) == 1
    assert segment.rules["groups"][0]["conditions"][0] == {
        "field": "mailing",
        "op": "opened",
        "value": campaign.send_group,
    }
    # The segment page draws the rule with the campaign chosen.
    page = marketer_client.get(response.url).content.decode()
    assert f'<option value="{campaign.send_group}" selected>' in page
    # A figure segment rules cannot say (machine opens) offers no button and refuses the post.
    machine = reverse("campaigns:report-people", args=[campaign.pk, "machine_opens"])
    assert "Save as a segment" not in marketer_client.get(machine).content.decode()
    assert marketer_client.post(machine).status_code == 404
    assert Contact.objects.count() == 3
