"""Celery tasks: thin, call services."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="campaigns.tasks.tick", ignore_result=True)
def tick() -> dict[str, int]:
    """Beat: start due campaigns (polling the database, not countdowns), decide A/B tests, guard."""
    from campaigns.services import campaigns_tick

    return campaigns_tick()
