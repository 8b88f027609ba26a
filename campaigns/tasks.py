"""Celery tasks: thin, call services."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="campaigns.tasks.tick", ignore_result=True)
def tick() -> dict[str, int]:
    """Beat: start due campaigns (polling the database, not countdowns), decide A/B tests, guard."""
    from campaigns.services import campaigns_tick

    return campaigns_tick()


@shared_task(name="campaigns.tasks.start", ignore_result=True)
def start(campaign_id: int, user_id: int | None) -> None:
    """Send now, from campaign_send_now: the snapshot and the plan, off the request."""
    from django.contrib.auth import get_user_model

    from campaigns.services import campaign_start_or_fail

    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    campaign_start_or_fail(campaign_id, by=user)
