"""Real Celery worker processes against aiosmtpd on loopback: a killed worker, a rate limit shared by
two workers, pause and resume with an unsubscribe in between. Each test counts what the server got."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter

import pytest
from django.conf import settings

from delivery import engine, mailings
from delivery.models import Mailing, Message
from tests.conftest import start_celery_worker, stop_processes
from tests.delivery.smtp_servers import RecordingHandler, SmtpServer

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ENGINE_ENV = {
    "DELIVERY_LEASE_SECONDS": "3",
    "DELIVERY_BATCH_SIZE": "20",
    "DELIVERY_OUTCOME_FLUSH_MESSAGES": "10",
    "DELIVERY_OUTCOME_FLUSH_MS": "200",
    "DELIVERY_TASK_SECONDS": "30",
    "DELIVERY_RELAY_BACKOFF_BASE_SECONDS": "1",
}


@pytest.fixture
def engine_settings(settings):
    for name, value in ENGINE_ENV.items():
        setattr(settings, name, int(value))
    return settings


class Workers:
    """Celery worker processes on the test database, started and killed on demand."""

    def __init__(self, parallel: int) -> None:
        self.parallel = parallel
        self.processes: list[subprocess.Popen] = []

    def start(self) -> subprocess.Popen:
        env = {**ENGINE_ENV, "DELIVERY_PARALLEL": str(self.parallel)}
        process = start_celery_worker(queues="sending", env=env, label=f"delivery-test-{len(self.processes)}")
        self.processes.append(process)
        return process

    def stop(self) -> None:
        stop_processes(self.processes)


@pytest.fixture
def workers(engine_settings):
    from mailplatform.celery import app

    app.control.purge()  # tasks other tests queued without a worker must not run here
    pool: dict[str, Workers] = {}

    def make(parallel: int) -> Workers:
        pool["w"] = Workers(parallel)
        engine_settings.DELIVERY_PARALLEL = parallel
        return pool["w"]

    yield make
    if "w" in pool:
        pool["w"].stop()


def _wait(predicate, timeout: float, *, tick=None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if tick is not None:
            tick()
        time.sleep(0.2)
    return predicate()


def _all_done(mailing: Mailing) -> bool:
    return not Message.objects.filter(mailing=mailing, state__in=["queued", "sending", "deferred"]).exists()


def test_a_worker_killed_mid_mailing_loses_nobody_and_names_the_possible_duplicates(
    workers, make_relay, make_audience, start_mailing
):
    handler = RecordingHandler()
    with SmtpServer(handler) as server:
        make_relay(server, per_second=150, burst=10)
        mailing_list, contacts = make_audience(600)
        pool = workers(1)
        victim = pool.start()
        mailing = start_mailing(mailing_list)
        assert _wait(lambda: len(handler.recipients()) >= 150, 60), "the first worker never got going"
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
        at_kill = len(handler.recipients())
        in_flight = Message.objects.filter(mailing=mailing, state="sending").count()
        pool.start()
        # The beat's watchdog, run here: expired leases back to the queue, runners dispatched again.
        assert _wait(lambda: _all_done(mailing), 90, tick=engine.watchdog), "the mailing did not finish"
        received = Counter(handler.recipients())
    expected = {c.email for c in contacts}
    assert set(received) == expected  # nobody missing
    duplicates = {address for address, count in received.items() if count > 1}
    recovered = set(
        Message.objects.filter(mailing=mailing, recovered_at__isnull=False).values_list("email", flat=True)
    )
    print(
        f"\ncrash: killed with {at_kill} received and {in_flight} rows leased; "
        f"{len(duplicates)} duplicates at the server, {len(recovered)} rows recovered by the watchdog"
    )
    # Every duplicate is one the ledger names, and there are no more than one unrecorded write's worth.
    assert duplicates <= recovered
    assert len(duplicates) <= settings.DELIVERY_OUTCOME_FLUSH_MESSAGES + 1
    assert all(count <= 2 for count in received.values())
    assert set(Message.objects.filter(mailing=mailing).values_list("state", flat=True)) == {"sent"}


def test_a_relay_rate_limit_holds_across_two_workers(workers, make_relay, make_audience, start_mailing):
    rate, burst = 20, 5
    arrivals: list[float] = []

    def stamp(envelope):
        arrivals.append(time.monotonic())
        return None

    handler = RecordingHandler(data_reply=stamp)
    with SmtpServer(handler) as server:
        make_relay(server, per_second=rate, burst=burst, max_connections=2)
        mailing_list, contacts = make_audience(260)
        pool = workers(2)
        pool.start()
        pool.start()
        mailing = start_mailing(mailing_list)
        assert _wait(lambda: _all_done(mailing), 60), "the mailing did not finish"
        connections = handler.connections
    elapsed = arrivals[-1] - arrivals[0]
    print(
        f"\nrate: {len(arrivals)} messages over {elapsed:.1f} s = {len(arrivals) / elapsed:.1f}/s (limit {rate}/s)"
    )
    assert elapsed >= 10
    assert len(arrivals) <= rate * elapsed * 1.05 + burst
    # Any 5-second window stays under the limit too, not only the whole run.
    for index, start in enumerate(arrivals):
        window = sum(1 for t in arrivals[index:] if t - start <= 5.0)
        assert window <= rate * 5 * 1.05 + burst
    assert len(handler.recipients()) == len(contacts)
    assert connections >= 2  # both workers sent


def test_pause_stops_within_a_batch_and_resume_finishes_without_duplicates(
    workers, make_relay, make_audience, start_mailing
):
    from contacts.services import contact_unsubscribe

    handler = RecordingHandler()
    with SmtpServer(handler) as server:
        make_relay(server, per_second=60, burst=10, max_connections=2)
        mailing_list, contacts = make_audience(400)
        pool = workers(2)
        pool.start()
        pool.start()
        mailing = start_mailing(mailing_list)
        assert _wait(lambda: len(handler.recipients()) >= 60, 60)
        mailings.mailing_pause(mailing.pk)
        at_pause = len(handler.recipients())
        time.sleep(3)
        settled = len(handler.recipients())
        time.sleep(2)
        assert len(handler.recipients()) == settled, "mail kept going out while paused"
        # At most one batch per worker after the pause.
        assert settled - at_pause <= 2 * settings.DELIVERY_BATCH_SIZE
        # Someone who unsubscribes while the mailing is paused gets nothing more.
        received_so_far = set(handler.recipients())
        late = next(c for c in reversed(contacts) if c.email not in received_so_far)
        contact_unsubscribe(late.pk, list_ids=None, source="test")
        mailings.mailing_resume(mailing.pk)
        assert _wait(lambda: _all_done(mailing), 60, tick=engine.watchdog)
        received = Counter(handler.recipients())
    print(f"\npause: {at_pause} at pause, {settled - at_pause} more before it took effect")
    assert late.email not in received
    assert set(received) == {c.email for c in contacts} - {late.email}
    assert max(received.values()) == 1
    # The last runner to find nothing left marks the mailing done (or the watchdog does).
    assert _wait(
        lambda: Mailing.objects.get(pk=mailing.pk).state == Mailing.State.DONE, 10, tick=engine.watchdog
    )
