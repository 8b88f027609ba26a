"""The scheduler's backlog on /metrics: runs due now and how late the most overdue one is."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from tests.mailplatform.test_metrics import TOKEN, exposed

pytestmark = pytest.mark.django_db


def _scrape(client, settings) -> dict[str, dict[tuple, float]]:
    settings.METRICS_ENABLED, settings.METRICS_TOKEN = True, TOKEN
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    return exposed(response.content.decode())


def _value(metrics, name: str) -> float:
    return metrics[name][()]


def test_due_runs_and_the_most_overdue_show_and_a_paused_automation_does_not(
    client, settings, series, make_contacts
):
    from automations import services
    from automations.models import Run

    automation = series()
    contacts = make_contacts(3)
    services.enrol(automation.pk, [c.pk for c in contacts])
    # One run is 20 minutes late (a scheduler that stopped), one due now, one not due for an hour.
    late, due, waiting = Run.objects.filter(automation=automation).order_by("id")
    Run.objects.filter(pk=late.pk).update(next_at=timezone.now() - dt.timedelta(minutes=20))
    Run.objects.filter(pk=waiting.pk).update(next_at=timezone.now() + dt.timedelta(hours=1))
    metrics = _scrape(client, settings)
    assert _value(metrics, "posthorn_automation_runs_due") == 2
    assert 20 * 60 <= _value(metrics, "posthorn_automation_oldest_due_seconds") < 21 * 60
    # Pause holds every run where it is: nothing is due that the scheduler should be moving.
    services.automation_set_status(automation.pk, "paused")
    metrics = _scrape(client, settings)
    assert _value(metrics, "posthorn_automation_runs_due") == 0
    assert _value(metrics, "posthorn_automation_oldest_due_seconds") == 0
