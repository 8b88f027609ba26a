"""Campaigns over the API: create, edit, test send, send once, pause/resume/cancel, report."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from campaigns import tasks

pytestmark = pytest.mark.django_db


@pytest.fixture
def marketer_api(api_client_for):
    return api_client_for("admin", ["campaigns:read", "campaigns:write"])


@pytest.fixture
def audience():
    from contacts.models import MailingList
    from contacts.services import contact_create
    from templates.services import template_create

    newsletter = MailingList.objects.create(name="News", opt_in="single")
    for i in range(3):
        contact_create(email=f"reader{i}@example.com", list_ids=[newsletter.pk])
    template = template_create(
        name="Issue 1",
        subject="Issue 1",
        html='<p>Hello {{ contact.email }}</p><a href="{{ unsubscribe_url }}">Unsubscribe</a>',
    )
    return newsletter, template


def _create(client, newsletter, template, **extra):
    body = {"name": "November", "template": template.pk, "lists": [newsletter.pk], **extra}
    response = client.post("/api/v1/campaigns/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_create_edit_and_send_once(marketer_api, audience):
    from delivery.models import Message

    newsletter, template = audience
    campaign = _create(marketer_api, newsletter, template, subject="Our news")
    assert campaign["state"] == "draft" and campaign["lists"] == [newsletter.pk]
    patched = marketer_api.patch(
        f"/api/v1/campaigns/{campaign['id']}/", {"subject": "Our November news"}, format="json"
    )
    assert patched.status_code == 200 and patched.json()["subject"] == "Our November news"
    sent = marketer_api.post(f"/api/v1/campaigns/{campaign['id']}/send", {}, format="json")
    assert sent.status_code == 202, sent.content
    assert sent.json()["state"] == "scheduled"  # due now; a worker starts it
    tasks.start(campaign["id"], None)
    assert marketer_api.get(f"/api/v1/campaigns/{campaign['id']}/").json()["state"] == "sending"
    assert Message.objects.count() == 3
    again = marketer_api.post(f"/api/v1/campaigns/{campaign['id']}/send", {}, format="json")
    assert again.status_code == 409 and "already" in again.json()["detail"]
    assert Message.objects.count() == 3
    refused = marketer_api.patch(f"/api/v1/campaigns/{campaign['id']}/", {"subject": "late"}, format="json")
    assert refused.status_code == 409
    paused = marketer_api.post(f"/api/v1/campaigns/{campaign['id']}/pause", {"reason": "typo"}, format="json")
    assert paused.status_code == 200 and paused.json()["state"] == "paused"
    resumed = marketer_api.post(f"/api/v1/campaigns/{campaign['id']}/resume", {}, format="json")
    assert resumed.json()["state"] == "sending"
    cancelled = marketer_api.post(f"/api/v1/campaigns/{campaign['id']}/cancel", {}, format="json")
    assert cancelled.json()["state"] == "cancelled"
    report = marketer_api.get(f"/api/v1/campaigns/{campaign['id']}/report")
    assert report.status_code == 200, report.content
    assert "progress" in report.json()


def test_schedule_unschedule_clone(marketer_api, audience):
    newsletter, template = audience
    campaign = _create(marketer_api, newsletter, template)
    at = (timezone.now() + dt.timedelta(days=2)).replace(microsecond=0)
    scheduled = marketer_api.post(
        f"/api/v1/campaigns/{campaign['id']}/schedule",
        {"at": at.strftime("%Y-%m-%dT%H:%M:%S"), "timezone": "Europe/Berlin"},
        format="json",
    )
    assert scheduled.status_code == 200, scheduled.content
    assert (
        scheduled.json()["state"] == "scheduled" and scheduled.json()["schedule_timezone"] == "Europe/Berlin"
    )
    bad = marketer_api.post(
        f"/api/v1/campaigns/{campaign['id']}/schedule",
        {"at": at.isoformat(), "timezone": "Mars/Base"},
        format="json",
    )
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "timezone"
    unscheduled = marketer_api.post(f"/api/v1/campaigns/{campaign['id']}/unschedule", {}, format="json")
    assert unscheduled.json()["state"] == "draft"
    clone = marketer_api.post(f"/api/v1/campaigns/{campaign['id']}/clone", {}, format="json")
    assert clone.status_code == 201 and clone.json()["name"] == "November (copy)"


def test_test_send_goes_to_one_address(marketer_api, audience):
    from delivery.models import Message

    newsletter, template = audience
    campaign = _create(marketer_api, newsletter, template)
    response = marketer_api.post(
        f"/api/v1/campaigns/{campaign['id']}/test-send", {"to": "me@example.com"}, format="json"
    )
    assert response.status_code == 202, response.content
    assert response.json()["to"] == "me@example.com"
    assert list(Message.objects.values_list("email", flat=True)) == ["me@example.com"]
    bad = marketer_api.post(f"/api/v1/campaigns/{campaign['id']}/test-send", {"to": "nope"}, format="json")
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "to"


@pytest.mark.parametrize(
    "body,field",
    [
        ({"name": "x", "lists": [987654]}, "lists"),
        ({"name": "x", "template": 987654}, "template"),
        ({"name": "x", "ab_test_percent": 0}, "ab_test_percent"),
        ({"name": "x", "track_opens": "yes"}, "track_opens"),
        ({"name": "x", "audience": "everyone"}, "audience"),
        ({"subject": "no name"}, "name"),
    ],
)
def test_bad_campaign_input_names_the_field(marketer_api, body, field):
    response = marketer_api.post("/api/v1/campaigns/", body, format="json")
    assert response.status_code == 400, response.content
    assert field in [e["field"] for e in response.json()["errors"]]


def test_delete_a_draft_but_not_a_started_campaign(marketer_api, audience):
    newsletter, template = audience
    draft = _create(marketer_api, newsletter, template, subject="Draft")
    assert marketer_api.delete(f"/api/v1/campaigns/{draft['id']}/").status_code == 204
    assert marketer_api.get(f"/api/v1/campaigns/{draft['id']}/").status_code == 404
    started = _create(marketer_api, newsletter, template, subject="Started")
    marketer_api.post(f"/api/v1/campaigns/{started['id']}/send", {}, format="json")
    tasks.start(started["id"], None)
    refused = marketer_api.delete(f"/api/v1/campaigns/{started['id']}/")
    assert refused.status_code == 409 and "keeps its report" in refused.json()["detail"]
