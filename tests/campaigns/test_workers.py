"""With a real Celery worker: the beat task starts a due campaign, the worker sends it, and the
tracking flush task writes buffered hits."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.test import Client
from django.utils import timezone

from campaigns.models import Campaign, CampaignState


def _wait(predicate, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.3)
    return False


def test_beat_schedule_polls_the_database():
    from mailplatform.beat import SCHEDULE as schedule

    assert schedule["campaigns-tick"]["task"] == "campaigns.tasks.tick"
    assert schedule["delivery-tracking-flush"]["task"] == "delivery.tasks.tracking_flush"


@pytest.mark.usefixtures("clean_tracking_buffer")
def test_worker_starts_a_due_campaign_sends_it_and_flushes_tracking(
    campaign_factory, relay_server, celery_worker_process
):
    from campaigns import services
    from campaigns.tasks import tick
    from delivery import tracking
    from delivery.models import Message, MessageEvent
    from delivery.tasks import tracking_flush

    campaign = campaign_factory(4)
    services.campaign_schedule(
        campaign.pk,
        local_time=(timezone.now() + dt.timedelta(minutes=2)).astimezone(dt.UTC).replace(tzinfo=None),
        tz_name="UTC",
    )
    Campaign.objects.filter(pk=campaign.pk).update(scheduled_at=timezone.now() - dt.timedelta(seconds=5))
    tick.delay()
    assert _wait(lambda: len(relay_server.recipients()) == 4), "the worker did not send the campaign"
    tick.delay()
    assert _wait(lambda: Campaign.objects.get(pk=campaign.pk).state == CampaignState.SENT)

    message = Message.objects.filter(mailing__meta__campaign_id=campaign.pk).first()
    Client().get(f"/t/o/{tracking.token(message.mailing_id, message.pk)}.gif")
    tracking.push_pending()
    tracking_flush.delay()
    assert _wait(lambda: MessageEvent.objects.filter(message=message, kind="opened").exists())
