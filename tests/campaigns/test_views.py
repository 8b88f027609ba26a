"""The dashboard: wizard steps, live count, review, send, progress, report, CSV, roles, home fragment."""

from __future__ import annotations

import pytest
from django.urls import reverse

from campaigns import services, tasks
from campaigns.models import Campaign, CampaignState
from delivery.engine import drain
from tests.dbstate import changed_tables, db_fingerprint

pytestmark = pytest.mark.django_db


def test_wizard_from_name_to_send(marketer_client, template, make_audience, relay_server):
    mailing_list = make_audience(3)
    response = marketer_client.post(reverse("campaigns:create"), {"name": "Spring"})
    campaign = Campaign.objects.get()
    assert response.url == reverse("campaigns:step", args=[campaign.pk, "content"])
    response = marketer_client.post(
        response.url, {"name": "Spring", "subject": "", "preheader": "Fresh", "template": template.pk}
    )
    assert response.status_code == 302 and response.url.endswith("/audience/")
    count = marketer_client.get(reverse("campaigns:count", args=[campaign.pk]), {"lists": [mailing_list.pk]})
    assert count.content.decode().strip() == "3"
    response = marketer_client.post(response.url, {"lists": [mailing_list.pk], "frequency_cap_hours": "0"})
    assert response.url.endswith("/settings/")
    response = marketer_client.post(
        response.url,
        {"from_email": "news@example.com", "from_name": "Shop", "track_opens": "on", "track_clicks": "on",
         "ab_test_percent": "20", "ab_metric": "opens", "ab_wait_minutes": "60"},
    )  # fmt: skip
    assert response.url.endswith("/review/")
    review = marketer_client.get(response.url).content.decode()
    assert "Spring is here, Ada" in review  # rendered preview with sample data
    assert 'sandbox=""' in review and 'id="review-count">3<' in review
    assert "Before it can be sent" not in review
    response = marketer_client.post(reverse("campaigns:send", args=[campaign.pk]), {"shown_count": "3"})
    assert response.url == reverse("campaigns:detail", args=[campaign.pk])
    # The request only marks it due: a worker takes the snapshot and plans the audience.
    campaign.refresh_from_db()
    assert campaign.starting and campaign.mailing_id is None
    detail = marketer_client.get(response.url).content.decode()
    assert 'id="campaign-state">Starting<' in detail and 'hx-trigger="every 2s"' in detail
    progress_url = reverse("campaigns:progress", args=[campaign.pk]) + "?starting=1"
    assert "Starting" in marketer_client.get(progress_url).content.decode()
    tasks.start(campaign.pk, None)
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.SENDING and campaign.from_email == "news@example.com"
    # The page drawn while it was starting reloads whole: the report and the actions appear.
    started = marketer_client.get(progress_url)
    assert started.status_code == 204 and started["HX-Refresh"] == "true"
    drain(campaign.mailing_id, seconds=20)
    fragment = marketer_client.get(reverse("campaigns:progress", args=[campaign.pk])).content.decode()
    assert "100%" in fragment and "Sent" in fragment and "every 2s" not in fragment
    report = marketer_client.get(reverse("campaigns:report", args=[campaign.pk])).content.decode()
    assert 'data-figure="sent">3<' in report and "<svg" in report
    csv_body = b"".join(
        marketer_client.get(reverse("campaigns:report-csv", args=[campaign.pk])).streaming_content
    )
    lines = csv_body.decode().strip().splitlines()
    assert lines[0].startswith("email,variant,state") and len(lines) == 4


def test_second_send_and_edit_after_start_are_refused_with_the_reason(marketer_client, campaign_factory):
    campaign = campaign_factory(2)
    confirmed = {"shown_count": "2"}
    marketer_client.post(reverse("campaigns:send", args=[campaign.pk]), confirmed)
    response = marketer_client.post(reverse("campaigns:send", args=[campaign.pk]), confirmed, follow=True)
    assert "Not sent: this campaign is already starting" in response.content.decode()
    response = marketer_client.get(reverse("campaigns:step", args=[campaign.pk, "content"]), follow=True)
    assert "can no longer be edited" in response.content.decode()
    tasks.start(campaign.pk, None)
    response = marketer_client.post(reverse("campaigns:send", args=[campaign.pk]), confirmed, follow=True)
    assert "Not sent: this campaign is already sending" in response.content.decode()


def test_review_lists_what_blocks_the_send(marketer_client, db):
    campaign = services.campaign_create(name="Empty")
    page = marketer_client.get(reverse("campaigns:step", args=[campaign.pk, "review"])).content.decode()
    assert "Content: choose a template." in page and "Audience: choose at least one list." in page
    assert "disabled" in page


def test_developers_read_but_cannot_create_or_send(developer_client, campaign_factory):
    campaign = campaign_factory(1)
    assert developer_client.get(reverse("campaigns:index")).status_code == 200
    assert developer_client.get(reverse("campaigns:detail", args=[campaign.pk])).status_code == 200
    before = db_fingerprint()
    assert developer_client.post(reverse("campaigns:create"), {"name": "x"}).status_code == 403
    assert developer_client.post(reverse("campaigns:send", args=[campaign.pk])).status_code == 403
    assert developer_client.post(reverse("campaigns:action", args=[campaign.pk, "delete"])).status_code == 403
    assert changed_tables(before) == []  # refused, and nothing done first
    assert developer_client.get(reverse("campaigns:step", args=[campaign.pk, "content"])).status_code == 403


def test_report_escapes_hostile_names(marketer_client, make_audience, template):
    campaign = services.campaign_create(
        name="<script>alert(1)</script>", template=template, lists=[make_audience(1)]
    )
    services.campaign_start(campaign.pk)
    page = marketer_client.get(reverse("campaigns:report", args=[campaign.pk])).content.decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page


def test_home_fragment_shows_sending_and_the_limits(marketer_client, campaign_factory):
    campaign = campaign_factory(2, name="Now sending")
    services.campaign_start(campaign.pk)
    page = marketer_client.get(reverse("campaigns:home-fragment")).content.decode()
    assert "Now sending" in page and "limit 5.00%" in page and "limit 0.10%" in page
    assert "list growth, 30 days (0 joined, 0 left)" in page  # the fixture's subscriptions have no dates


def test_schedule_from_the_review_page(marketer_client, campaign_factory):
    campaign = campaign_factory(1)
    response = marketer_client.post(
        reverse("campaigns:schedule", args=[campaign.pk]),
        {"local_time": "2099-06-01T09:30", "timezone": "Europe/Paris", "shown_count": "1"},
    )
    assert response.url == reverse("campaigns:detail", args=[campaign.pk])
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.SCHEDULED
    assert campaign.scheduled_at.isoformat() == "2099-06-01T07:30:00+00:00"


def test_test_send_goes_through_the_engine(marketer_client, campaign_factory):
    from delivery.models import Message

    campaign = campaign_factory(1)
    response = marketer_client.post(
        reverse("campaigns:test-send", args=[campaign.pk]), {"to": "me@example.com"}, follow=True
    )
    assert "Test sent to me@example.com, as person0@example.org" in response.content.decode()
    message = Message.objects.get(email="me@example.com")
    assert message.mailing.meta.get("test") is True


def test_a_header_injection_in_the_subject_is_refused_and_nothing_changes(marketer_client, campaign_factory):
    campaign = campaign_factory(1)
    response = marketer_client.post(
        reverse("campaigns:step", args=[campaign.pk, "content"]),
        {"name": "Renamed", "subject": "Hi\r\nBcc: victim@example.net", "template": campaign.template_id},
    )
    assert response.status_code == 200
    assert "subject contains a line break" in response.content.decode()
    campaign.refresh_from_db()
    assert campaign.name == "Spring sale" and "Bcc" not in campaign.subject


def test_content_step_sets_up_ab_variants(marketer_client, campaign_factory):
    campaign = campaign_factory(1)
    response = marketer_client.post(
        reverse("campaigns:step", args=[campaign.pk, "content"]),
        {"name": "Spring", "subject": "A subject", "template": campaign.template_id, "ab_test": "on",
         "variant_B_subject": "B subject"},
    )  # fmt: skip
    assert response.status_code == 302
    assert [(v.label, v.subject) for v in campaign.variants.all()] == [("A", ""), ("B", "B subject")]
    missing = marketer_client.post(
        reverse("campaigns:step", args=[campaign.pk, "content"]),
        {"name": "Spring", "template": campaign.template_id, "ab_test": "on"},
    )
    assert "An A/B test needs at least variant B" in missing.content.decode()


def test_pause_resume_cancel_and_clone_from_the_detail_page(marketer_client, campaign_factory):
    campaign = campaign_factory(2)
    services.campaign_start(campaign.pk)
    detail = marketer_client.get(reverse("campaigns:detail", args=[campaign.pk])).content.decode()
    assert 'hx-trigger="every 2s"' in detail and ">Pause<" in detail
    marketer_client.post(reverse("campaigns:action", args=[campaign.pk, "pause"]))
    page = marketer_client.get(reverse("campaigns:progress", args=[campaign.pk])).content.decode()
    assert "Paused by a person." in page and ">Resume<" in page
    marketer_client.post(reverse("campaigns:action", args=[campaign.pk, "resume"]))
    marketer_client.post(reverse("campaigns:action", args=[campaign.pk, "cancel"]))
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.CANCELLED
    response = marketer_client.post(reverse("campaigns:action", args=[campaign.pk, "clone"]))
    copy = Campaign.objects.exclude(pk=campaign.pk).get()
    assert response.url == reverse("campaigns:step", args=[copy.pk, "content"]) and copy.state == "draft"
    assert marketer_client.post(reverse("campaigns:action", args=[campaign.pk, "explode"])).status_code == 404


def test_review_previews_as_a_real_recipient(marketer_client, campaign_factory):
    from contacts.models import Contact

    campaign = campaign_factory(3)
    url = reverse("campaigns:step", args=[campaign.pk, "review"])
    sample = marketer_client.get(url).content.decode()
    assert "Spring is here, Ada" in sample and "Rendered with sample data" in sample
    first = marketer_client.get(url, {"preview_as": "first"}).content.decode()
    assert "Spring is here, P0" in first and "Rendered for person0@example.org." in first
    Contact.objects.create(email="outsider@example.net", first_name="<b>Olga</b>")
    chosen = marketer_client.get(url, {"preview_as": "Outsider@Example.net"}).content.decode()
    assert "Spring is here, &lt;b&gt;Olga&lt;/b&gt;" in chosen and "<b>Olga</b>" not in chosen
    unknown = marketer_client.get(url, {"preview_as": "nobody@example.net"}).content.decode()
    assert "No contact has the address nobody@example.net" in unknown and "Spring is here, Ada" in unknown


def test_a_campaign_that_never_started_can_be_deleted_and_one_that_did_cannot(
    marketer_client, campaign_factory
):
    from mailplatform.models import AuditEntry

    draft = campaign_factory(1)
    audience = draft.lists.get()
    detail = marketer_client.get(reverse("campaigns:detail", args=[draft.pk])).content.decode()
    assert "/do/delete/" in detail
    delete_url = reverse("campaigns:action", args=[draft.pk, "delete"])
    assert marketer_client.post(delete_url).url == reverse("campaigns:index")
    assert not Campaign.objects.filter(pk=draft.pk).exists()
    assert AuditEntry.objects.filter(action="campaign.deleted").count() == 1

    sent = campaign_factory(1, name="Sent one", mailing_list=audience)
    services.campaign_start(sent.pk)
    response = marketer_client.post(reverse("campaigns:action", args=[sent.pk, "delete"]), follow=True)
    assert "a campaign that started keeps its report" in response.content.decode()
    assert Campaign.objects.filter(pk=sent.pk).exists()
