"""A campaign whose From domain is warming up: its progress page says what the warm-up holds and on
which day the schedule should let the last of it go (the send itself: tests/delivery/test_warmup.py)."""

from __future__ import annotations

import datetime as dt

from django.urls import reverse

from campaigns import selectors, services
from delivery import warmup
from delivery.engine import drain
from mailplatform.redis_cache import redis_client, redis_key


def test_the_campaign_page_says_it_is_held_by_warm_up_and_when_it_finishes(
    transactional_db, campaign_factory, relay_server, marketer_client
):
    client = redis_client()
    for key in client.scan_iter(redis_key("delivery", "warmup", "*")):
        client.delete(key)
    warmup.warmup_save(domain="example.com", caps="5, 10, 20")
    campaign = campaign_factory(30, from_email="news@example.com")
    services.campaign_start(campaign.pk)
    campaign.refresh_from_db()
    drain(campaign.mailing_id, seconds=20)
    assert len(relay_server.recipients()) == 5

    progress = selectors.campaign_progress(campaign)
    assert progress["held"] == {"warmup": 25} and progress["eta_s"] is None
    # 25 left: 10 tomorrow, 15 of the 20 the day after.
    finish = warmup.today() + dt.timedelta(days=2)
    assert progress["warmup"]["finish_on"] == finish
    page = marketer_client.get(reverse("campaigns:detail", args=[campaign.pk])).content.decode()
    assert 'id="warmup-note"' in page and "25 messages wait" in page
    assert "day 1 of 3" in page
    assert f'<span id="warmup-finish">{finish:%b} {finish.day}, {finish.year}</span>' in page
