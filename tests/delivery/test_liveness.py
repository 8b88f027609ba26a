"""Relay health counted per relay in Redis, the in-flight set that names possible duplicates, the heartbeat."""

from __future__ import annotations

import time

import pytest

from delivery import inflight, liveness, relayhealth


@pytest.fixture
def backoff(settings):
    settings.DELIVERY_RELAY_BACKOFF_BASE_SECONDS = 2
    settings.DELIVERY_RELAY_BACKOFF_MAX_SECONDS = 60
    relayhealth.success(990)
    yield settings
    relayhealth.success(990)


def test_a_healthy_relay_is_usable(backoff):
    assert relayhealth.check(990) == (relayhealth.USABLE, 0.0)


def test_failures_from_many_runners_at_once_count_once(backoff):
    first = relayhealth.failure(990)
    assert first.counted and first.failures == 1 and 1.0 <= first.seconds <= 2.0  # jittered: 2 s * [0.5, 1]
    for _ in range(5):  # five other runners hitting the same outage
        again = relayhealth.failure(990)
        assert not again.counted and again.failures == 1
    state, wait = relayhealth.check(990)
    assert state == relayhealth.WAIT and 0 < wait <= 2.0


def test_backoff_is_capped_and_jittered(backoff):
    waits = []
    for _ in range(12):
        # Each failure counted as the probe's (the backoff had run out): doubling, then the cap.
        waits.append(relayhealth.failure(990, probe=True).seconds)
    assert waits[0] <= 2.0 and waits[1] <= 4.0
    assert max(waits) <= 60 and min(waits[-3:]) >= 30
    assert len({round(w, 3) for w in waits[-3:]}) > 1  # jittered, not one fixed wait


def test_after_the_backoff_exactly_one_runner_probes_and_success_heals_at_once(backoff, settings):
    settings.DELIVERY_RELAY_BACKOFF_BASE_SECONDS = 1
    relayhealth.failure(990)
    deadline = time.monotonic() + 5
    while relayhealth.check(990)[0] == relayhealth.WAIT and time.monotonic() < deadline:
        time.sleep(0.05)
    # The first check after the wait got the probe (inside the loop above); the others wait for it.
    assert relayhealth.check(990)[0] == relayhealth.WAIT
    assert relayhealth.success(990)
    assert relayhealth.check(990)[0] == relayhealth.USABLE


def test_a_failed_probe_backs_off_longer(backoff, settings):
    settings.DELIVERY_RELAY_BACKOFF_BASE_SECONDS = 1
    relayhealth.failure(990)
    assert relayhealth.failure(990).counted is False
    probe = relayhealth.failure(990, probe=True)
    assert probe.counted and probe.failures == 2


def test_inflight_names_only_what_was_announced_and_not_settled():
    inflight.take_maybe_sent(991, range(1, 200))
    inflight.announce(991, range(1, 65))
    inflight.settle(991, range(1, 41))
    # A crash: rows 1..199 were claimed; 1..40 recorded, 41..64 announced, 65.. never submitted.
    assert inflight.take_maybe_sent(991, range(1, 200)) == set(range(41, 65))
    assert inflight.take_maybe_sent(991, range(41, 65)) == set()  # forgotten once taken


def test_inflight_errs_towards_maybe_when_redis_lost_the_set():
    from mailplatform.redis_cache import redis_client

    redis_client().delete(inflight._key(992))
    assert inflight.take_maybe_sent(992, [5, 6]) == {5, 6}


def test_the_heartbeat_renews_until_stopped_and_not_when_stuck(settings):
    settings.DELIVERY_LEASE_SECONDS = 3
    settings.DELIVERY_HEARTBEAT_SECONDS = 5
    assert liveness.heartbeat_seconds() == 1.0  # at most a third of the lease
    calls = []
    beat = liveness.Heartbeat(lambda: calls.append(time.monotonic()))
    beat.interval = 0.05
    with beat:
        deadline = time.monotonic() + 5
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert len(calls) >= 3 and not beat.is_alive()
    stuck = liveness.Heartbeat(lambda: calls.append(time.monotonic()), stuck_after=0.0)
    stuck.interval = 0.05
    before = len(calls)
    with stuck:
        time.sleep(0.3)
    assert len(calls) == before


def test_a_renewal_that_fails_does_not_end_the_heartbeat():
    calls = []

    def renew():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("connection dropped")

    beat = liveness.Heartbeat(renew)
    beat.interval = 0.05
    with beat:
        deadline = time.monotonic() + 5
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert len(calls) >= 3


def test_stop_requested_by_the_worker_reaches_runners_by_its_name():
    class Consumer:
        hostname = "w1@example"

    liveness.worker_ready(Consumer())
    assert not liveness.stop_requested("w1@example")
    try:
        liveness.worker_shutting_down("w1@example")
        liveness._stopping.clear()  # another process (a prefork child) sees only Redis
        assert liveness.stop_requested("w1@example")
        assert not liveness.stop_requested("w2@example")
        liveness.worker_ready(Consumer())
        assert not liveness.stop_requested("w1@example")
    finally:
        liveness._stopping.clear()
