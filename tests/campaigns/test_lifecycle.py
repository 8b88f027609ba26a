"""Campaign lifecycle against real PostgreSQL, Redis and an aiosmtpd relay: start, send, finish,
refusals, schedules (with the lateness rule), clones, the frequency cap."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection
from django.utils import timezone

from campaigns import selectors, services
from campaigns.models import Campaign, CampaignState
from delivery import selectors as delivery_selectors
from delivery.engine import drain
from delivery.models import Mailing, Message
from mailplatform.errors import PlatformError as ValidationError

pytestmark = pytest.mark.django_db


def _send_all(campaign: Campaign) -> None:
    for mailing_id in selectors.campaign_mailing_ids(campaign):
        drain(mailing_id, seconds=20)
    services.campaign_sync(campaign.pk)


def test_start_snapshots_a_mailing_sends_to_the_audience_and_finishes(campaign_factory, relay_server):
    from contacts.services import suppression_add

    campaign = campaign_factory(6)
    suppression_add("person0@example.org", reason="asked", source="test")
    services.campaign_start(campaign.pk)
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.SENDING
    mailing = campaign.mailing
    assert mailing.send_group == f"campaign:{campaign.pk}" and mailing.meta["campaign_id"] == campaign.pk
    assert mailing.subject == "Spring is here, {{ contact.first_name }}"
    assert mailing.planned_count == 5  # the suppressed address is not planned

    # Editing the template now changes nothing that is being sent.
    from templates.services import template_update

    template_update(campaign.template_id, subject="Changed")
    _send_all(campaign)
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.SENT and campaign.finished_at is not None
    received = sorted(relay_server.recipients())
    assert received == [f"person{i}@example.org" for i in range(1, 6)]
    assert all(b"Subject: Spring is here, P" in m.content for m in relay_server.received)
    figures = delivery_selectors.mailing_figures(selectors.campaign_mailing_ids(campaign))
    assert figures["sent"] == 5 and figures["delivered"] == 5 and figures["total"] == 5


def test_editing_a_sending_campaign_is_refused_with_the_reason(campaign_factory):
    campaign = campaign_factory(2)
    services.campaign_start(campaign.pk)
    with pytest.raises(ValidationError, match="sending: it can no longer be edited"):
        services.campaign_update(campaign.pk, name="New name")
    campaign.refresh_from_db()
    assert campaign.name == "Spring sale"


def test_start_refuses_an_incomplete_campaign_and_names_the_step(template, db):
    campaign = services.campaign_create(name="Empty")
    with pytest.raises(ValidationError) as info:
        services.campaign_start(campaign.pk)
    text = " ".join(info.value.messages)
    assert "Content: choose a template." in text and "Audience: choose at least one list." in text
    assert Campaign.objects.get(pk=campaign.pk).state == CampaignState.DRAFT
    assert not Mailing.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_people_pressing_send_at_once_send_once(campaign_factory):
    campaign = campaign_factory(3)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def press() -> None:
        barrier.wait()
        try:
            services.campaign_start(campaign.pk)
            outcomes.append("started")
        except ValidationError as exc:
            outcomes.append(" ".join(exc.messages))
        finally:
            connection.close()

    threads = [threading.Thread(target=press) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["started", "this campaign is already sending"]
    assert Mailing.objects.filter(meta__campaign_id=campaign.pk).count() == 1
    assert Message.objects.count() == 3


def test_scheduled_campaign_is_started_by_the_poll_and_a_missed_one_waits(campaign_factory):
    on_time = campaign_factory(2, name="On time")
    late = campaign_factory(2, name="Late", mailing_list=on_time.lists.first())
    soon = timezone.now() + dt.timedelta(minutes=5)
    for campaign in (on_time, late):
        services.campaign_schedule(
            campaign.pk, local_time=soon.astimezone(dt.UTC).replace(tzinfo=None), tz_name="UTC"
        )
    # The scheduled time is wall-clock time in the chosen zone.
    services.campaign_unschedule(late.pk)
    services.campaign_schedule(late.pk, local_time=dt.datetime(2099, 1, 1, 9, 0), tz_name="America/New_York")
    assert Campaign.objects.get(pk=late.pk).scheduled_at == dt.datetime(2099, 1, 1, 14, 0, tzinfo=dt.UTC)
    Campaign.objects.filter(pk=late.pk).update(scheduled_at=timezone.now() - dt.timedelta(hours=3))
    Campaign.objects.filter(pk=on_time.pk).update(scheduled_at=timezone.now() - dt.timedelta(minutes=1))

    result = services.campaigns_start_due()
    assert result == {"started": 1, "held": 1, "failed": 0}
    assert Campaign.objects.get(pk=on_time.pk).state == CampaignState.SENDING
    late.refresh_from_db()
    assert late.state == CampaignState.SCHEDULED and "minutes late" in late.hold_reason
    assert late.mailing_id is None
    # Polling again does not start it: it waits for a person.
    assert services.campaigns_start_due()["started"] == 0
    services.campaign_start(late.pk)
    assert Campaign.objects.get(pk=late.pk).state == CampaignState.SENDING


def test_schedule_in_the_past_or_unknown_zone_is_refused(campaign_factory):
    campaign = campaign_factory(1)
    with pytest.raises(ValidationError, match="in the past"):
        services.campaign_schedule(campaign.pk, local_time=dt.datetime(2001, 1, 1), tz_name="UTC")
    with pytest.raises(ValidationError, match="unknown time zone"):
        services.campaign_schedule(campaign.pk, local_time=dt.datetime(2099, 1, 1), tz_name="Mars/Base")


def test_clone_copies_everything_but_the_sending(campaign_factory):
    campaign = campaign_factory(2, frequency_cap_hours=12, track_clicks=False)
    services.campaign_start(campaign.pk)
    copy = services.campaign_clone(campaign.pk)
    assert copy.state == CampaignState.DRAFT and copy.mailing_id is None
    assert copy.name == "Spring sale (copy)" and copy.cloned_from_id == campaign.pk
    assert list(copy.lists.all()) == list(campaign.lists.all())
    assert copy.frequency_cap_hours == 12 and copy.track_clicks is False


def test_frequency_cap_skips_recently_mailed_contacts(campaign_factory):
    from contacts.models import Contact

    campaign = campaign_factory(4, frequency_cap_hours=24)
    Contact.objects.filter(email__in=["person0@example.org", "person1@example.org"]).update(
        last_sent_at=timezone.now() - dt.timedelta(hours=2)
    )
    Contact.objects.filter(email="person2@example.org").update(
        last_sent_at=timezone.now() - dt.timedelta(days=2)
    )
    assert selectors.audience_count(campaign) == 2
    services.campaign_start(campaign.pk)
    emails = set(Message.objects.values_list("email", flat=True))
    assert emails == {"person2@example.org", "person3@example.org"}


def test_pause_resume_cancel(campaign_factory):
    campaign = campaign_factory(3)
    services.campaign_start(campaign.pk)
    services.campaign_pause(campaign.pk)
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.PAUSED and campaign.mailing.state == Mailing.State.PAUSED
    with pytest.raises(ValidationError, match="only a sending campaign"):
        services.campaign_pause(campaign.pk)
    services.campaign_resume(campaign.pk)
    assert Mailing.objects.get(pk=campaign.mailing_id).state == Mailing.State.SENDING
    services.campaign_cancel(campaign.pk)
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.CANCELLED
    assert set(Message.objects.values_list("state", flat=True)) == {"skipped"}


def test_a_scheduled_campaign_that_cannot_start_fails_with_the_reason(campaign_factory):
    from contacts.services import suppression_add

    campaign = campaign_factory(1)
    services.campaign_schedule(campaign.pk, local_time=dt.datetime(2099, 1, 1), tz_name="UTC")
    suppression_add("person0@example.org", reason="asked", source="test")  # the only recipient
    Campaign.objects.filter(pk=campaign.pk).update(scheduled_at=timezone.now() - dt.timedelta(minutes=1))
    assert services.campaigns_tick()["failed"] == 1
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.FAILED
    assert campaign.state_reason == "Audience: nobody would receive it (after suppressions and exclusions)."
    assert not Mailing.objects.exists()


def test_send_now_returns_at_once_and_a_worker_starts_it_for_the_person_who_asked(
    campaign_factory, make_user, django_capture_on_commit_callbacks
):
    from campaigns import tasks
    from mailplatform.models import AuditEntry

    marketer = make_user("marketer", username="mia")
    campaign = campaign_factory(3)
    with django_capture_on_commit_callbacks() as queued:
        services.campaign_send_now(campaign.pk, by=marketer)
    assert len(queued) == 1  # the start is handed to a worker once the request commits
    campaign.refresh_from_db()
    assert campaign.starting and not campaign.editable and Message.objects.count() == 0
    with pytest.raises(ValidationError, match="already starting"):
        services.campaign_send_now(campaign.pk, by=marketer)
    with pytest.raises(ValidationError, match="starting: it can no longer be edited"):
        services.campaign_update(campaign.pk, name="Late change")
    tasks.start(campaign.pk, marketer.pk)
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.SENDING and campaign.mailing.planned_count == 3
    started = AuditEntry.objects.get(action="campaign.started")
    assert started.actor_label == "mia"
    tasks.start(campaign.pk, marketer.pk)  # a second delivery of the task changes nothing
    assert Mailing.objects.count() == 1


def test_a_campaign_unscheduled_or_rescheduled_before_the_worker_takes_it_is_left_alone(campaign_factory):
    from campaigns import tasks

    campaign = campaign_factory(2)
    services.campaign_send_now(campaign.pk)
    services.campaign_unschedule(campaign.pk)
    tasks.start(campaign.pk, None)
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.DRAFT and Message.objects.count() == 0
    later = timezone.now() + dt.timedelta(days=1)
    services.campaign_schedule(campaign.pk, local_time=later, tz_name="UTC")
    tasks.start(campaign.pk, None)  # the stale task of the earlier "send now"
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.SCHEDULED and campaign.scheduled_at == later
    assert Message.objects.count() == 0
