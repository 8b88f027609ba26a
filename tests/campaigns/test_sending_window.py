"""Sending windows: a campaign sends only between two times of day, in one zone or in each contact's
own; outside it the mail waits in the ledger (hold reason "window", not-before = the window's next
opening), goes when it opens, once, and the progress page says so. Real relay, real ledger."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns import selectors, services
from campaigns.models import Campaign
from delivery import ledger
from delivery.engine import drain
from delivery.models import HoldReason, Message
from delivery.windows import SendWindow, check_window
from mailplatform.errors import Invalid

pytestmark = pytest.mark.django_db

UTC = dt.UTC


def at(hour, minute=0, day=6):
    return dt.datetime(2026, 12, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "end", "zone", "now", "expected"),
    [
        ("09:00", "17:00", "UTC", at(10), None),
        ("09:00", "17:00", "UTC", at(8, 59), at(9)),
        ("09:00", "17:00", "UTC", at(17), at(9, day=7)),  # the end is not in the window
        ("22:00", "06:00", "UTC", at(23), None),  # over midnight
        ("22:00", "06:00", "UTC", at(5, 59), None),
        ("22:00", "06:00", "UTC", at(12), at(22)),
        # 09:00 in Berlin is 08:00 UTC in December; in New York 14:00 UTC.
        ("09:00", "17:00", "Europe/Berlin", at(7), at(8)),
        ("09:00", "17:00", "America/New_York", at(12), at(14)),
        # Over a DST change: the window opens at 09:00 local on the next day, whatever the offset.
        (
            "09:00",
            "17:00",
            "Europe/Berlin",
            dt.datetime(2026, 3, 28, 17, tzinfo=UTC),
            dt.datetime(2026, 3, 29, 7, tzinfo=UTC),
        ),
    ],
)
def test_next_opening(start, end, zone, now, expected):
    window = check_window({"start": start, "end": end, "tz": zone})
    assert window.next_open(window.zone, now) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"start": "9", "end": "17:00", "tz": "UTC"}, "not a time of day"),
        ({"start": "09:00", "end": "09:00", "tz": "UTC"}, "same time"),
        ({"start": "09:00", "end": "17:00", "tz": "Mars/Olympus"}, "not an IANA time zone"),
    ],
)
def test_bad_windows_are_refused(value, message):
    with pytest.raises(Invalid, match=message):
        check_window(value)


def _window_around(now: dt.datetime, zone: str, *, inside: bool) -> tuple[dt.time, dt.time]:
    """Two hours around now in `zone` (inside), or the two hours six hours from now (outside)."""
    local = now.astimezone(zoneinfo.ZoneInfo(zone)) + dt.timedelta(hours=0 if inside else 6)
    return (local - dt.timedelta(hours=1)).time().replace(second=0, microsecond=0), (
        local + dt.timedelta(hours=1)
    ).time().replace(second=0, microsecond=0)


def _start(campaign: Campaign) -> Campaign:
    services.campaign_start(campaign.pk)
    campaign.refresh_from_db()
    return campaign


def test_outside_the_window_mail_waits_in_the_ledger_and_goes_once_when_it_opens(
    campaign_factory, relay_server, admin_client
):
    start, end = _window_around(timezone.now(), "Asia/Tokyo", inside=False)
    campaign = campaign_factory(4)
    services.campaign_update(campaign.pk, window_start=start, window_end=end, window_timezone="Asia/Tokyo")
    campaign = _start(campaign)
    assert campaign.mailing.meta["window"]["tz"] == "Asia/Tokyo"
    drain(campaign.mailing_id, seconds=20)
    assert relay_server.received == []
    held = Message.objects.filter(mailing=campaign.mailing)
    assert {m.state for m in held} == {"deferred"} and {m.hold_reason for m in held} == {HoldReason.WINDOW}
    opens = SendWindow(start, end, "Asia/Tokyo").next_open("Asia/Tokyo", timezone.now())
    assert {m.next_attempt_at for m in held} == {opens}
    assert all(m.attempts == 0 for m in held)  # waiting is not a try
    page = admin_client.get(reverse("campaigns:detail", args=[campaign.pk])).content.decode()
    assert 'id="window-note"' in page and "4 messages wait outside it" in page and "(Asia/Tokyo)" in page
    # The watchdog before the window opens changes nothing ...
    ledger.requeue_due()
    assert Message.objects.filter(mailing=campaign.mailing, state="deferred").count() == 4
    # ... after it (the clock moved on: the not-before time is past, and now is inside the window).
    # (The campaign is sending: its window is in the Mailing's snapshot, which the test moves.)
    from delivery.models import Mailing

    inside_start, inside_end = _window_around(timezone.now(), "Asia/Tokyo", inside=True)
    mailing = Mailing.objects.get(pk=campaign.mailing_id)
    mailing.meta["window"] = {
        "start": f"{inside_start:%H:%M}",
        "end": f"{inside_end:%H:%M}",
        "tz": "Asia/Tokyo",
    }
    mailing.save(update_fields=["meta"])
    held.update(next_attempt_at=timezone.now() - dt.timedelta(seconds=1))
    assert ledger.requeue_due() == 4
    drain(campaign.mailing_id, seconds=20)
    assert sorted(relay_server.recipients()) == [f"person{i}@example.org" for i in range(4)]  # each once
    assert Message.objects.filter(mailing=campaign.mailing, state="sent").count() == 4


def test_each_contacts_own_time_zone(campaign_factory, relay_server, settings):
    from contacts.models import Contact

    settings.DEFAULT_TIMEZONE = "UTC"
    start, end = _window_around(timezone.now(), "UTC", inside=True)
    campaign = campaign_factory(3)
    Contact.objects.filter(email="person1@example.org").update(timezone="Asia/Kolkata")  # 5:30 ahead: outside
    Contact.objects.filter(email="person2@example.org").update(timezone="Europe/London")  # UTC in December
    services.campaign_update(campaign.pk, window_start=start, window_end=end, window_timezone="contact")
    campaign = _start(campaign)
    drain(campaign.mailing_id, seconds=20)
    assert sorted(relay_server.recipients()) == ["person0@example.org", "person2@example.org"]
    waiting = Message.objects.get(mailing=campaign.mailing, state="deferred")
    assert waiting.email == "person1@example.org" and waiting.hold_reason == HoldReason.WINDOW
    assert waiting.next_attempt_at == SendWindow(start, end, "contact").next_open(
        "Asia/Kolkata", timezone.now()
    )
    progress = selectors.campaign_progress(campaign)
    assert (
        progress["window"]["held"] == 1 and "each recipient's own time zone" in progress["window"]["describe"]
    )


def test_the_settings_step_saves_a_window(campaign_factory, admin_client, sending_identity):
    campaign = campaign_factory(1, from_email="news@example.com")
    url = reverse("campaigns:step", args=[campaign.pk, "settings"])
    page = admin_client.get(url).content.decode()
    assert 'name="window_start"' in page and "Each contact&#x27;s own time zone" in page
    post = {
        "from_email": "news@example.com",
        "window_start": "22:00",
        "window_end": "06:00",
        "window_timezone": "Europe/Berlin",
    }
    admin_client.post(url, post)
    campaign.refresh_from_db()
    assert (campaign.window_start, campaign.window_end, campaign.window_timezone) == (
        dt.time(22),
        dt.time(6),
        "Europe/Berlin",
    )
    refused = admin_client.post(url, {**post, "window_end": ""}).content.decode()
    assert "needs both a start and an end" in refused
