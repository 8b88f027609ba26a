"""The ledger's holds, the one eligibility check, the generic semaphore and the module layout of delivery."""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import pytest
from django.utils import timezone

from delivery import eligibility, ledger, ratelimit
from delivery.models import Mailing, Message
from delivery.selectors import mailing_progress
from delivery.smtp import DEFERRED, Outcome

pytestmark = pytest.mark.django_db


def test_a_hold_waits_for_its_time_and_says_why(make_relay, make_audience, start_mailing, sink):
    relay = make_relay(sink)
    mailing_list, _ = make_audience(3)
    mailing = start_mailing(mailing_list)
    first, second, third = ledger.claim(mailing.pk, relay.pk, 3)
    ledger.hold([first.id], timezone.now() - dt.timedelta(seconds=1), Message.Hold.WINDOW)
    ledger.hold([second.id], timezone.now() + dt.timedelta(hours=1), Message.Hold.THROTTLED)
    held = {m.pk: m for m in Message.objects.filter(mailing=mailing, state="deferred")}
    assert held[first.id].hold_reason == "window" and held[second.id].hold_reason == "throttled"
    assert held[first.id].attempts == 0 and held[first.id].lease_expires_at is None
    with pytest.raises(ValueError):
        ledger.hold([third.id], timezone.now(), "whenever")
    # The progress page reads the same hold: counts by reason, and no estimate before the last one.
    progress = mailing_progress(mailing.pk)
    assert progress["held"] == {"window": 1, "throttled": 1} and progress["eta_s"] >= 3500
    # Only the one whose time has come goes back to the queue, and it is no longer held.
    assert ledger.requeue_due() == 1
    back = Message.objects.get(pk=first.id)
    assert back.state == "queued" and back.hold_reason == ""
    assert Message.objects.get(pk=second.id).state == "deferred"


def test_a_relay_deferral_is_a_hold_with_its_reason(make_relay, make_audience, start_mailing, sink, settings):
    settings.DELIVERY_RETRY_BASE_SECONDS = 60
    relay = make_relay(sink)
    mailing_list, _ = make_audience(1)
    mailing = start_mailing(mailing_list)
    [claimed] = ledger.claim(mailing.pk, relay.pk, 1)
    now = timezone.now()
    outcome = Outcome(claimed.id, DEFERRED, 451, "4.7.1 greylisted", "rcpt")
    ledger.record_outcomes(mailing.pk, relay.pk, sent=[], failed=[], deferred=[outcome], returned=[], now=now)
    message = Message.objects.get(pk=claimed.id)
    assert message.state == "deferred" and message.hold_reason == Message.Hold.RELAY
    assert message.attempts == 1 and message.next_attempt_at >= now + dt.timedelta(seconds=59)


def test_outcomes_keep_their_codes_and_replies_exactly(make_relay, make_audience, start_mailing, sink):
    """Outcomes go to PostgreSQL as one JSON parameter: quotes, backslashes, non-ASCII and a
    missing code (None) arrive as they were."""
    from delivery.smtp import FAILED, SENT

    relay = make_relay(sink)
    mailing_list, _ = make_audience(3)
    mailing = start_mailing(mailing_list)
    first, second, third = ledger.claim(mailing.pk, relay.pk, 3)
    replies = {first.id: '2.0.0 Ok: "queued" as \\ABC é', second.id: "{not, an array}", third.id: "x" * 1200}
    ledger.record_outcomes(
        mailing.pk,
        relay.pk,
        sent=[
            Outcome(first.id, SENT, 250, replies[first.id], "data"),
            Outcome(second.id, SENT, 251, replies[second.id], "data"),
        ],
        failed=[Outcome(third.id, FAILED, 0, replies[third.id], "build")],
        deferred=[],
        returned=[],
        now=timezone.now(),
    )
    rows = {m.pk: m for m in Message.objects.filter(mailing=mailing)}
    assert (rows[first.id].state, rows[first.id].smtp_code, rows[first.id].smtp_reply) == (
        "sent",
        250,
        replies[first.id],
    )
    assert (rows[second.id].smtp_code, rows[second.id].smtp_reply) == (251, replies[second.id])
    assert (rows[third.id].state, rows[third.id].smtp_code, rows[third.id].smtp_reply) == (
        "failed",
        None,
        "x" * 1000,
    )
    assert all(m.attempts == 1 and m.relay_id == relay.pk for m in rows.values())


def test_the_one_eligibility_check_follows_the_kind(make_audience, compiled, sending_identity):
    from contacts.services import contact_unsubscribe, suppressions_add
    from delivery.mailings import mailing_create

    _, contacts = make_audience(3)
    contact_unsubscribe(contacts[0].pk, list_ids=None, source="test")
    suppressions_add(["user1@example.org"], reason="manual", source="test")
    marketing = mailing_create(name="m", compiled=compiled, from_email="news@example.com")
    transactional = mailing_create(
        name="t", compiled=compiled, from_email="news@example.com", kind=Mailing.Kind.TRANSACTIONAL
    )
    recipients = [(i, c.pk, c.email) for i, c in enumerate(contacts)] + [(9, None, "user1@example.org")]
    # An unsubscribe stops marketing only; a suppression stops both, with or without a contact.
    assert eligibility.unsendable(marketing, recipients) == {0, 1, 9}
    assert eligibility.unsendable(transactional, recipients) == {1, 9}


def test_a_semaphore_bounds_its_holders_by_token():
    key = "posthorn-test:semaphore"
    one = ratelimit.Semaphore(key, 1, 5.0, token="one")
    other = ratelimit.Semaphore(key, 1, 5.0)
    try:
        assert one.acquire() == 0.0 and other.acquire() > 0
        # The same token (a runner's successor) takes its place again.
        assert ratelimit.Semaphore(key, 1, 5.0, token="one").refresh()
        one.release()
        assert other.acquire() == 0.0
    finally:
        one.release()
        other.release()


def _delivery_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "delivery":
                names.update(f"delivery.{a.name}" for a in node.names)
            elif node.module.startswith("delivery."):
                names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("delivery."))
    return names


def test_delivery_modules_import_each_other_without_a_circle():
    """services -> engine -> tasks -> engine was a circle; runners enqueue tasks by name now."""
    root = Path(__file__).resolve().parents[2] / "delivery"
    graph = {f"delivery.{p.stem}": _delivery_imports(p) for p in root.glob("*.py") if p.stem != "__init__"}

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        for name in graph.get(start, ()):
            if name == target or (name not in seen and reaches(name, target, seen | {name})):
                return True
        return False

    circles = sorted(module for module in graph if reaches(module, module, {module}))
    assert circles == []
    assert "delivery.services" not in graph


def test_report_figures_read_the_stored_bounce_kind(make_relay, make_audience, start_mailing, sink):
    import importlib

    from django.apps import apps

    from delivery import selectors

    relay = make_relay(sink)
    mailing_list, _ = make_audience(4)
    mailing = start_mailing(mailing_list)
    claimed = ledger.claim(mailing.pk, relay.pk, 4)
    now = timezone.now()
    sent = [Outcome(c.id, "sent", 250, "ok") for c in claimed]
    ledger.record_outcomes(mailing.pk, relay.pk, sent=sent, failed=[], deferred=[], returned=[], now=now)
    hard, unknown, raw = claimed[0].id, claimed[1].id, claimed[2].id
    ledger.record_bounces(
        [
            (hard, mailing.pk, "bounced", {"kind": "hard", "diagnostic": "550 5.1.1 no such user"}, now),
            (unknown, mailing.pk, "bounced", {"kind": "unknown", "diagnostic": "550 go away"}, now),
        ]
    )
    figures = selectors.mailing_figures([mailing.pk])
    # "unknown" is soft in the reports, as in the bounce policy; no second classifier anywhere.
    assert (figures["bounced"], figures["hard"], figures["soft"], figures["block"]) == (2, 1, 1, 0)
    assert figures["delivered"] == 2
    assert selectors.guard_stats([mailing.pk], window=10) == {"attempted": 4, "hard": 1, "complaints": 0}
    assert selectors.results_by_domain([mailing.pk])[0]["bounced"] == 2
    rows = {r["email"]: r for r in selectors.recipient_rows([mailing.pk])}
    assert rows["user0@example.org"]["bounce"] == "hard" and rows["user1@example.org"]["bounce"] == "soft"
    assert [r["why"] for r in selectors.not_received([mailing.pk])] == [
        "hard bounce: 550 5.1.1 no such user",
        "soft bounce: 550 go away",
    ]
    # Bounces recorded before the column existed: the migration classifies the engine's raw refusal.
    Message.objects.filter(pk=raw).update(state="failed")
    ledger.record_bounces(
        [(raw, mailing.pk, "bounced", {"code": 550, "reply": "5.7.1 blocked by policy"}, now)]
    )
    Message.objects.filter(pk__in=[hard, raw]).update(bounce_kind="")
    importlib.import_module("delivery.migrations.0005_message_bounce_kind").fill(apps, None)
    kinds = dict(Message.objects.filter(pk__in=[hard, raw]).values_list("pk", "bounce_kind"))
    assert kinds == {hard: "hard", raw: "block"}


def _ledger_rows(count: int, *, days_ago: int, state: str = "sent") -> tuple[Mailing, list[Message]]:
    at = timezone.now() - dt.timedelta(days=days_ago)
    name = f"m{Mailing.objects.count()}-{days_ago}-{state}"
    mailing = Mailing.objects.create(
        name=name, send_group=name, from_email="a@example.com", subject="s", compiled={}, state="done"
    )
    Mailing.objects.filter(pk=mailing.pk).update(finished_at=at)
    rows = Message.objects.bulk_create(
        Message(mailing=mailing, send_group=name, email=f"p{n}@example.com", state=state)
        for n in range(count)
    )
    Message.objects.filter(mailing=mailing).update(created_at=at)
    return mailing, rows


def test_prune_deletes_in_short_batches_and_keeps_what_is_not_done():
    from delivery.models import MessageEvent

    old, old_rows = _ledger_rows(5, days_ago=500)
    _, open_rows = _ledger_rows(1, days_ago=500, state="queued")
    recent, recent_rows = _ledger_rows(1, days_ago=1)
    long_ago = timezone.now() - dt.timedelta(days=450)
    for message in (*old_rows, recent_rows[0]):
        MessageEvent.objects.create(
            message=message, mailing_id=message.mailing_id, kind="opened", at=long_ago
        )
    kept_event = MessageEvent.objects.create(
        message=recent_rows[0], mailing=recent, kind="opened", at=timezone.now()
    )
    batches: list[float] = []
    assert ledger.prune(days=400, batch=2, on_batch=batches.append) == 5
    # Six old events in 2 + 2 + 2 (and one that finds none), then the Messages in 2 + 2 + 1: each
    # its own transaction, timed.
    assert len(batches) == 7 and all(ms >= 0 for ms in batches)
    assert set(Message.objects.values_list("pk", flat=True)) == {open_rows[0].pk, recent_rows[0].pk}
    assert list(MessageEvent.objects.values_list("pk", flat=True)) == [kept_event.pk]
    assert not Mailing.objects.filter(pk=old.pk).exists()
    assert ledger.prune(days=400, batch=2) == 0


@pytest.mark.django_db(transaction=True)
def test_prune_skips_a_row_another_transaction_holds_instead_of_waiting():
    import threading

    from django.db import connections, transaction

    _, rows = _ledger_rows(3, days_ago=500)
    held, done = threading.Event(), threading.Event()

    def hold_one() -> None:
        try:
            with transaction.atomic():
                Message.objects.select_for_update().get(pk=rows[0].pk)
                held.set()
                done.wait(30)
        finally:
            connections.close_all()

    thread = threading.Thread(target=hold_one)
    thread.start()
    try:
        assert held.wait(30)
        # Waiting for the lock would block here until `done` (30 s): SKIP LOCKED leaves the row.
        assert ledger.prune(days=400, batch=10) == 2
        assert list(Message.objects.values_list("pk", flat=True)) == [rows[0].pk]
    finally:
        done.set()
        thread.join()
    assert ledger.prune(days=400, batch=10) == 1


def test_the_claim_reads_its_index_whatever_the_statistics_say(make_relay):
    """Analysed while every row was queued (a fresh ledger, a first big Mailing), the planner took
    "state = 'queued'" for no filter at all: it walked the primary key from the lowest id past every
    row already claimed, and hash-joined the pick with a scan of the whole ledger. Each claim then
    cost more than the last. The claim must read delivery_msg_claim and the picked rows by id."""
    from django.db import connection, transaction

    relay = make_relay(port=25)
    mailing = Mailing.objects.create(
        name="big", send_group="big", from_email="a@example.com", subject="s", compiled={}, state="sending"
    )
    Message.objects.bulk_create(
        Message(mailing=mailing, send_group="big", email=f"p{n}@example.com") for n in range(3000)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE delivery_message")
    claimed = [c.id for _ in range(3) for c in ledger.claim(mailing.pk, relay.pk, 500)]
    assert len(claimed) == len(set(claimed)) == 1500
    assert claimed == sorted(claimed) == list(range(claimed[0], claimed[0] + 1500))

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + ledger.CLAIM_SQL, ledger.claim_params(mailing.pk, relay.pk, 500))
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Index Scan using delivery_msg_claim on delivery_message" in plan, plan
    assert "Seq Scan on delivery_message" not in plan, plan
    assert "Index Scan using delivery_message_pkey on delivery_message m" in plan, plan
    assert len(ledger.claim(mailing.pk, relay.pk, 2000)) == 1500


def _message_indexes_and_checks() -> tuple[list[str], list[str]]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'delivery_message'")
        indexes = [row[0] for row in cursor.fetchall()]
        cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'delivery_message'::regclass AND contype = 'f'"
        )
        foreign_keys = [row[0] for row in cursor.fetchall()]
    return indexes, foreign_keys


def test_a_claim_and_an_outcome_write_no_index_on_relay_or_lease():
    # Neither update of a Message can be HOT, so each adds an entry to every index: none on what
    # nothing reads by (the relay, the lease's end), and no per-row foreign-key check of the relay.
    indexes, foreign_keys = _message_indexes_and_checks()
    assert indexes and not [i for i in indexes if "relay_id" in i or "lease_expires_at" in i]
    assert foreign_keys and not [k for k in foreign_keys if "relay_id" in k]


def test_expired_leases_of_a_paused_or_cancelled_mailing_come_back_not_a_done_ones(
    make_relay, make_audience, start_mailing, sink
):
    relay = make_relay(sink)
    mailings = [start_mailing(make_audience(2, start=2 * i)[0]) for i in range(3)]
    claimed = {m.pk: ledger.claim(m.pk, relay.pk, 2) for m in mailings}
    paused, cancelled, sending = mailings
    Mailing.objects.filter(pk=paused.pk).update(state=Mailing.State.PAUSED)
    Mailing.objects.filter(pk=cancelled.pk).update(state=Mailing.State.CANCELLED)
    Message.objects.filter(mailing_id__in=[paused.pk, cancelled.pk]).update(
        lease_expires_at="2000-01-01T00:00:00Z"
    )
    # The metrics' open count reads the same rows the watchdog does.
    from delivery.metrics import _open_counts

    assert _open_counts()["sending"] == 6
    assert ledger.recover_leases() == 4
    states = dict(Message.objects.values_list("id", "state"))
    assert {states[c.id] for m in (paused, cancelled) for c in claimed[m.pk]} == {"queued"}
    assert {states[c.id] for c in claimed[sending.pk]} == {"sending"}  # its lease runs on
    assert _open_counts()["sending"] == 2


def test_a_deleted_relay_leaves_its_messages_without_a_relay(make_relay, make_audience, start_mailing, sink):
    from delivery.relays import relay_delete

    relay = make_relay(sink)
    mailing = start_mailing(make_audience(2)[0])
    claimed = ledger.claim(mailing.pk, relay.pk, 2)
    assert set(Message.objects.filter(mailing=mailing).values_list("relay_id", flat=True)) == {relay.pk}
    relay_delete(relay, by=None)
    assert set(Message.objects.filter(pk__in=[c.id for c in claimed]).values_list("relay_id", flat=True)) == {
        None
    }
