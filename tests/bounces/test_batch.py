"""The batch path (mailbox poller, webhooks, bench): the same policy as one message at a time, in a
number of statements that does not grow with the batch."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from contacts.models import Contact, ContactStatus, Subscription, Suppression
from contacts.services import contact_create, mailing_list_get_or_create
from delivery.bounces import bulk, selectors, services
from delivery.bounces.models import BounceEvent, BouncePolicy, InboundMessage
from delivery.bounces.services import EspEvent, Inbound, bounces_process, esp_events_process
from delivery.models import MessageEvent
from delivery.verp import verp_address
from tests.bounces.test_policy import _dsn, _mailing, _message, _status

SAMPLES = Path(__file__).parent / "samples"
pytestmark = pytest.mark.django_db

FULL = ("4.2.2", "452 4.2.2 Mailbox full")
UNKNOWN = ("5.1.1", "550 5.1.1 User unknown")
BLOCKED = ("5.7.1", "554 5.7.1 Client host [192.0.2.1] blocked using zen.spamhaus.org")


def _bounce(contact: Contact, code: tuple[str, str], mailing_number: int = 1) -> Inbound:
    message = _message(contact, _mailing(mailing_number))
    return Inbound(raw=_dsn(contact.email, *code), source="mailbox", envelope_to=(verp_address(message.pk),))


def test_a_mixed_batch_gets_the_policy_message_by_message() -> None:
    news = mailing_list_get_or_create("News")
    ghost = contact_create(email="ghost@example.com")
    full = contact_create(email="full@example.com")
    reader = contact_create(email="reader@example.com")
    angry = contact_create(email="angry@example.com", list_ids=[news.pk])
    gone = contact_create(email="gone@example.com")  # named by an Exim report, no token: evidence only
    items = [
        _bounce(ghost, UNKNOWN),
        # Three soft bounces from three mailings in the same batch: the third crosses the threshold.
        _bounce(full, FULL, 1),
        _bounce(full, FULL, 2),
        _bounce(full, FULL, 3),
        _bounce(reader, BLOCKED),
        Inbound(
            raw=(SAMPLES / "arf-abuse.eml").read_bytes(),
            source="mailbox",
            envelope_to=(verp_address(_message(angry).pk),),
        ),
        Inbound(raw=(SAMPLES / "exim-text.eml").read_bytes(), source="mailbox"),
        Inbound(raw=_dsn("x@example.com", *UNKNOWN), source="mailbox", envelope_to=(verp_address(999999),)),
        Inbound(raw=(SAMPLES / "not-a-bounce.eml").read_bytes(), source="mailbox"),
    ]
    results = bounces_process(items)
    assert [r.outcome for r in results] == [
        "applied",
        "applied",
        "applied",
        "applied",
        "applied",
        "applied",
        "unattributed",
        "unknown_message",
        "none",
    ]
    assert [r.actions for r in results[:5]] == [
        ["contact bounced"],
        ["soft bounce 1/3"],
        ["soft bounce 2/3"],
        ["contact bounced (soft threshold)"],
        ["admin alerted (block)"],
    ]
    assert _status(ghost) == ContactStatus.BOUNCED and _status(full) == ContactStatus.BOUNCED
    assert _status(reader) == ContactStatus.ACTIVE and _status(gone) == ContactStatus.ACTIVE
    assert _status(angry) == ContactStatus.COMPLAINED
    assert Subscription.objects.get(contact=angry).status == "unsubscribed"
    assert Suppression.objects.filter(value="angry@example.com").exists()
    full.refresh_from_db()
    assert (full.soft_bounce_count, full.bounce_count) == (3, 1)
    assert InboundMessage.objects.count() == len(items)
    evidence = BounceEvent.objects.get(recipient="gone@example.com")
    assert evidence.contact_id is None and evidence.action == services.UNATTRIBUTED_WHY
    kinds = sorted(MessageEvent.objects.values_list("kind", flat=True))
    assert kinds == ["bounced"] * 5 + ["complained"]
    assert all(event.data["bounce_event"] for event in MessageEvent.objects.all())


def _statements(count: int) -> int:
    contacts = [contact_create(email=f"batch{count}-{i}@example.com") for i in range(count)]
    codes = [FULL, UNKNOWN, BLOCKED]
    items = [_bounce(c, codes[i % 3], i) for i, c in enumerate(contacts)]
    with CaptureQueriesContext(connection) as captured:
        results = bounces_process(items)
    assert all(r.outcome == "applied" for r in results)
    return len(captured)


def test_the_number_of_statements_does_not_grow_with_the_batch() -> None:
    # (Django counts its own statements; the unnest inserts of bulk.py are fixed per table anyway.)
    BouncePolicy.current()  # created once, on first use
    assert _statements(30) == _statements(3) <= 12


def test_a_bulk_insert_returns_each_rows_own_id() -> None:
    # ids come back in the rows' order, whatever order PostgreSQL inserts them in
    values = [
        {
            "received_at": timezone.now(),
            "source": "smtp",
            "subject": f"subject {n}",
            "size": n,
            "raw": bytes([n]) * n,
        }
        for n in reversed(range(256))
    ]
    rows = [[value.get(name, "") for name in services.INBOUND_FIELDS] for value in values]
    ids = bulk.insert_rows(InboundMessage, services.INBOUND_FIELDS, rows)
    stored = {m.pk: m for m in InboundMessage.objects.all()}
    assert len(set(ids)) == len(stored) == 256
    for pk, value in zip(ids, values, strict=True):
        assert (stored[pk].subject, stored[pk].size, bytes(stored[pk].raw)) == (
            value["subject"],
            value["size"],
            value["raw"],
        )


def test_a_poisonous_message_does_not_hold_back_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    ghost = contact_create(email="ghost@example.com")
    other = contact_create(email="other@example.com")
    real = services._mailto_unsubscribe

    def explode(envelope_to):
        if "poison@example.org" in envelope_to:
            raise RuntimeError("boom")
        return real(envelope_to)

    monkeypatch.setattr(services, "_mailto_unsubscribe", explode)
    items = [
        _bounce(ghost, UNKNOWN),
        Inbound(raw=b"Subject: x\n\ny", source="mailbox", envelope_to=("poison@example.org",)),
        _bounce(other, UNKNOWN),
    ]
    results = bounces_process(items)
    assert [r.outcome for r in results] == ["applied", "error", "applied"]
    assert _status(ghost) == ContactStatus.BOUNCED and _status(other) == ContactStatus.BOUNCED
    assert InboundMessage.objects.count() == 2  # the poison left no half-written trace


def test_a_message_postgresql_refuses_mid_pipeline_does_not_hold_back_the_rest() -> None:
    """The group's writes wait for no answer (pipeline mode): PostgreSQL's refusal of one row comes
    back with the commit's round trip, the whole group rolls back and each message is stored on
    its own, the connection usable again."""
    ghost = contact_create(email="ghost@example.com")
    other = contact_create(email="other@example.com")
    items = [
        _bounce(ghost, UNKNOWN),
        # text columns cannot hold NUL: refused by the server, not by Python
        Inbound(raw=b"Subject: x\n\ny", source="mailbox", envelope_from="nul\x00@example.org"),
        _bounce(other, UNKNOWN),
    ]
    results = bounces_process(items)
    assert [r.outcome for r in results] == ["applied", "error", "applied"]
    assert _status(ghost) == ContactStatus.BOUNCED and _status(other) == ContactStatus.BOUNCED
    assert InboundMessage.objects.count() == 2 and BounceEvent.objects.count() == 2


def test_esp_events_in_one_request_are_stored_once_each() -> None:
    contact = contact_create(email="ghost@example.com")
    event = EspEvent("Postmark", "ev-1", "Ghost <ghost@example.com>", "hard", "userunknown", "5.1.1", "550")
    first = esp_events_process([event, event])
    assert first[0] is not None and first[1] is None  # a retry inside the same payload
    assert esp_events_process([event]) == [None]  # and one in a later request
    assert _status(contact) == ContactStatus.BOUNCED
    assert BounceEvent.objects.get().attributed_by == "esp"


def _waiting_on_a_lock_or_done(thread: threading.Thread) -> None:
    """Until `thread` ends or a backend of this database waits for an advisory lock."""
    deadline = time.monotonic() + 30
    with connection.cursor() as cursor:
        while thread.is_alive() and time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND NOT l.granted AND a.datname = current_database()"
            )
            if cursor.fetchone()[0]:
                return
            thread.join(0.01)


def test_the_soft_bounce_threshold_counts_bounces_stored_at_once_by_two_transactions(
    transactional_db, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two groups stored at the same time (the listener's store threads, two listener processes,
    the pipe), each with a soft bounce of the same contact from another mailing: the second reads
    the first's event once it committed, and the threshold (2) is reached."""
    policy = BouncePolicy.current()
    policy.soft_bounce_threshold = 2
    policy.save()
    full = contact_create(email="full@example.com")
    first, second = _bounce(full, FULL, 1), _bounce(full, FULL, 2)
    read, go_on = threading.Event(), threading.Event()
    real = services._policy_apply

    def after_its_reads(lines, *args, **kwargs):
        if threading.current_thread().name == "first":  # its history is read, nothing written yet
            read.set()
            go_on.wait(30)
        return real(lines, *args, **kwargs)

    monkeypatch.setattr(services, "_policy_apply", after_its_reads)
    results: dict[str, list] = {}

    def store(name: str, item: Inbound) -> None:
        try:
            results[name] = bounces_process([item], fall_back=False)
        finally:
            connection.close()

    threads = {
        name: threading.Thread(target=store, args=(name, item), name=name)
        for name, item in [("first", first), ("second", second)]
    }
    threads["first"].start()
    assert read.wait(30)
    threads["second"].start()
    _waiting_on_a_lock_or_done(threads["second"])
    go_on.set()
    for thread in threads.values():
        thread.join(30)
    assert results["first"][0].actions == ["soft bounce 1/2"]
    assert results["second"][0].actions == ["contact bounced (soft threshold)"]
    assert _status(full) == ContactStatus.BOUNCED


def _plan_nodes(node: dict) -> list[dict]:
    return [node, *(n for child in node.get("Plans", ()) for n in _plan_nodes(child))]


@pytest.mark.parametrize("reader", ["by_messages", "by_contacts"])
def test_the_soft_history_reads_only_the_bounced_contacts_events_whatever_the_statistics_say(
    reader: str,
) -> None:
    """Statistics taken while soft bounces were rare, then a wave of them: reading a few contacts'
    history must not read the wave (a scan of every soft event in the window, filtered). Both
    readers: the listener's (by its Messages) and the policy's for refusals and ESP events."""
    contact = contact_create(email="wave@example.com")
    message = _message(contact)
    now = timezone.now()
    columns = (
        "at, source, kind, reason, status, diagnostic, recipient, contact_id, sending_domain, "
        "attributed_by, action, esp, esp_event_id"
    )

    def events(kind: str, contact_ids: str) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO bounces_bounceevent ({columns}) "  # noqa: S608
                f"SELECT %s, 'smtp', %s, '', '', '', '', c, '', '', '', '', '' FROM {contact_ids} AS s(c)",
                [now, kind],
            )

    events("hard", "generate_series(1000000, 1000200)")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE bounces_bounceevent")
    events("soft", "generate_series(2000000, 2005000)")
    events("soft", f"(VALUES ({contact.pk}), ({contact.pk}))")
    if reader == "by_messages":
        sql, params = selectors.soft_history_query([message.pk], now)
        history = selectors.soft_history_of_messages_later([message.pk], now)()
    else:
        others = set(range(5, 21))  # a batch of ESP events names several contacts
        with CaptureQueriesContext(connection) as captured:
            history = selectors.soft_history({contact.pk, *others}, now - dt.timedelta(days=1))
        sql, params = captured.captured_queries[-1]["sql"], None
    assert len(history[contact.pk]) == 2
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0][0]["Plan"]
    event_nodes = [n for n in _plan_nodes(plan) if n.get("Relation Name") == "bounces_bounceevent"]
    assert event_nodes
    removed = sum(
        n.get("Rows Removed by Filter", 0) + n.get("Rows Removed by Index Recheck", 0) for n in event_nodes
    )
    assert removed == 0, plan


def test_the_soft_history_holds_one_entry_per_mailing_at_its_latest_and_each_event_without_one() -> None:
    """What the threshold counts: the mailings (and events naming none) a contact soft-bounced in
    the window. A mailing's retried bounces are one entry, at the latest of them."""
    contact = contact_create(email="retried@example.com")
    now = timezone.now()
    times = [now - dt.timedelta(hours=h) for h in (5, 1, 3)]
    for at in times:
        BounceEvent.objects.create(at=at, source="smtp", kind="soft", contact_id=contact.pk, mailing_id=7)
    BounceEvent.objects.create(
        at=now - dt.timedelta(hours=2), source="smtp", kind="unknown", contact_id=contact.pk, mailing_id=8
    )
    loose = [
        BounceEvent.objects.create(
            at=now - dt.timedelta(hours=4), source="esp", kind="soft", contact_id=contact.pk
        )
        for _ in range(2)
    ]
    BounceEvent.objects.create(at=now, source="smtp", kind="hard", contact_id=contact.pk, mailing_id=9)
    history = selectors.soft_history({contact.pk}, now - dt.timedelta(days=1))
    assert sorted(history[contact.pk], key=str) == sorted(
        [(7, max(times)), (8, now - dt.timedelta(hours=2)), *((("event", e.pk), e.at) for e in loose)],
        key=str,
    )
