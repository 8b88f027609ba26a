"""The ledger: every SQL statement that writes a Message (and the events written with it).

Plan (one INSERT ... SELECT per audience), queue one transactional Message, claim under a lease,
hand back what was never tried, hold for later, record outcomes and bounces, recover expired
leases, requeue what is due, prune. The engine, the mailing and transactional services call these;
nobody else writes delivery_message. Reads for pages are in delivery.selectors.

Holding: a Message that must wait is `deferred` with a not-before time (`next_attempt_at`) and
a reason (`hold_reason`: deferred by the relay, outside a sending window, receiving domain
throttled, warm-up cap). `requeue_due` puts every kind back in the queue when its time comes,
and the progress page reads the same field.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from delivery.models import HoldReason, Mailing, Message, MessageEvent, MessageState
from delivery.smtp import Outcome

# Mailings whose queued Messages may be claimed.
ACTIVE_STATES = (Mailing.State.SENDING, Mailing.State.STANDING)
OPEN_STATES = (MessageState.QUEUED, MessageState.SENDING, MessageState.DEFERRED)
# A 5xx at these stages is the receiving side refusing the recipient: a bounce, not a failure of ours.
REFUSAL_STAGES = ("rcpt", "data")
BOUNCE_KINDS = ("hard", "soft", "block", "unknown")

# Every Message being sent, whatever its Mailing, read through delivery_msg_outcome (mailing_id,
# state): one descent per Mailing into the few rows in flight. The ledger has no index of its own
# on them any more (delivery_msg_lease): every claim wrote an entry to it, for the watchdog's sake.
# A done Mailing has none (it became done when none was open, and nothing claims from it after),
# so the descents are for the Mailings that are not done, not for the whole history.
SENDING_ROWS = (
    "mailing_id = ANY(ARRAY(SELECT id FROM delivery_mailing WHERE state <> 'done')) AND state = 'sending'"
)

# Lease and retry times use clock_timestamp(), not now(): now() is the start of the transaction,
# which in a long transaction (or a test) would freeze the clock the leases are measured by.


def _values(rows: Iterable[tuple], width: int) -> tuple[str, list]:
    params: list = []
    placeholders = []
    row_sql = "(" + ", ".join(["%s"] * width) + ")"
    for row in rows:
        placeholders.append(row_sql)
        params.extend(row)
    return ", ".join(placeholders), params


def _update_many(sql_set: str, rows: list[tuple], width: int, extra: list[Any]) -> None:
    values, params = _values(rows, width)
    with connection.cursor() as cursor:
        cursor.execute(sql_set.format(values=values), [*extra, *params])


def _outcome_rows(outcomes: Sequence[Outcome]) -> str:
    """Outcomes as one JSON array of {id, code, reply}, for `json_to_recordset(%s::json)`: one
    parameter whatever the count, so the statement's text (and its parsing) does not grow with it.
    Not three arrays: psycopg quotes an array's elements one by one in Python (~185 us for 50
    outcomes, to the statement's text), where json.dumps and one escape of the string take ~50 us."""
    return json.dumps(
        [{"id": o.key, "code": o.code or None, "reply": o.reply[:1000]} for o in outcomes],
        separators=(",", ":"),
    )


# --- planning and queueing ---


def plan(mailing: Mailing, audience: tuple[str, list], now: dt.datetime) -> tuple[int, int]:
    """Queue one Message per contact of `audience`; (new ones, all of the Mailing's). Idempotent.

    `audience` is contacts.selectors.audience_sql(...)'s (sql, params), selecting sendable
    contact ids. One INSERT ... SELECT: contacts already in the send group (another variant,
    an earlier run) are skipped by the unique (send_group, contact) constraint.
    """
    sql, params = audience
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO delivery_message
                (mailing_id, send_group, contact_id, email, state, attempts, smtp_reply, created_at,
                 hold_reason, bounce_kind)
            SELECT %s, %s, t.id, t.email, 'queued', 0, '', %s, '', ''
            FROM contacts_contact t
            WHERE t.id IN ({sql})
            ORDER BY t.id
            ON CONFLICT (send_group, contact_id) WHERE idempotency_key IS NULL DO NOTHING
            """,  # noqa: S608 - `sql` is audience_sql's parameterised query, not user text
            [mailing.pk, mailing.send_group, now, *params],
        )
        created = cursor.rowcount
    return max(created, 0), Message.objects.filter(mailing_id=mailing.pk).count()


def by_idempotency_key(key: str) -> Message | None:
    return Message.objects.filter(idempotency_key=key).first()


def queue_one(
    mailing: Mailing,
    *,
    contact_id: int | None,
    email: str,
    idempotency_key: str,
    data: dict[str, Any],
    skip_reason: str = "",
) -> tuple[Message, bool]:
    """One transactional Message (queued, or skipped with `skip_reason`); (message, created).

    A key already in the ledger returns its Message unchanged, also when another request
    inserted it between our look and our write.
    """
    message = Message(
        mailing=mailing,
        send_group=mailing.send_group,
        contact_id=contact_id,
        email=email,
        state=MessageState.SKIPPED if skip_reason else MessageState.QUEUED,
        smtp_reply=skip_reason,
        idempotency_key=idempotency_key,
        data=data,
    )
    try:
        with transaction.atomic():
            message.save()
    except IntegrityError:
        existing = by_idempotency_key(idempotency_key)
        if existing is None:
            raise
        return existing, False
    return message, True


def queue_keyed(mailing: Mailing, source: tuple[str, list], now: dt.datetime) -> int:
    """Queue one Message per row of `source`, set-wise: one INSERT ... SELECT; returns how many are new.

    `source` is (sql, params) selecting (contact_id, idempotency_key, data) rows; a key already in
    the ledger is skipped (ON CONFLICT on its unique index), so running it twice queues nothing
    twice. For callers that send many keyed Messages at once (an automation step for many runs).
    """
    sql, params = source
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO delivery_message
                (mailing_id, send_group, contact_id, email, state, attempts, smtp_reply, created_at,
                 hold_reason, bounce_kind, idempotency_key, data)
            SELECT %s, %s, c.id, c.email, 'queued', 0, '', %s, '', '', s.key, s.data
            FROM ({sql}) AS s(contact_id, key, data)
            JOIN contacts_contact c ON c.id = s.contact_id
            ORDER BY s.key
            ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
            """,  # noqa: S608 - `sql` is the caller's parameterised query, not user text
            [mailing.pk, mailing.send_group, now, *params],
        )
        return max(cursor.rowcount, 0)


def skip_open_for_contacts(mailing_ids: Sequence[int], contact_ids: Sequence[int], reply: str) -> int:
    """Queued and held Messages of these Mailings to these contacts become skipped (a run ended)."""
    if not mailing_ids or not contact_ids:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE delivery_message SET state = 'skipped', smtp_reply = %s, next_attempt_at = NULL,
                hold_reason = ''
            WHERE contact_id = ANY(%s) AND mailing_id = ANY(%s) AND state IN ('queued', 'deferred')
            """,
            [reply, sorted({int(i) for i in contact_ids}), sorted({int(i) for i in mailing_ids})],
        )
        return cursor.rowcount


# --- claiming and handing back ---


@dataclass(slots=True)
class Claimed:
    id: int
    email: str
    contact_id: int | None
    data: dict[str, Any] | None
    # Back from a hold for its receiving domain's pace, at its turn: it owns that turn.
    turn: bool = False


# The pick is a MATERIALIZED CTE: as `WHERE id IN (subquery)` the planner may re-run the subquery
# per row (a nested loop), and each run, seeing this statement's own updates, picks the next rows:
# more than `limit` claimed. Both halves are written so that the plan cannot depend on how stale
# the statistics are (a fresh ledger is analysed while every row is still queued):
# - `mailing_id = ANY(array)` ordered by (mailing_id, id) is an order only delivery_msg_claim
#   gives. With `mailing_id = %s ORDER BY id` and "every row queued" in the statistics, the
#   planner walked the primary key from the lowest id, filtering past every row already claimed:
#   each claim cost more than the last (halfway through a 30,000-row Mailing, 15,500 rows were
#   read and dropped to claim 500);
# - the update finds the picked rows by `id = ANY(ARRAY(...))`, an index lookup each, where a
#   join with the CTE let the planner hash-join it with a scan of the whole ledger.
CLAIM_SQL = """
    WITH picked AS MATERIALIZED (
        SELECT id FROM delivery_message
        WHERE mailing_id = ANY(%s::bigint[]) AND state = 'queued'
          -- Pause and cancel take effect between batches: a stopped Mailing yields nothing (read
          -- once, before the scan, not joined row by row).
          AND (SELECT g.state FROM delivery_mailing g WHERE g.id = %s) = ANY(%s)
        ORDER BY mailing_id, id
        LIMIT %s
        FOR UPDATE SKIP LOCKED
    )
    UPDATE delivery_message m
    SET state = 'sending', lease_expires_at = clock_timestamp() + %s, relay_id = %s
    WHERE m.id = ANY(ARRAY(SELECT id FROM picked))
    RETURNING m.id, m.email, m.contact_id, m.data, m.hold_reason
"""


def claim_params(mailing_id: int, relay_id: int, limit: int) -> list[Any]:
    lease = dt.timedelta(seconds=settings.DELIVERY_LEASE_SECONDS)
    return [[mailing_id], mailing_id, [str(state) for state in ACTIVE_STATES], limit, lease, relay_id]


def claim(mailing_id: int, relay_id: int, limit: int) -> list[Claimed]:
    """Take up to `limit` queued Messages of the Mailing under a lease; none another worker holds."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(CLAIM_SQL, claim_params(mailing_id, relay_id, limit))
        rows = cursor.fetchall()
    rows.sort()
    # Django leaves JSONB undecoded on a raw cursor (the field decodes it in the ORM).
    return [
        Claimed(i, e, c, json.loads(d) if isinstance(d, str) else d, turn=h == HoldReason.THROTTLED)
        for i, e, c, d, h in rows
    ]


def release(ids: Sequence[int], state: str, reply: str = "") -> None:
    """Hand back claimed Messages that were never tried (pause: to the queue; cancel or unsendable: skipped)."""
    if not ids:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE delivery_message SET state = %s, lease_expires_at = NULL, smtp_reply = %s "
            "WHERE id = ANY(%s) AND state = 'sending'",
            [state, reply, list(ids)],
        )


def extend_lease(ids: Sequence[int]) -> None:
    """Renew the leases of claimed Messages (a runner's heartbeat). Rows locked right now (their
    outcome being written) are skipped rather than waited for: the next beat renews them."""
    if not ids:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE delivery_message SET lease_expires_at = clock_timestamp() + %s
            WHERE id IN (
                SELECT id FROM delivery_message WHERE id = ANY(%s) AND state = 'sending'
                ORDER BY id FOR UPDATE SKIP LOCKED
            )
            """,
            [dt.timedelta(seconds=settings.DELIVERY_LEASE_SECONDS), list(ids)],
        )


def _check_hold_reason(reason: str) -> None:
    if reason not in HoldReason.values or not reason:
        raise ValueError(f"unknown hold reason {reason!r}")


def hold_in_turn(ids: Sequence[int], start: dt.datetime, interval: float, reason: str) -> None:
    """Claimed Messages wait one after another: the n-th (1-based) until start + n * interval, so
    mail held for a receiving domain's rate comes back at about the pace it may go out."""
    if not ids:
        return
    _check_hold_reason(reason)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE delivery_message AS m SET state = 'deferred', lease_expires_at = NULL, hold_reason = %s,
                next_attempt_at = %s + make_interval(secs => %s * t.n)
            FROM unnest(%s::bigint[]) WITH ORDINALITY AS t(id, n)
            WHERE m.id = t.id AND m.state = 'sending'
            """,
            [reason, start, interval, list(ids)],
        )


def requeue_held(mailing_id: int, reason: str | Sequence[str]) -> tuple[int, float | None]:
    """This Mailing's Messages held for `reason` whose time has come go back to the queue now (a
    runner need not wait for the watchdog); also the seconds until the next one is due. They keep
    their hold reason while queued: a throttled one comes back owning its turn (Claimed.turn)."""
    reasons = [reason] if isinstance(reason, str) else [str(r) for r in reason]
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE delivery_message SET state = 'queued'
            WHERE mailing_id = %s AND state = 'deferred' AND hold_reason = ANY(%s)
              AND next_attempt_at <= clock_timestamp()
            """,
            [mailing_id, reasons],
        )
        requeued = cursor.rowcount
        cursor.execute(
            """
            SELECT EXTRACT(EPOCH FROM MIN(next_attempt_at) - clock_timestamp()) FROM delivery_message
            WHERE mailing_id = %s AND state = 'deferred' AND hold_reason = ANY(%s)
            """,
            [mailing_id, reasons],
        )
        (wait,) = cursor.fetchone()
    return requeued, None if wait is None else max(0.0, float(wait))


def hold(ids: Sequence[int], until: dt.datetime, reason: str) -> None:
    """Claimed Messages wait until `until` for `reason` (a HoldReason); no attempt is counted.

    For the features that hold mail before trying it (sending windows, per-domain throttling,
    warm-up). A relay's deferral is recorded with its reply by `record_outcomes`.
    """
    if not ids:
        return
    _check_hold_reason(reason)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE delivery_message SET state = 'deferred', lease_expires_at = NULL, next_attempt_at = %s, "
            "hold_reason = %s WHERE id = ANY(%s) AND state = 'sending'",
            [until, reason, list(ids)],
        )


def hold_queued(mailing_id: int, until: dt.datetime, reason: str) -> int:
    """Every queued Message of the Mailing waits until `until` for `reason` (a warm-up cap used up:
    nothing of it may go today). Their order is kept: release_held brings them back oldest first."""
    _check_hold_reason(reason)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE delivery_message SET state = 'deferred', next_attempt_at = %s, hold_reason = %s "
            "WHERE mailing_id = %s AND state = 'queued'",
            [until, reason, mailing_id],
        )
        return cursor.rowcount


def release_held(mailing_id: int, reason: str, limit: int) -> int:
    """Up to `limit` of the Mailing's Messages held for `reason` back to the queue, oldest (lowest id)
    first, whatever their not-before time (warm-up: today's caps have room again)."""
    if limit <= 0:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE delivery_message SET state = 'queued', hold_reason = '', next_attempt_at = NULL
            WHERE id IN (
                SELECT id FROM delivery_message
                WHERE mailing_id = %s AND state = 'deferred' AND hold_reason = %s
                ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED
            )
            """,
            [mailing_id, reason, limit],
        )
        return cursor.rowcount


def hold_domains(mailing_id: int, domains: Sequence[str], until: dt.datetime, reason: str) -> int:
    """The Mailing's queued and held Messages to these receiving domains wait until `until` for
    `reason` (the guard pausing one receiving domain group); those being sent now are past stopping."""
    _check_hold_reason(reason)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE delivery_message SET state = 'deferred', next_attempt_at = %s, hold_reason = %s
            WHERE mailing_id = %s AND state IN ('queued', 'deferred')
              AND split_part(lower(email), '@', 2) = ANY(%s)
            """,
            [until, reason, mailing_id, [d.lower() for d in domains]],
        )
        return cursor.rowcount


def release_domains(mailing_id: int, domains: Sequence[str], reason: str) -> int:
    """The Mailing's Messages to these domains held for `reason` go back to the queue."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE delivery_message SET state = 'queued', next_attempt_at = NULL, hold_reason = ''
            WHERE mailing_id = %s AND state = 'deferred' AND hold_reason = %s
              AND split_part(lower(email), '@', 2) = ANY(%s)
            """,
            [mailing_id, reason, [d.lower() for d in domains]],
        )
        return cursor.rowcount


# --- outcomes ---


def record_outcomes(
    mailing_id: int,
    relay_id: int,
    *,
    sent: list[Outcome],
    failed: list[Outcome],
    deferred: list[Outcome],
    returned: list[Outcome],
    now: dt.datetime,
    throttled: Sequence[Outcome] = (),
    throttled_delay: float = 1.0,
) -> None:
    """Write one batch of SMTP outcomes and their events in one transaction.

    throttled: deferred by a receiving domain's rate limit (4.7.x): held `throttled_delay`
    seconds (hold reason "throttled"), not the relay's exponential back-off.

    returned: not tried at all, or cut off by a lost connection: back to the queue; `uncertain`
    ones (the data went and no reply came: it may have been accepted) count an attempt and are
    marked recovered.
    """
    # The common flush, all sent, is one statement: atomic on its own in autocommit, without the
    # BEGIN and COMMIT round trips of a transaction block.
    alone = not (failed or deferred or throttled or returned)
    with contextlib.nullcontext() if alone else transaction.atomic(), connection.cursor() as cursor:
        if sent:
            cursor.execute(
                """
                UPDATE delivery_message AS m SET state = 'sent', sent_at = %s, relay_id = %s,
                    smtp_code = v.code, smtp_reply = v.reply, attempts = m.attempts + 1,
                    lease_expires_at = NULL, next_attempt_at = NULL, hold_reason = ''
                FROM json_to_recordset(%s::json) AS v(id bigint, code smallint, reply text)
                WHERE m.id = v.id
                """,
                [now, relay_id, _outcome_rows(sent)],
            )
        if failed:
            cursor.execute(
                """
                UPDATE delivery_message AS m SET state = 'failed', relay_id = %s,
                    smtp_code = v.code, smtp_reply = v.reply, attempts = m.attempts + 1,
                    lease_expires_at = NULL, next_attempt_at = NULL, hold_reason = ''
                FROM json_to_recordset(%s::json) AS v(id bigint, code smallint, reply text)
                WHERE m.id = v.id
                """,
                [relay_id, _outcome_rows(failed)],
            )
            _failure_events(mailing_id, failed, now)
        if deferred:
            _defer(mailing_id, relay_id, deferred, now)
        if throttled:
            _defer(
                mailing_id, relay_id, list(throttled), now, reason=HoldReason.THROTTLED, delay=throttled_delay
            )
        if returned:
            _update_many(
                """
                UPDATE delivery_message AS m SET state = 'queued', lease_expires_at = NULL,
                    smtp_reply = v.reply,
                    attempts = m.attempts + CASE WHEN v.uncertain::boolean THEN 1 ELSE 0 END,
                    recovered_at = CASE WHEN v.uncertain::boolean THEN %s ELSE m.recovered_at END
                FROM (VALUES {values}) AS v(id, reply, uncertain)
                WHERE m.id = v.id
                """,
                [(o.key, o.reply[:1000], o.uncertain) for o in returned],
                3,
                [now],
            )


def _failure_events(mailing_id: int, failed: list[Outcome], now: dt.datetime) -> None:
    """A `failed` event for each failure that is not the receiving side refusing the recipient.

    A 5xx to RCPT (or to the data) is a bounce: the bounces app records it once, with the
    classifier's kind (`record_bounces`, called through delivery.bounces.services).
    """
    _outcome_events(
        mailing_id, [o for o in failed if o.stage not in REFUSAL_STAGES], MessageEvent.Kind.FAILED, now
    )


def _outcome_events(mailing_id: int, outcomes: list[Outcome], kind: str, now: dt.datetime) -> None:
    MessageEvent.objects.bulk_create(
        MessageEvent(
            message_id=o.key,
            mailing_id=mailing_id,
            kind=kind,
            at=now,
            data={"code": o.code, "reply": o.reply[:1000], "stage": o.stage},
        )
        for o in outcomes
    )


def _defer(
    mailing_id: int,
    relay_id: int,
    deferred: list[Outcome],
    now: dt.datetime,
    *,
    reason: str = HoldReason.RELAY,
    delay: float | None = None,
) -> None:
    """The relay said "later": hold with an exponential back-off (or a fixed `delay`), or fail past
    the maximum age."""
    base, cap = settings.DELIVERY_RETRY_BASE_SECONDS, settings.DELIVERY_RETRY_MAX_SECONDS
    if delay is not None:
        base, cap = 0, delay  # GREATEST(LEAST(0, delay), delay) below: a fixed wait
    _update_many(
        """
        UPDATE delivery_message AS m SET
            state = CASE WHEN m.created_at < %s THEN 'failed' ELSE 'deferred' END,
            hold_reason = CASE WHEN m.created_at < %s THEN '' ELSE %s END,
            relay_id = %s, smtp_code = v.code::smallint, smtp_reply = v.reply::text, attempts = m.attempts + 1,
            lease_expires_at = NULL,
            next_attempt_at = %s + make_interval(secs => GREATEST(LEAST(%s * power(2, LEAST(m.attempts, 20)), %s), %s))
        FROM (VALUES {values}) AS v(id, code, reply)
        WHERE m.id = v.id
        """,
        [(o.key, o.code or None, o.reply[:1000]) for o in deferred],
        3,
        [
            *[now - dt.timedelta(seconds=settings.DELIVERY_MAX_AGE_SECONDS)] * 2,
            str(reason),
            relay_id,
            now,
            base,
            cap,
            delay or 0,
        ],
    )
    _outcome_events(mailing_id, deferred, MessageEvent.Kind.DEFERRED, now)


def message_event_record(
    message_id: int, kind: str, data: dict[str, Any] | None = None, at: dt.datetime | None = None
) -> MessageEvent:
    if kind not in MessageEvent.Kind.values:
        raise ValueError(f"unknown event kind {kind!r}")
    mailing_id = Message.objects.filter(pk=message_id).values_list("mailing_id", flat=True).first()
    if mailing_id is None:
        raise Message.DoesNotExist(f"message {message_id} does not exist")
    return MessageEvent.objects.create(
        message_id=message_id, mailing_id=mailing_id, kind=kind, at=at or timezone.now(), data=data or {}
    )


def record_bounces(events: Sequence[tuple[int, int, str, dict[str, Any], dt.datetime]]) -> int:
    """Events the bounces app attributed to Messages: (message id, mailing id, kind, data, at).

    A `bounced` event's classified kind (data["kind"]) is kept on its Message as `bounce_kind`
    (the last one wins), which is what the reports count. One insert and one update per batch,
    neither waiting for an answer (in the bounce listener's pipeline they share its commit's
    round trip).
    """
    if not events:
        return 0
    from delivery.bounces.bulk import insert_rows_unanswered

    insert_rows_unanswered(MessageEvent, ["message", "mailing", "kind", "data", "at"], events)
    kinds = {
        message_id: data["kind"]
        for message_id, _, kind, data, _ in events
        if kind == MessageEvent.Kind.BOUNCED and data.get("kind") in BOUNCE_KINDS
    }
    if kinds:
        _update_many(
            "UPDATE delivery_message AS m SET bounce_kind = v.kind FROM (VALUES {values}) AS v(id, kind) "
            "WHERE m.id = v.id",
            sorted(kinds.items()),
            2,
            [],
        )
    return len(events)


# --- a Mailing's open Messages ---


def skip_open(mailing_id: int, reply: str) -> int:
    """Cancel: queued and held Messages become skipped (those being sent are handed back by their runner)."""
    return Message.objects.filter(
        mailing_id=mailing_id, state__in=[MessageState.QUEUED, MessageState.DEFERRED]
    ).update(state=MessageState.SKIPPED, smtp_reply=reply, next_attempt_at=None, hold_reason="")


def has_open(mailing_id: int) -> bool:
    return Message.objects.filter(mailing_id=mailing_id, state__in=OPEN_STATES).exists()


def has_queued(mailing_id: int) -> bool:
    return Message.objects.filter(mailing_id=mailing_id, state=MessageState.QUEUED).exists()


# --- recovery and retention (the watchdog and the prune task) ---


def recover_leases(
    maybe_sent: Callable[[int, list[int]], set[int]] | None = None, *, limit: int = 10000
) -> int:
    """Messages whose lease expired (their runner was lost) go back to the queue.

    `maybe_sent(mailing_id, ids)` says which of a Mailing's rows the lost runner may have handed
    to the relay (delivery.inflight): only those are marked `recovered_at` (they may go out twice)
    and count an attempt; rows it never submitted go back unmarked. Without it, every row is named.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT id, mailing_id FROM delivery_message
            WHERE {SENDING_ROWS} AND lease_expires_at < clock_timestamp()
            ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED
            """,  # noqa: S608 - SENDING_ROWS is a constant
            [limit],
        )
        rows = cursor.fetchall()
        if not rows:
            return 0
        by_mailing: dict[int, list[int]] = {}
        for message_id, mailing_id in rows:
            by_mailing.setdefault(mailing_id, []).append(message_id)
        named: set[int] = set()
        for mailing_id, ids in by_mailing.items():
            named |= set(ids) if maybe_sent is None else maybe_sent(mailing_id, ids)
        cursor.execute(
            """
            UPDATE delivery_message SET state = 'queued', lease_expires_at = NULL,
                recovered_at = CASE WHEN id = ANY(%s) THEN clock_timestamp() ELSE recovered_at END,
                attempts = attempts + CASE WHEN id = ANY(%s) THEN 1 ELSE 0 END
            WHERE id = ANY(%s)
            """,
            [sorted(named), sorted(named), [row[0] for row in rows]],
        )
        return cursor.rowcount


def requeue_due() -> int:
    """Held Messages whose time has come go back to the queue; ones older than the maximum age fail
    (not those a warm-up holds, never tried; nor those the guard holds until a person resumes them)."""
    max_age = dt.timedelta(seconds=settings.DELIVERY_MAX_AGE_SECONDS)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE delivery_message SET state = 'failed', next_attempt_at = NULL, hold_reason = '',
                smtp_reply = 'gave up: still deferred after the maximum age. Last reply: ' || smtp_reply
            -- Mail a warm-up, a sending window, the guard or a frequency cap holds was never tried:
            -- the age limit is for retries.
            WHERE state = 'deferred' AND created_at < clock_timestamp() - %s
              AND hold_reason NOT IN ('warmup', 'window', 'guard', 'frequency')
            """,
            [max_age],
        )
        cursor.execute(
            """
            UPDATE delivery_message SET state = 'queued', hold_reason = ''
            WHERE state = 'deferred' AND next_attempt_at <= clock_timestamp() AND hold_reason <> 'guard'
            """
        )
        return cursor.rowcount


def prune(
    *, days: int | None = None, batch: int | None = None, on_batch: Callable[[float], None] | None = None
) -> int:
    """Delete ledger rows (and their events) older than the retention; finished Mailings only.

    The ledger cannot be partitioned by time (its unique constraints, send group and contact, and
    the idempotency key, cannot include a time column), so it is pruned in short transactions of
    `batch` rows (DELIVERY_PRUNE_BATCH): each holds its row locks for tens of milliseconds, so a
    bounce, a click or a runner touching one of those rows never waits long. Rows another
    transaction holds are skipped (SKIP LOCKED), left for the next run, never waited for.
    `on_batch` is given each transaction's duration in ms (the benchmark's longest lock).
    """
    days = settings.DELIVERY_RETENTION_DAYS if days is None else days
    batch = settings.DELIVERY_PRUNE_BATCH if batch is None else batch
    if days <= 0:
        return 0
    cutoff = timezone.now() - dt.timedelta(days=days)
    # Old events first (opens and clicks pile up, also on kept Messages), then the old Messages
    # with whatever events they still have. In this order neither pass walks over the index
    # entries of rows the other deleted (dead until the next vacuum): events last, after the
    # Messages took theirs, spent a quarter of a second on those before finding nothing.
    _in_batches(_OLD_EVENTS, cutoff, batch, on_batch)
    total = _in_batches(_OLD_MESSAGES, cutoff, batch, on_batch)
    Mailing.objects.filter(
        state__in=[Mailing.State.DONE, Mailing.State.CANCELLED], finished_at__lt=cutoff, messages__isnull=True
    ).delete()
    return total


# Each takes (cutoff, after, batch) and returns (rows deleted, the last time it reached). `after`
# is a keyset on the time: each batch starts where the last stopped instead of walking again over
# the entries of rows already deleted.
_OLD_EVENTS = """
    WITH doomed AS MATERIALIZED (
        SELECT id, at FROM delivery_messageevent
        WHERE at < %s AND at >= coalesce(%s, '-infinity'::timestamptz)
        ORDER BY at LIMIT %s FOR UPDATE SKIP LOCKED
    ), gone AS (
        DELETE FROM delivery_messageevent WHERE id IN (SELECT id FROM doomed) RETURNING id
    )
    SELECT (SELECT count(*) FROM gone), (SELECT max(at) FROM doomed)
"""
_OLD_MESSAGES = """
    WITH doomed AS MATERIALIZED (
        SELECT id, created_at FROM delivery_message
        WHERE created_at < %s AND created_at >= coalesce(%s, '-infinity'::timestamptz)
          AND state IN ('sent', 'failed', 'skipped')
        ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED
    ), events AS (
        DELETE FROM delivery_messageevent WHERE message_id IN (SELECT id FROM doomed)
    ), gone AS (
        DELETE FROM delivery_message WHERE id IN (SELECT id FROM doomed) RETURNING id
    )
    SELECT (SELECT count(*) FROM gone), (SELECT max(created_at) FROM doomed)
"""


def _in_batches(sql: str, cutoff: dt.datetime, batch: int, on_batch: Callable[[float], None] | None) -> int:
    total = 0
    after = None
    while True:
        begin = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [cutoff, after, batch])
            deleted, after = cursor.fetchone()
        if on_batch is not None:
            on_batch((time.perf_counter() - begin) * 1000)
        total += deleted
        if deleted < batch:
            return total
