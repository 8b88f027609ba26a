"""Warm-up schedules: real workers against aiosmtpd on loopback send today's cap and no more; the
rest waits in the ledger (hold reason warm-up), in order; when the schedule's day moves on (the test
moves the schedule's clock, it does not sleep for a day) the next day's cap goes, and nothing twice."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from django.urls import reverse

from delivery import engine, warmup
from delivery.models import Message, Relay, WarmupSchedule
from mailplatform.redis_cache import redis_client, redis_key
from tests.delivery.smtp_servers import RecordingHandler, SmtpServer
from tests.delivery.test_workers import _wait, engine_settings, workers  # noqa: F401 - real workers


@pytest.fixture(autouse=True)
def _no_warmup_counts():
    client = redis_client()
    keys = list(client.scan_iter(redis_key("delivery", "warmup", "*")))
    if keys:
        client.delete(*keys)
    yield


def _next_day(schedule: WarmupSchedule) -> None:
    """Move the schedule's clock one day on: day 0 is a day earlier, so today is its next day."""
    WarmupSchedule.objects.filter(pk=schedule.pk).update(starts_on=schedule.starts_on - dt.timedelta(days=1))
    schedule.refresh_from_db()


def _settled(mailing, handler, expected: int):
    """The server has `expected` recipients and nothing of the mailing is queued or being sent."""

    def check() -> bool:
        busy = Message.objects.filter(mailing=mailing, state__in=["queued", "sending"]).exists()
        return not busy and len(handler.recipients()) >= expected

    return check


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_workers_send_the_days_cap_and_the_rest_waits_for_the_next_day_in_order(
    workers,  # noqa: F811
    make_relay,
    make_audience,
    start_mailing,
    admin_client,
):
    handler = RecordingHandler()
    with SmtpServer(handler) as server:
        make_relay(server, max_connections=2)
        mailing_list, contacts = make_audience(25)
        schedule = warmup.warmup_save(domain="example.com", caps="10, 12, 20, 40")
        pool = workers(2)
        pool.start()
        pool.start()
        mailing = start_mailing(mailing_list)  # from news@example.com

        # Day 1: the cap is 10. Ten go, the fifteen others wait for the next day.
        assert _wait(_settled(mailing, handler, 10), 60, tick=engine.watchdog), handler.recipients()
        for _ in range(3):  # the beat comes round again: still nothing over the cap
            engine.watchdog()
        assert _wait(lambda: not Message.objects.filter(mailing=mailing, state="queued").exists(), 5)
        first_day = handler.recipients()
        held = Message.objects.filter(mailing=mailing, state="deferred")
        assert len(first_day) == 10, first_day
        assert held.count() == 15 and set(held.values_list("hold_reason", flat=True)) == {"warmup"}
        tomorrow = dt.datetime.combine(warmup.today() + dt.timedelta(days=1), dt.time(0), tzinfo=dt.UTC)
        assert set(held.values_list("next_attempt_at", flat=True)) == {tomorrow}
        # in order: the first ten of the audience went, the later ones wait
        ids = [c.email for c in sorted(contacts, key=lambda c: c.pk)]
        assert sorted(first_day, key=ids.index) == ids[:10]
        assert warmup.used_today(schedule) == 10

        # The progress page says so, and when it should be over: 12 tomorrow, the last 3 the day after.
        page = admin_client.get(reverse("delivery:mailing-progress", args=[mailing.pk])).content.decode()
        assert 'id="warmup-note"' in page and "15 messages wait" in page
        finish = warmup.today() + dt.timedelta(days=2)
        assert f'<span id="warmup-finish">{finish:%b} {finish.day}, {finish.year}</span>' in page

        # Day 2 (the clock moved, not slept): twelve more, the next twelve in order.
        _next_day(schedule)
        assert _wait(_settled(mailing, handler, 22), 60, tick=engine.watchdog), handler.recipients()
        for _ in range(3):
            engine.watchdog()
        second_day = handler.recipients()[10:]
        assert len(second_day) == 12, second_day
        assert sorted(second_day, key=ids.index) == ids[10:22]
        assert Message.objects.filter(mailing=mailing, state="deferred", hold_reason="warmup").count() == 3

        # Day 3: the last three; the mailing finishes.
        _next_day(schedule)
        assert _wait(lambda: len(handler.recipients()) >= 25, 60, tick=engine.watchdog)
        assert _wait(
            lambda: mailing.__class__.objects.get(pk=mailing.pk).state == "done", 30, tick=engine.watchdog
        )
        received = Counter(handler.recipients())
    assert set(received) == set(ids) and max(received.values()) == 1  # nobody missing, nobody twice
    assert set(Message.objects.filter(mailing=mailing).values_list("state", flat=True)) == {"sent"}


def test_a_relay_at_its_cap_leaves_the_mail_to_the_other_relay(
    transactional_db, make_relay, make_audience, start_mailing
):
    capped_handler, free_handler = RecordingHandler(), RecordingHandler()
    with SmtpServer(capped_handler) as capped_server, SmtpServer(free_handler) as free_server:
        capped = make_relay(capped_server, name="new relay")
        make_relay(free_server, name="old relay")
        warmup.warmup_save(relay_id=capped.pk, caps=[5, 10])
        mailing_list, _ = make_audience(40)
        mailing = start_mailing(mailing_list)
        engine.drain(mailing.pk, seconds=30)
    assert len(capped_handler.recipients()) <= 5
    assert len(capped_handler.recipients()) + len(free_handler.recipients()) == 40
    assert set(Message.objects.filter(mailing=mailing).values_list("state", flat=True)) == {"sent"}
    assert Relay.objects.get(pk=capped.pk).consecutive_failures == 0


def test_every_relay_capped_holds_the_mailing_until_a_cap_is_raised(
    transactional_db, make_relay, make_audience, start_mailing, admin_user
):
    handler = RecordingHandler()
    with SmtpServer(handler) as server:
        relay = make_relay(server)
        schedule = warmup.warmup_save(relay_id=relay.pk, caps=[4, 8])
        mailing_list, _ = make_audience(10)
        mailing = start_mailing(mailing_list)
        engine.drain(mailing.pk, seconds=20)
        assert len(handler.recipients()) == 4
        assert Message.objects.filter(mailing=mailing, state="deferred", hold_reason="warmup").count() == 6
        # An admin raises today's cap: the held mail comes back at once, oldest first, and goes.
        warmup.warmup_save(schedule, relay_id=relay.pk, caps=[10, 20], by=admin_user)
        assert warmup.release(mailing.pk) == 6
        engine.drain(mailing.pk, seconds=20)
    assert len(handler.recipients()) == 10 and len(set(handler.recipients())) == 10


def test_the_dashboard_offers_starters_edits_and_audits_schedules(admin_client, make_relay):
    from mailplatform.models import AuditEntry

    page = admin_client.get(reverse("delivery:warmup")).content.decode()
    assert "Standard: 50 to 350,000 a day over 30 days" in page
    response = admin_client.post(
        reverse("delivery:warmup"), {"domain": "News.Example.com", "starter": "standard", "enabled": "on"}
    )
    assert response.status_code == 302
    schedule = WarmupSchedule.objects.get(domain="news.example.com")
    assert schedule.caps[:3] == [50, 100, 500] and len(schedule.caps) == 30
    assert schedule.starts_on == warmup.today()
    response = admin_client.post(
        reverse("delivery:warmup-edit", args=[schedule.pk]),
        {"domain": "news.example.com", "caps": "50, 80, 120", "starts_on": "2026-01-01", "enabled": "on"},
    )
    assert response.status_code == 302
    schedule.refresh_from_db()
    assert schedule.caps == [50, 80, 120] and schedule.starts_on == dt.date(2026, 1, 1)
    # caps that go down are refused on the form
    response = admin_client.post(
        reverse("delivery:warmup-edit", args=[schedule.pk]),
        {"domain": "news.example.com", "caps": "50, 20", "enabled": "on"},
    )
    assert response.status_code == 200 and "never go down" in response.content.decode()
    actions = list(
        AuditEntry.objects.filter(action__startswith="warmup.")
        .order_by("pk")
        .values_list("action", flat=True)
    )
    assert actions == ["warmup.created", "warmup.updated"]
    entry = AuditEntry.objects.get(action="warmup.updated")
    assert entry.details["before"]["caps"][:3] == [50, 100, 500] and entry.details["caps"] == [50, 80, 120]
    admin_client.post(reverse("delivery:warmup-delete", args=[schedule.pk]))
    assert not WarmupSchedule.objects.exists()
    assert AuditEntry.objects.filter(action="warmup.deleted").count() == 1


def test_a_marketer_cannot_change_warmups(marketer_client):
    assert marketer_client.get(reverse("delivery:warmup")).status_code == 403


def test_a_worker_reads_schedules_once_a_while_and_a_save_here_forgets_them(
    db, settings, django_assert_num_queries
):
    settings.DELIVERY_GATE_CACHE_SECONDS = 60
    warmup.forget_cached()
    assert warmup.domain_schedule("a@example.com") is None
    with django_assert_num_queries(0):  # read once, kept
        assert warmup.domain_schedule("b@example.com") is None
    schedule = warmup.warmup_save(domain="example.com", caps="5")
    assert warmup.domain_schedule("a@example.com") == schedule  # the save forgot the old read
    warmup.forget_cached()
