"""The beat schedule is one registry that each app fills from its AppConfig; Celery's beat reads it."""

from __future__ import annotations

import pytest
from celery.beat import Scheduler


def test_beat_reads_every_app_entry_from_the_registry():
    from mailplatform import beat
    from mailplatform.celery import app

    assert app.conf.beat_schedule is beat.SCHEDULE
    # A real beat scheduler, built as `celery beat` builds it, holds each app's entries.
    scheduler = Scheduler(app=app, lazy=False)
    tasks = {name: entry.task for name, entry in scheduler.schedule.items()}
    assert tasks["webhook-sweep"] == "mailplatform.tasks.webhook_sweep"
    assert tasks["webhook-forward-contacts"] == "contacts.webhook_tasks.forward_subscriptions"
    assert tasks["delivery-watchdog"] == "delivery.tasks.send_watchdog"
    assert tasks["bounce-mailboxes-poll"] == "delivery.bounces.tasks.bounce_mailboxes_poll"
    assert tasks["campaigns-tick"] == "campaigns.tasks.tick"


def test_intervals_come_from_the_apps_settings():
    from django.conf import settings

    from mailplatform.beat import SCHEDULE

    assert SCHEDULE["campaigns-tick"]["schedule"] == float(settings.CAMPAIGNS_TICK_SECONDS)
    assert SCHEDULE["delivery-tracking-flush"]["schedule"] == float(settings.TRACKING_FLUSH_SECONDS)
    assert SCHEDULE["bounce-mailboxes-poll"]["schedule"] == float(settings.BOUNCE_POLL_SECONDS)


def test_every_scheduled_task_exists():
    from mailplatform.celery import app

    app.loader.import_default_modules()
    assert {entry["task"] for entry in app.conf.beat_schedule.values()} <= set(app.tasks)


def test_an_interval_must_be_positive():
    from mailplatform import beat

    with pytest.raises(ValueError, match="positive"):
        beat.every(0, "mailplatform.tasks.webhook_sweep", name="never")
    assert "never" not in beat.SCHEDULE
