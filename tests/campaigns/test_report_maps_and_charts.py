"""Issue #14 (reports): a click map over the message, and an over-time chart that reads for a
14-second send and for a week-long one (minutes first, then hours, then days)."""

from __future__ import annotations

import datetime as dt
import html

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns import services

pytestmark = pytest.mark.django_db


def _clicks(campaign, url: str, emails: list[str], *, machine: bool = False):
    from delivery.models import Message, MessageEvent

    for email in emails:
        message = Message.objects.get(email=email)
        MessageEvent.objects.create(
            message=message, mailing_id=message.mailing_id, kind="clicked", at=timezone.now(),
            data={"url": url, "link": "0", **({"machine": "scanner"} if machine else {})},
        )  # fmt: skip


def test_click_map_marks_each_tracked_link_with_its_clickers(marketer_client, campaign_factory):
    from delivery.models import Message

    campaign = campaign_factory(4)
    services.campaign_start(campaign.pk)
    Message.objects.update(state="sent", sent_at=timezone.now())
    _clicks(
        campaign, "https://shop.example.com/spring?a=1&b=2", ["person0@example.org", "person1@example.org"]
    )
    _clicks(campaign, "https://blog.example.com/news", ["person2@example.org"], machine=True)

    page = marketer_client.get(reverse("campaigns:report", args=[campaign.pk])).content.decode()
    frame = page[page.index('id="click-map"') :]
    tag = page[page.rindex("<iframe", 0, page.index('id="click-map"')) :]
    assert 'sandbox=""' in tag[: tag.index("srcdoc=")]
    srcdoc = html.unescape(frame[frame.index('srcdoc="') + 8 : frame.index('"', frame.index('srcdoc="') + 8)])
    assert "2 clicked · 50.0%" in srcdoc  # 2 of 4 delivered
    assert "0 clicked · 0.0%" in srcdoc  # the scanner's click is not a person's
    assert srcdoc.index("2 clicked") < srcdoc.index("See the spring sale")
    assert srcdoc.count('data-click-map="1"') == 2  # the unsubscribe link is per recipient: not marked
    assert "<script" not in srcdoc


def test_timeline_is_minutes_then_hours_then_days(campaign_factory):
    from delivery.models import Mailing, Message, MessageEvent
    from delivery.selectors import engagement_timeline

    campaign = campaign_factory(3)
    services.campaign_start(campaign.pk)
    campaign.refresh_from_db()
    start = timezone.now().replace(minute=0, second=0, microsecond=0) - dt.timedelta(days=6)
    Mailing.objects.update(started_at=start)
    message = Message.objects.first()
    for offset in (dt.timedelta(seconds=20), dt.timedelta(minutes=3), dt.timedelta(minutes=3, seconds=30),
                   dt.timedelta(hours=5), dt.timedelta(hours=5, minutes=40), dt.timedelta(days=4), dt.timedelta(days=5)):  # fmt: skip
        MessageEvent.objects.create(
            message=message, mailing_id=message.mailing_id, kind="opened", at=start + offset
        )
    points = engagement_timeline([campaign.mailing_id])
    assert [p["unit"] for p in points] == ["minute", "minute", "hour", "day", "day"]
    assert [p["opens"] for p in points] == [1, 1, 1, 1, 1]
    assert points[1]["at"] - points[0]["at"] <= dt.timedelta(minutes=4)


def test_a_short_send_charts_by_the_minute(marketer_client, campaign_factory):
    from delivery.models import Message, MessageEvent

    campaign = campaign_factory(3)
    services.campaign_start(campaign.pk)
    now = timezone.now()
    Message.objects.update(state="sent", sent_at=now)
    for i, message in enumerate(Message.objects.order_by("id")):
        MessageEvent.objects.create(
            message=message, mailing_id=message.mailing_id, kind="opened", at=now + dt.timedelta(minutes=i)
        )
    page = marketer_client.get(reverse("campaigns:report", args=[campaign.pk])).content.decode()
    chart = page[page.index('<svg class="chart"') : page.index("</svg>")]
    assert chart.count("<circle") >= 3 * 3  # three minutes, three series: not one hourly point


def test_results_by_domain_and_the_timeline_read_only_the_campaigns_own_events(campaign_factory):
    from delivery.models import Mailing, Message, MessageEvent
    from delivery.selectors import engagement_timeline, results_by_domain

    campaign = campaign_factory(4)
    other = campaign_factory(mailing_list=campaign.lists.get(), name="Other")
    services.campaign_start(campaign.pk)
    services.campaign_start(other.pk)
    campaign.refresh_from_db()
    other.refresh_from_db()
    now = timezone.now().replace(second=0, microsecond=0)
    Mailing.objects.update(started_at=now)
    Message.objects.update(state="sent", sent_at=now)

    def hit(mailing_id: int, email: str, kind: str, at: dt.datetime, machine: bool = False) -> None:
        message = Message.objects.get(mailing_id=mailing_id, email=email)
        data = {"machine": "proxy"} if machine else {}
        MessageEvent.objects.create(message=message, mailing_id=mailing_id, kind=kind, at=at, data=data)

    mine = campaign.mailing_id
    hit(mine, "person0@example.org", "opened", now + dt.timedelta(minutes=1))
    hit(mine, "person0@example.org", "opened", now + dt.timedelta(minutes=2))  # one person, once
    hit(mine, "person1@example.org", "opened", now + dt.timedelta(minutes=3), machine=True)
    hit(mine, "person2@example.org", "clicked", now + dt.timedelta(minutes=4))
    hit(mine, "person3@example.org", "clicked", now + dt.timedelta(minutes=5), machine=True)
    # The other campaign's hits, a week before and after: in neither figure nor span.
    for email in ("person1@example.org", "person3@example.org"):
        hit(other.mailing_id, email, "opened", now - dt.timedelta(days=7))
        hit(other.mailing_id, email, "clicked", now + dt.timedelta(days=7))

    [row] = results_by_domain([mine])
    assert (row["domain"], row["total"], row["sent"], row["opened"], row["clicked"]) == (
        "example.org", 4, 4, 1, 1,
    )  # fmt: skip
    # A domain however it is written is one domain (grouped as written, lowered after): the
    # figures stay, and no second row appears.
    for email, written in (
        ("person0@example.org", "person0@Example.ORG"),
        ("person2@example.org", "person2@EXAMPLE.org"),
    ):
        Message.objects.filter(mailing_id=mine, email=email).update(email=written)
    assert results_by_domain([mine]) == [row]
    points = engagement_timeline([mine])
    assert {p["unit"] for p in points} == {"minute"}
    assert [points[0]["at"], points[-1]["at"]] == [now + dt.timedelta(minutes=m) for m in (1, 5)]
