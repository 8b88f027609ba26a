"""Token buckets, hourly/daily caps and connection slots in Redis, shared by every caller."""

from __future__ import annotations

import threading
import time

import pytest

from delivery import ratelimit
from delivery.ratelimit import ConnectionSlot, Limits

RELAY = 990001  # an id no test database hands out


@pytest.fixture(autouse=True)
def _clean():
    ratelimit.reset(RELAY)
    yield
    ratelimit.reset(RELAY)


def test_unlimited_relays_never_touch_redis():
    assert ratelimit.take(RELAY, 500, Limits()) == (500, 0.0)


def test_bucket_starts_full_then_refills_at_the_rate():
    limits = Limits(per_second=20, burst=10)
    granted, _ = ratelimit.take(RELAY, 50, limits)
    assert granted == 10  # the burst
    granted, wait = ratelimit.take(RELAY, 5, limits)
    assert granted == 0 and 0 < wait <= 0.05 + 1e-6
    time.sleep(0.25)
    granted, _ = ratelimit.take(RELAY, 50, limits)
    assert 4 <= granted <= 6


def test_hourly_and_daily_caps():
    granted, _ = ratelimit.take(RELAY, 8, Limits(per_hour=5))
    assert granted == 5
    granted, wait = ratelimit.take(RELAY, 1, Limits(per_hour=5))
    assert granted == 0 and 0 < wait <= 3600
    assert ratelimit.usage(RELAY)["hour"] == 5
    ratelimit.reset(RELAY)
    assert ratelimit.take(RELAY, 3, Limits(per_day=2))[0] == 2
    assert ratelimit.usage(RELAY)["day"] == 2


def test_many_threads_share_one_bucket():
    limits = Limits(per_second=50, burst=5)
    taken = []
    lock = threading.Lock()
    stop = time.monotonic() + 1.0

    def worker():
        while time.monotonic() < stop:
            granted, wait = ratelimit.take(RELAY, 3, limits)
            with lock:
                taken.append(granted)
            if not granted:
                time.sleep(min(wait, 0.02))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # One second at 50/s plus the burst, whatever the number of callers (a little slack for timing).
    assert 40 <= sum(taken) <= 50 * 1.05 + 5 + 3


def test_connection_slots_are_leases():
    first, second, third = (ConnectionSlot(RELAY, 2, lease_seconds=0.5) for _ in range(3))
    assert first.acquire() == 0.0 and second.acquire() == 0.0
    assert third.acquire() > 0
    assert ratelimit.usage(RELAY)["connections"] == 2
    first.release()
    assert third.acquire() == 0.0
    # A holder that dies without releasing loses its slot when the lease runs out.
    time.sleep(0.6)
    assert ratelimit.usage(RELAY)["connections"] == 0
    assert first.acquire() == 0.0
    assert second.refresh()  # expired, but there is room again, so it is taken back


def test_a_domains_bucket_stays_empty_while_its_held_mail_has_turns():
    """Turns given out for a domain's held mail are its pace: the bucket does not gather tokens
    meanwhile (they would go out on top of the turns) and fills from empty once they are over."""
    from mailplatform.redis_cache import redis_client, redis_key

    group = "turns.test"
    redis_client().delete(*[redis_key("delivery", "domain", group, k) for k in ("bucket", "turns", "aimd")])
    limits = Limits(per_second=20, burst=20)
    aimd = ratelimit.Aimd(start=20, floor=0.1, ceiling=200, increase=0.05)
    granted, _wait, _rate = ratelimit.domain_take(group, 20, limits, aimd)
    assert granted == 20  # a fresh bucket is full
    first = ratelimit.domain_turns(group, 10, 0.05, 0.0)  # ten held messages, 0.05 s apart
    assert 0 < first <= 0.1
    granted, wait, _rate = ratelimit.domain_take(group, 20, limits, aimd)
    assert granted == 0 and 0.5 <= wait <= 0.6  # nothing before the turns are over
    deadline = time.monotonic() + 5
    while ratelimit.domain_turns_ahead(group) > 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    granted, _wait, _rate = ratelimit.domain_take(group, 20, limits, aimd)
    assert granted <= 2  # filling from empty at 20/s, not a full bucket of 20
