"""Issue #14, "live numbers disagree": a paused campaign shows no rate and no time left and says why
mail still arrived after the pause; the first estimate is sane; "Delivered" is redrawn with the bar;
the mailing page's event counts agree with "N sent of N"; held mail's estimate reads the ledger."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns import services

pytestmark = pytest.mark.django_db


def _sent_seconds_ago(mailing_id: int, per_second: dict[int, int]) -> None:
    from delivery.ratelimit import _sent_key
    from mailplatform.redis_cache import redis_client

    now = int(time.time())
    client = redis_client()
    for ago, count in per_second.items():
        client.set(_sent_key(mailing_id, now - ago), count, ex=120)


def _started(campaign_factory, count: int = 10):
    campaign = campaign_factory(count)
    services.campaign_start(campaign.pk)
    campaign.refresh_from_db()
    return campaign


def test_first_estimate_counts_only_the_seconds_that_sent(campaign_factory):
    from delivery.models import Message
    from delivery.selectors import mailing_progress

    campaign = _started(campaign_factory, 10)
    # Two seconds into the send, 2 of 10 sent at one per second: 8 left at 1/s is ~8 s, not 40 s.
    ids = list(Message.objects.values_list("pk", flat=True)[:2])
    Message.objects.filter(pk__in=ids).update(state="sent", sent_at=timezone.now())
    _sent_seconds_ago(campaign.mailing_id, {1: 1, 2: 1})
    progress = mailing_progress(campaign.mailing_id)
    assert progress["rate_per_s"] == 1.0
    assert progress["eta_s"] == 8


def test_paused_campaign_shows_no_rate_or_time_left_and_says_why_mail_still_arrived(
    marketer_client, campaign_factory
):
    from delivery.models import Message

    campaign = _started(campaign_factory, 10)
    _sent_seconds_ago(campaign.mailing_id, {1: 5, 2: 5})
    Message.objects.filter(pk__in=list(Message.objects.values_list("pk", flat=True)[:3])).update(
        state="sent", sent_at=timezone.now() - dt.timedelta(seconds=5)
    )
    services.campaign_pause(campaign.pk, by=None)
    # Two more recorded after the pause: a runner had handed them to the relay already.
    late = list(Message.objects.filter(state="queued").values_list("pk", flat=True)[:2])
    Message.objects.filter(pk__in=late).update(state="sent", sent_at=timezone.now() + dt.timedelta(seconds=1))

    page = marketer_client.get(reverse("campaigns:progress", args=[campaign.pk])).content.decode()
    text = page[page.index('id="progress-text"') :]
    text = text[: text.index("</p>")]
    assert "5 sent of 10" in text
    assert "per second" not in text and "left" not in text
    assert "2 messages still went out after the pause" in page
    assert "already handed to the relay" in page


def test_delivered_is_redrawn_with_the_bar(marketer_client, campaign_factory):
    from delivery.models import Message

    campaign = _started(campaign_factory, 4)
    Message.objects.update(state="sent", sent_at=timezone.now())
    fragment = marketer_client.get(reverse("campaigns:progress", args=[campaign.pk])).content.decode()
    assert "100%" in fragment
    assert '<strong data-live="delivered">4</strong>' in fragment


def test_mailing_page_events_agree_with_sent_of_total(marketer_client, campaign_factory):
    from delivery.models import Message

    campaign = _started(campaign_factory, 3)
    Message.objects.update(state="sent", sent_at=timezone.now())
    page = marketer_client.get(reverse("delivery:mailing", args=[campaign.mailing_id])).content.decode()
    assert "3 sent" in page
    assert '<strong data-event="sent">3</strong>' in page


def test_held_mail_estimate_reads_the_ledger_hold(campaign_factory):
    from delivery.models import Message
    from delivery.selectors import mailing_progress

    campaign = _started(campaign_factory, 3)
    until = timezone.now() + dt.timedelta(minutes=10)
    Message.objects.update(state="deferred", hold_reason="window", next_attempt_at=until)
    progress = mailing_progress(campaign.mailing_id)
    assert progress["held"] == {"window": 3}
    assert 590 <= progress["eta_s"] <= 600
