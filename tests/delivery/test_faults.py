"""Delivery under faults (issue #20): real Celery workers and beat, a sink that counts every Message-ID.

(a) kill -9 of every worker and the beat mid-mailing, restarted: sending resumes within 30 s of the
    restart, nobody missing, duplicates only among the messages the ledger names.
(b) kill -9 of one worker: the other and a replacement carry on, no pause longer than 30 s.
(c) SIGTERM of a worker: it exits within 10 s, nothing duplicated.
(d) a one-click unsubscribe stops a queued mailing to the same list.
(e) 421 at MAIL with pipelining: the message deferred with the 421 text, the relay shows it.
(f) pg_terminate_backend on the workers' database sessions: no duplicates, nobody missing.

Leases and runner slots here use the production rhythm scaled down (renewed every second, expiring
after 4 s) so the suite stays quick; bench/faults.py measures the production settings.
"""

from __future__ import annotations

import time

import pytest
from django.test import Client

from delivery.models import Mailing, Message, MessageEvent, Relay
from tests.delivery.faults import (
    CountingHandler,
    CountingSink,
    Fleet,
    Striker,
    terminate_connections,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

FAULT_ENV = {
    "DELIVERY_LEASE_SECONDS": "4",
    "DELIVERY_HEARTBEAT_SECONDS": "1",
    "DELIVERY_WATCHDOG_SECONDS": "1",
    "DELIVERY_BATCH_SIZE": "100",
    "DELIVERY_OUTCOME_FLUSH_MESSAGES": "20",
    "DELIVERY_OUTCOME_FLUSH_MS": "200",
    "DELIVERY_TASK_SECONDS": "20",
    "DELIVERY_PARALLEL": "2",
    "DELIVERY_RETRY_BASE_SECONDS": "1",
    "DELIVERY_RELAY_BACKOFF_BASE_SECONDS": "1",
}
MESSAGES = 1500
# Per killed runner: the outcomes not yet written plus the envelopes announced ahead of submission.
NAMED_AT_MOST = 2 * (int(FAULT_ENV["DELIVERY_OUTCOME_FLUSH_MESSAGES"]) + 64)
RATE = 150  # messages per second through the relay: a mailing takes ~10 s, long enough to strike


@pytest.fixture
def fault_settings(settings):
    for name, value in FAULT_ENV.items():
        setattr(settings, name, int(value))
    return settings


@pytest.fixture
def fleet(fault_settings):
    from mailplatform.celery import app

    app.control.purge()  # tasks other tests queued without a worker must not run here
    pool = Fleet(FAULT_ENV)
    yield pool
    pool.stop_all()


@pytest.fixture
def counting_sink():
    with CountingSink() as sink:
        yield sink


def _open(mailing: Mailing) -> int:
    return Message.objects.filter(mailing=mailing, state__in=["queued", "sending", "deferred"]).count()


def _ids(mailing: Mailing) -> set[int]:
    return set(Message.objects.filter(mailing=mailing).values_list("pk", flat=True))


def _named(mailing: Mailing) -> set[int]:
    """The messages the ledger says may have gone out twice."""
    return set(
        Message.objects.filter(mailing=mailing, recovered_at__isnull=False).values_list("pk", flat=True)
    )


def _finish(mailing: Mailing, sink: CountingSink, seconds: float = 120) -> None:
    assert wait_for(lambda: _open(mailing) == 0, seconds, every=0.3), (
        f"the mailing did not finish: {_open(mailing)} open, {sink.total} received"
    )


def _mailing(make_relay, make_audience, start_mailing, sink, *, n=MESSAGES, **relay):
    relay = make_relay(sink, per_second=relay.pop("per_second", RATE), burst=20, max_connections=2, **relay)
    mailing_list, _ = make_audience(n)
    return start_mailing(mailing_list, relays=[relay]), relay


def test_a_kill_9_of_every_worker_and_beat_then_a_restart(
    fleet, counting_sink, make_relay, make_audience, start_mailing
):
    fleet.start_worker()
    fleet.start_worker()
    fleet.start_beat()
    mailing, _ = _mailing(make_relay, make_audience, start_mailing, counting_sink)
    assert wait_for(lambda: counting_sink.total >= 300, 60), "the workers never got going"
    fleet.kill_all()
    at_kill = counting_sink.total
    fleet.start_worker()
    fleet.start_worker()
    fleet.start_beat()
    restarted = time.monotonic()
    assert wait_for(lambda: counting_sink.first_arrival_after(restarted) is not None, 40)
    resumed = counting_sink.first_arrival_after(restarted) - restarted
    _finish(mailing, counting_sink)
    counts, named = counting_sink.counts(), _named(mailing)
    print(
        f"\n(a) killed at {at_kill} received; resumed {resumed:.1f} s after the restart; named {len(named)}"
    )
    assert resumed <= 30
    assert set(counts) == _ids(mailing)  # nobody missing
    assert counting_sink.duplicates() <= named  # every duplicate is one the ledger names
    # Named: what the dead runners had submitted and not recorded, not whole batches.
    assert len(named) <= NAMED_AT_MOST
    assert max(counts.values()) <= 2
    assert set(Message.objects.filter(mailing=mailing).values_list("state", flat=True)) == {"sent"}


def test_b_kill_9_of_one_worker_the_other_and_a_replacement_carry_on(
    fleet, counting_sink, make_relay, make_audience, start_mailing
):
    victim = fleet.start_worker()
    fleet.start_worker()
    fleet.start_beat()
    mailing, _ = _mailing(make_relay, make_audience, start_mailing, counting_sink)
    assert wait_for(lambda: counting_sink.total >= 300, 60)
    fleet.kill(victim)
    killed = time.monotonic()
    fleet.start_worker()
    _finish(mailing, counting_sink)
    pause = counting_sink.longest_pause(killed)
    counts, named = counting_sink.counts(), _named(mailing)
    print(f"\n(b) longest pause after the kill {pause:.1f} s; named {len(named)}")
    assert pause <= 30
    assert set(counts) == _ids(mailing)
    assert counting_sink.duplicates() <= named


def test_c_sigterm_the_worker_exits_within_10_s_and_nothing_goes_twice(
    fleet, counting_sink, make_relay, make_audience, start_mailing
):
    victim = fleet.start_worker()
    fleet.start_worker()
    fleet.start_beat()
    mailing, _ = _mailing(make_relay, make_audience, start_mailing, counting_sink)
    assert wait_for(lambda: counting_sink.total >= 300, 60)
    fleet.terminate(victim)
    exited = fleet.exited_within(victim, 10)
    print(f"\n(c) SIGTERM'd worker exited after {exited} s")
    assert exited is not None, "the SIGTERM'd worker was still running 10 s later"
    _finish(mailing, counting_sink)
    counts = counting_sink.counts()
    assert set(counts) == _ids(mailing)
    assert max(counts.values()) == 1
    assert not _named(mailing)


def test_d_a_one_click_unsubscribe_stops_a_queued_mailing_to_the_same_list(
    fleet, counting_sink, make_relay, make_audience, compiled, sending_identity
):
    from delivery import mailings as services
    from delivery import verp

    relay = make_relay(counting_sink)
    mailing_list, contacts = make_audience(40)
    fleet.start_worker()

    def create(name: str) -> Mailing:
        return services.mailing_create(
            name=name,
            compiled=compiled,
            from_email="news@example.com",
            from_name="News",
            list_ids=[mailing_list.pk],
            relay_ids=[relay.pk],
        )

    first = create("A")
    services.mailing_start(first.pk)
    _finish(first, counting_sink, 60)
    # B is planned now and started later: its Messages sit in the queue meanwhile.
    second = create("B")
    from contacts.selectors import audience_sql

    services.mailing_plan(second.pk, audience=audience_sql(list_ids=[mailing_list.pk]))
    leaver = contacts[7]
    message = Message.objects.get(mailing=first, contact=leaver)
    token = verp.message_token(message.pk, "unsubscribe")
    response = Client().post(f"/delivery/u/{token}/", {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    leaver.refresh_from_db()
    assert leaver.status == "active"  # left the list, not everything: only the subscription changed
    services.mailing_start(second.pk)
    _finish(second, counting_sink, 60)
    queued_for_leaver = Message.objects.get(mailing=second, contact=leaver)
    assert queued_for_leaver.state == "skipped"
    counts = counting_sink.counts()
    assert queued_for_leaver.pk not in counts
    assert {k for k in counts if k in _ids(second)} == _ids(second) - {queued_for_leaver.pk}


def test_e_421_at_mail_with_pipelining_is_deferred_with_its_text_on_the_relay(
    fleet, make_relay, make_audience, start_mailing
):
    calls = {"n": 0}

    def mail_reply():
        calls["n"] += 1
        return "421 4.3.2 System shutting down, try again soon" if calls["n"] == 5 else None

    with CountingSink(CountingHandler(pipelining=True, mail_reply=mail_reply)) as sink:
        fleet.start_worker()
        fleet.start_beat()
        mailing, relay = _mailing(make_relay, make_audience, start_mailing, sink, n=30, per_second=0)
        _finish(mailing, sink, 60)
        counts = sink.counts()
    relay = Relay.objects.get(pk=relay.pk)
    deferred = MessageEvent.objects.get(mailing=mailing, kind="deferred")
    assert deferred.data["code"] == 421 and deferred.data["stage"] == "mail"
    assert "System shutting down" in deferred.data["reply"]
    assert "421" in relay.last_error and "System shutting down" in relay.last_error
    message = Message.objects.get(pk=deferred.message_id)
    # Deferred, then sent on the next try: two submissions counted, delivered once.
    assert (message.state, message.attempts) == ("sent", 2)
    assert set(counts) == _ids(mailing) and max(counts.values()) == 1
    # The runner that sent the last message marks the Mailing done as it leaves: a moment after.
    assert wait_for(lambda: Mailing.objects.get(pk=mailing.pk).state == "done", 30, every=0.2)
    mailing.refresh_from_db()
    assert mailing.last_error == ""  # the error cleared with the condition


def test_f_pg_terminate_backend_on_the_workers_sessions_duplicates_nothing(
    fleet, counting_sink, make_relay, make_audience, start_mailing
):
    fleet.start_worker()
    fleet.start_worker()
    fleet.start_beat()
    mailing, _ = _mailing(make_relay, make_audience, start_mailing, counting_sink)
    assert wait_for(lambda: counting_sink.total >= 200, 60)
    striker = Striker(terminate_connections, every=0.7, times=6)
    striker.start()
    striker.join(30)
    _finish(mailing, counting_sink)
    counts = counting_sink.counts()
    print(f"\n(f) sessions ended per strike: {striker.results}; named {len(_named(mailing))}")
    assert sum(striker.results) >= 2  # the strikes really hit workers' sessions
    assert set(counts) == _ids(mailing)
    assert max(counts.values()) == 1
