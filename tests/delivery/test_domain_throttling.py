"""Per receiving domain limits: a domain that answers 4.7.28 is slowed down and recovers while
the other domains' mail flows; a domain limit holds its pace without holding up the rest."""

from __future__ import annotations

import threading
import time

import pytest

from delivery import domains, engine, ratelimit
from delivery.models import Message, MessageEvent, Relay
from mailplatform.redis_cache import redis_client, redis_key
from tests.delivery.smtp_servers import RecordingHandler, SmtpServer

THROTTLE = "450 4.7.28 Our system has detected an unusual rate of mail from your IP; rate limited, try later"


@pytest.fixture(autouse=True)
def _no_domain_state():
    client = redis_client()
    keys = list(client.scan_iter(redis_key("delivery", "domain", "*")))
    if keys:
        client.delete(*keys)
    yield


def _audience(per_domain: dict[str, int]):
    """Contacts interleaved across the domains (as a real list is), on one list."""
    from contacts.models import Contact, MailingList, Subscription

    mailing_list = MailingList.objects.create(name=f"Mixed {MailingList.objects.count() + 1}")
    rows = []
    left = dict(per_domain)
    n = 0
    while any(left.values()):
        for domain in per_domain:
            if left[domain]:
                rows.append(Contact(email=f"reader{n}@{domain}"))
                left[domain] -= 1
                n += 1
    contacts = Contact.objects.bulk_create(rows)
    Subscription.objects.bulk_create(
        Subscription(contact=c, mailing_list=mailing_list, status="confirmed") for c in contacts
    )
    return mailing_list


def _drain(mailing_id: int) -> None:
    from django.db import connection

    try:
        engine.drain(mailing_id)
    finally:
        connection.close()  # this thread's own connection, or the test database cannot be dropped


class Arrivals:
    """When the receiving server accepted each recipient, and how many 4.7.28 it has left to give."""

    def __init__(self, throttle: int) -> None:
        self.throttle = throttle
        self.at: dict[str, float] = {}
        self.throttled_at: list[float] = []
        self.lock = threading.Lock()

    def rcpt(self, address: str) -> str | None:
        with self.lock:
            if address.endswith("@slow.test") and self.throttle > 0:
                self.throttle -= 1
                self.throttled_at.append(time.monotonic())
                return THROTTLE
            self.at.setdefault(address, time.monotonic())
        return None


@pytest.mark.slow
def test_a_domain_answering_4_7_28_is_slowed_and_recovers_while_the_others_flow(
    transactional_db, settings, make_relay, start_mailing
):
    settings.DELIVERY_DOMAIN_LIMITS = {"slow.test": {"per_second": 30}}
    settings.DELIVERY_DOMAIN_AIMD_INCREASE = 5.0  # msg/s regained per second: 15 -> 30 in 3 s
    settings.DELIVERY_BATCH_SIZE = 40
    arrivals = Arrivals(throttle=4)
    handler = RecordingHandler(rcpt_reply=arrivals.rcpt)
    seen: list[tuple[float, float | None]] = []
    with SmtpServer(handler) as server:
        relay = make_relay(server)
        mailing = start_mailing(_audience({"fast1.test": 150, "fast2.test": 150, "slow.test": 90}))
        sender = threading.Thread(target=_drain, args=(mailing.pk,))
        started = time.monotonic()
        sender.start()
        # Watch the relay page's figure while it sends, until the slowdown is over.
        while time.monotonic() - started < 30:
            row = next((d for d in domains.overview() if d["group"] == "slow.test"), None)
            seen.append((time.monotonic(), row["slowed_to"] if row else None))
            if arrivals.throttled_at and seen[-1][1] is None and any(rate for _, rate in seen):
                break
            time.sleep(0.02)
        sender.join(timeout=60)
    assert not sender.is_alive()

    # Slowed: the 4.7.28 halved the domain's rate (30/s -> 15/s, at most once a second) ...
    slowed = [rate for _, rate in seen if rate is not None]
    assert slowed and min(slowed) < 30 * 0.6, seen[-5:]
    # ... and it recovered: back at its configured 30/s, the slowdown forgotten.
    assert (
        seen[-1][1] is None
        and ratelimit.domain_rates(["slow.test"], domains.limits_for, domains.aimd()) == {}
    )
    slowed_from = next(t for t, rate in seen if rate is not None)
    recovered_at = seen[-1][0]
    assert recovered_at - slowed_from >= 1.0  # "slowly": grows back by 5/s per second

    # The other domains flowed: none of theirs was held, and while slow.test was slowed they went
    # on arriving faster than it was allowed to.
    fast = [a for a in arrivals.at if not a.endswith("@slow.test")]
    slow = [a for a in arrivals.at if a.endswith("@slow.test")]
    assert len(fast) == 300 and len(slow) == 90
    fast_meanwhile = [arrivals.at[a] for a in fast if arrivals.at[a] >= slowed_from]
    if fast_meanwhile:
        assert len(fast_meanwhile) / (max(fast_meanwhile) - slowed_from + 0.05) > min(slowed)
    held_fast = Message.objects.filter(mailing=mailing, attempts__gt=1).exclude(email__endswith="@slow.test")
    assert not held_fast.exists()
    # Every message exactly once; the throttled ones were deferred with the receiver's words.
    assert sorted(handler.recipients()) == sorted(arrivals.at)
    assert set(Message.objects.filter(mailing=mailing).values_list("state", flat=True)) == {"sent"}
    deferred = MessageEvent.objects.filter(mailing_id=mailing.pk, kind="deferred")
    assert deferred.count() == 4 and all("4.7.28" in e.data["reply"] for e in deferred)
    # The relay itself was never backed off for it.
    relay = Relay.objects.get(pk=relay.pk)
    assert relay.consecutive_failures == 0 and relay.backed_off_until is None


@pytest.mark.slow
def test_a_limited_domain_keeps_its_pace_and_does_not_hold_up_the_rest(
    transactional_db, settings, make_relay, start_mailing
):
    settings.DELIVERY_DOMAIN_LIMITS = {"paced.test": {"per_second": 20, "burst": 5}}
    settings.DELIVERY_BATCH_SIZE = 50
    arrivals = Arrivals(throttle=0)
    handler = RecordingHandler(rcpt_reply=arrivals.rcpt)
    with SmtpServer(handler) as server:
        make_relay(server)
        mailing = start_mailing(_audience({"free.test": 200, "paced.test": 45}))
        engine.drain(mailing.pk)
    paced = sorted(t for a, t in arrivals.at.items() if a.endswith("@paced.test"))
    free = sorted(t for a, t in arrivals.at.items() if a.endswith("@free.test"))
    assert len(paced) == 45 and len(free) == 200
    # 5 at once (the burst), then 40 at 20/s: about 2 s, never faster
    span = paced[-1] - paced[0]
    assert 40 / 20 * 0.85 <= span <= 40 / 20 * 2.0, span
    # the free domain was not made to wait for it: it went faster than the paced one was allowed
    assert len(free) / (free[-1] - free[0] + 0.05) > 20
    held = Message.objects.filter(mailing=mailing, email__endswith="@free.test", attempts__gt=1)
    assert not held.exists()


class ConnectionWatch(RecordingHandler):
    """Counts the sessions that are inside a transaction to one domain at the same moment; that
    domain's data is slow to accept, so that two sessions carrying it would overlap."""

    def __init__(self, domain: str) -> None:
        super().__init__()
        self.domain = domain
        self.active: set[int] = set()
        self.most = 0
        self.sessions: set[int] = set()

    async def handle_RCPT(self, server, session, envelope, address, options):
        if address.endswith(self.domain):
            with self.lock:
                self.active.add(id(session))
                self.most = max(self.most, len(self.active))
        with self.lock:
            self.sessions.add(id(session))
        return await super().handle_RCPT(server, session, envelope, address, options)

    async def handle_DATA(self, server, session, envelope):
        import asyncio

        if any(r.endswith(self.domain) for r in envelope.rcpt_tos):
            await asyncio.sleep(0.01)
        reply = await super().handle_DATA(server, session, envelope)
        with self.lock:
            self.active.discard(id(session))
        return reply


@pytest.mark.slow
@pytest.mark.parametrize("limit", [1, 0])
def test_a_domains_concurrent_connections_are_bounded_across_runners(
    transactional_db, settings, make_relay, start_mailing, limit
):
    """Two runners on one Mailing: with `connections: 1` only one of them carries few.test's mail at
    any moment (the other waits a moment in the ledger and sends the rest); without, both do."""
    settings.DELIVERY_DOMAIN_LIMITS = {"few.test": {"connections": limit}} if limit else {}
    settings.DELIVERY_BATCH_SIZE = 30
    handler = ConnectionWatch("@few.test")
    with SmtpServer(handler) as server:
        make_relay(server, max_connections=2)
        mailing = start_mailing(_audience({"many1.test": 120, "few.test": 120, "many2.test": 120}))
        runners = [threading.Thread(target=_drain, args=(mailing.pk,)) for _ in range(2)]
        for runner in runners:
            runner.start()
        for runner in runners:
            runner.join(timeout=120)
    assert not any(r.is_alive() for r in runners)
    received = handler.recipients()
    assert len(received) == 360 and len(set(received)) == 360  # everyone, once
    assert len(handler.sessions) == 2  # two runners, two connections, both working
    if limit:
        assert handler.most == 1, handler.most
        held = MessageEvent.objects.filter(mailing_id=mailing.pk, kind="deferred").count()
        assert held == 0  # waiting for a connection is no deferral by the receiver
        assert domains.connections_in_use("few.test") == 0  # every place given back
    else:
        assert handler.most == 2  # the check can see two at once: the limit is what prevents it


@pytest.mark.slow
def test_two_runners_hold_a_limited_domain_to_its_rate_over_a_longer_send(
    transactional_db, settings, make_relay, start_mailing
):
    """A domain whose share of the send comes up a little faster than its limit: its held mail goes
    out on its turns and, in between, newcomers take from its bucket. The turns are the pace, so the
    bucket stays empty until they are over: no burst on top of them (bench/send.py --domains)."""
    settings.DELIVERY_DOMAIN_LIMITS = {"paced.test": {"per_second": 40}}
    settings.DELIVERY_BATCH_SIZE = 40
    arrivals = Arrivals(throttle=0)
    handler = RecordingHandler(rcpt_reply=arrivals.rcpt)
    with SmtpServer(handler) as server:
        # The relay's pace sets the send's: 200/s, a quarter of it to paced.test (50/s > 40/s).
        make_relay(server, max_connections=2, per_second=200, burst=20)
        mailing = start_mailing(
            _audience({"free1.test": 300, "paced.test": 300, "free2.test": 300, "free3.test": 300})
        )
        runners = [threading.Thread(target=_drain, args=(mailing.pk,)) for _ in range(2)]
        for runner in runners:
            runner.start()
        for runner in runners:
            runner.join(timeout=120)
    paced = sorted(t for a, t in arrivals.at.items() if a.endswith("@paced.test"))
    assert len(paced) == 300 and len(arrivals.at) == 1200
    # After the first second's burst (40), the other 260 at 40/s: 6.5 s, not faster.
    rate = (len(paced) - 40) / (paced[-1] - paced[0])
    print(f"\npaced.test: {rate:.1f} msg/s for a limit of 40")
    assert rate <= 40 * 1.05, rate
