"""The send loop: claim a batch under a lease, build each message, pipeline it to a relay, record.

A *runner* (one `send_mailing` task) works one Mailing through one relay connection at a time:

  choose a relay (weighted, backed-off ones skipped) and take one of its connection slots
  -> claim up to a batch of queued Messages with FOR UPDATE SKIP LOCKED, under a lease
  -> drop those whose contact became unsendable since planning (claim-time re-check)
  -> stream them through the pipelined SMTP session, paced by the relay's token bucket
  -> write outcomes every few dozen messages or fraction of a second, and read the Mailing's
     state at the same moments (pause and cancel take effect there)

A crash (worker killed) leaves its claimed rows in `sending`; when their lease expires the
watchdog puts them back in the queue marked `recovered_at`: at most those submitted since
the last outcome write can go out twice, and the ledger names every candidate.

How many runners work a Mailing is bounded by a semaphore in Redis (`DELIVERY_PARALLEL`),
and how many connections a relay gets by the relay's own semaphore, across all hosts.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from delivery import ratelimit, services, verp
from delivery.compose import MessageBuilder, Recipient
from delivery.dkim import DkimSigner
from delivery.models import Mailing, Message, MessageEvent, MessageState, Relay
from delivery.smtp import DEFERRED, FAILED, SENT, Envelope, Outcome, RelayConnection, RelayError
from mailplatform import crypto
from mailplatform.redis_cache import redis_client

log = logging.getLogger(__name__)

ACTIVE_STATES = (Mailing.State.SENDING, Mailing.State.STANDING)


# --- runners: how many tasks work one Mailing ---


def _runner_key(mailing_id: int) -> str:
    return f"{settings.CACHES['default'].get('KEY_PREFIX', 'posthorn')}:delivery:mailing:{mailing_id}:runners"


def _runner_slot(mailing_id: int, token: str, lease: float) -> ratelimit.ConnectionSlot:
    slot = ratelimit.ConnectionSlot(0, settings.DELIVERY_PARALLEL, lease)
    slot.key = _runner_key(mailing_id)
    slot.token = token
    return slot


def dispatch(mailing_id: int) -> int:
    """Enqueue runners for a Mailing up to DELIVERY_PARALLEL (fewer when its relays allow fewer)."""
    from delivery.tasks import send_mailing

    relays = _pool(mailing_id)
    connections = sum(r.max_connections for r in relays) or 1
    wanted = min(settings.DELIVERY_PARALLEL, connections)
    started = 0
    for _ in range(wanted):
        token = services.new_runner_token()
        # A queued task holds its slot for a while so the watchdog does not pile up duplicates;
        # one that never starts (its worker died holding it) frees the slot when this runs out.
        slot = _runner_slot(mailing_id, token, lease=max(120, settings.DELIVERY_LEASE_SECONDS))
        slot.limit = wanted
        if slot.acquire() != 0.0:
            break
        send_mailing.delay(mailing_id, token)
        started += 1
    return started


def runner_handover(mailing_id: int, token: str) -> None:
    """A runner out of time queues its successor, which keeps its slot while it waits in the queue."""
    from delivery.tasks import send_mailing

    slot = _runner_slot(mailing_id, token, lease=max(120, settings.DELIVERY_LEASE_SECONDS))
    if slot.refresh():
        send_mailing.delay(mailing_id, token)


def _pool(mailing_id: int) -> list[Relay]:
    mailing_relays = list(Relay.objects.filter(mailings__id=mailing_id, enabled=True))
    if mailing_relays:
        return mailing_relays
    if Relay.objects.filter(mailings__id=mailing_id).exists():
        return []  # a pool was chosen and every relay in it is disabled
    return list(Relay.objects.filter(enabled=True))


# --- per-process caches ---

_builders: dict[int, tuple[str, MessageBuilder]] = {}


def builder_for(mailing: Mailing) -> MessageBuilder:
    cached = _builders.get(mailing.pk)
    if cached is not None and cached[0] == mailing.compiled_sha:
        return cached[1]
    signer = None
    identity = mailing.identity
    if identity is not None and identity.has_dkim:
        signer = DkimSigner(
            identity.domain, identity.dkim_selector, crypto.decrypt(identity.dkim_private_key_encrypted)
        )
    builder = MessageBuilder(
        mailing_id=mailing.pk,
        from_email=mailing.from_email,
        from_name=mailing.from_name,
        reply_to=mailing.reply_to,
        list_ids=list(mailing.list_ids),
        kind=mailing.kind,
        send_group=mailing.send_group,
        extra_headers=dict(mailing.headers),
        compiled=mailing.compiled,
        signer=signer,
        track_opens=mailing.track_opens,
        track_clicks=mailing.track_clicks,
    )
    if len(_builders) > 50:
        _builders.clear()
    _builders[mailing.pk] = (mailing.compiled_sha, builder)
    return builder


# --- claiming and recording ---


@dataclass(slots=True)
class Claimed:
    id: int
    email: str
    contact_id: int | None
    data: dict[str, Any] | None


def claim(mailing_id: int, relay_id: int, limit: int) -> list[Claimed]:
    """Take up to `limit` queued Messages of the Mailing under a lease; none another worker holds."""
    lease = dt.timedelta(seconds=settings.DELIVERY_LEASE_SECONDS)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE delivery_message m
            SET state = 'sending', lease_expires_at = clock_timestamp() + %s, relay_id = %s
            WHERE m.id IN (
                SELECT id FROM delivery_message
                WHERE mailing_id = %s AND state = 'queued'
                  -- Pause and cancel take effect between batches: a stopped Mailing yields nothing.
                  AND EXISTS (
                      SELECT 1 FROM delivery_mailing g WHERE g.id = mailing_id AND g.state = ANY(%s)
                  )
                ORDER BY id
                LIMIT %s
                FOR UPDATE SKIP LOCKED
            )
            RETURNING m.id, m.email, m.contact_id, m.data
            """,
            [lease, relay_id, mailing_id, [str(state) for state in ACTIVE_STATES], limit],
        )
        rows = cursor.fetchall()
    rows.sort()
    # Django leaves JSONB undecoded on a raw cursor (the field decodes it in the ORM).
    return [Claimed(i, e, c, json.loads(d) if isinstance(d, str) else d) for i, e, c, d in rows]


def _update_many(sql_set: str, rows: list[tuple], width: int, extra: list[Any]) -> None:
    values, params = services._values(rows, width)
    with connection.cursor() as cursor:
        cursor.execute(sql_set.format(values=values), [*extra, *params])


@dataclass
class Recorder:
    """Buffers outcomes and writes them in small batches."""

    mailing: Mailing
    relay_id: int
    buffer: list[Outcome] = field(default_factory=list)
    contact_of: dict[int, int | None] = field(default_factory=dict)
    last_flush: float = field(default_factory=time.monotonic)
    sent_total: int = 0
    # Engagement (contacts.last_sent_at) is written once per batch, not at every outcome write.
    sent_contacts: list[int] = field(default_factory=list)

    def record_engagement(self) -> None:
        if self.sent_contacts:
            from contacts.services import contacts_record_sent

            contacts_record_sent(self.sent_contacts, timezone.now())
            self.sent_contacts = []

    def add(self, outcome: Outcome) -> None:
        self.buffer.append(outcome)

    def due(self) -> bool:
        return len(self.buffer) >= settings.DELIVERY_OUTCOME_FLUSH_MESSAGES or (
            self.buffer and (time.monotonic() - self.last_flush) * 1000 >= settings.DELIVERY_OUTCOME_FLUSH_MS
        )

    def flush(self) -> None:
        self.last_flush = time.monotonic()
        if not self.buffer:
            return
        outcomes, self.buffer = self.buffer, []
        now = timezone.now()
        sent = [o for o in outcomes if o.status == SENT]
        failed = [o for o in outcomes if o.status == FAILED]
        deferred = [o for o in outcomes if o.status == DEFERRED and o.stage != "connection"]
        # Not tried at all, or cut off by a lost connection: back to the queue, no attempt counted.
        returned = [o for o in outcomes if o.status == DEFERRED and o.stage == "connection"]
        with transaction.atomic():
            if sent:
                _update_many(
                    """
                    UPDATE delivery_message AS m SET state = 'sent', sent_at = %s, relay_id = %s,
                        smtp_code = v.code::smallint, smtp_reply = v.reply::text, attempts = m.attempts + 1,
                        lease_expires_at = NULL, next_attempt_at = NULL
                    FROM (VALUES {values}) AS v(id, code, reply)
                    WHERE m.id = v.id
                    """,
                    [(o.key, o.code, o.reply[:1000]) for o in sent],
                    3,
                    [now, self.relay_id],
                )
            if failed:
                _update_many(
                    """
                    UPDATE delivery_message AS m SET state = 'failed', relay_id = %s,
                        smtp_code = v.code::smallint, smtp_reply = v.reply::text, attempts = m.attempts + 1,
                        lease_expires_at = NULL, next_attempt_at = NULL
                    FROM (VALUES {values}) AS v(id, code, reply)
                    WHERE m.id = v.id
                    """,
                    [(o.key, o.code or None, o.reply[:1000]) for o in failed],
                    3,
                    [self.relay_id],
                )
                self._events(failed, now)
            if deferred:
                self._defer(deferred, now)
            if returned:
                _update_many(
                    """
                    UPDATE delivery_message AS m SET state = 'queued', lease_expires_at = NULL,
                        smtp_reply = v.reply,
                        recovered_at = CASE WHEN v.uncertain::boolean THEN %s ELSE m.recovered_at END
                    FROM (VALUES {values}) AS v(id, reply, uncertain)
                    WHERE m.id = v.id
                    """,
                    [(o.key, o.reply[:1000], o.uncertain) for o in returned],
                    3,
                    [now],
                )
        if sent:
            self.sent_contacts.extend(c for c in (self.contact_of.get(o.key) for o in sent) if c is not None)
            self.sent_total += len(sent)
            _count_sent(self.mailing.pk, len(sent))
        if failed:
            rejected = [o for o in failed if o.stage in ("rcpt", "data", "mail")]
            if rejected:
                from delivery.signals import smtp_rejected

                for outcome in rejected:
                    smtp_rejected.send(
                        sender=Mailing,
                        message_id=outcome.key,
                        code=outcome.code,
                        reply=outcome.reply,
                        stage=outcome.stage,
                    )

    def _events(self, failed: list[Outcome], now: dt.datetime) -> None:
        events = []
        for outcome in failed:
            data = {"code": outcome.code, "reply": outcome.reply[:1000], "stage": outcome.stage}
            # A 5xx to RCPT (or to the data) is the receiving side refusing this recipient: a bounce.
            kind = (
                MessageEvent.Kind.BOUNCED if outcome.stage in ("rcpt", "data") else MessageEvent.Kind.FAILED
            )
            events.append(
                MessageEvent(message_id=outcome.key, mailing_id=self.mailing.pk, kind=kind, at=now, data=data)
            )
        MessageEvent.objects.bulk_create(events)

    def _defer(self, deferred: list[Outcome], now: dt.datetime) -> None:
        base, cap = settings.DELIVERY_RETRY_BASE_SECONDS, settings.DELIVERY_RETRY_MAX_SECONDS
        _update_many(
            """
            UPDATE delivery_message AS m SET
                state = CASE WHEN m.created_at < %s THEN 'failed' ELSE 'deferred' END,
                relay_id = %s, smtp_code = v.code::smallint, smtp_reply = v.reply::text, attempts = m.attempts + 1,
                lease_expires_at = NULL,
                next_attempt_at = %s + make_interval(secs => LEAST(%s * power(2, LEAST(m.attempts, 20)), %s))
            FROM (VALUES {values}) AS v(id, code, reply)
            WHERE m.id = v.id
            """,
            [(o.key, o.code or None, o.reply[:1000]) for o in deferred],
            3,
            [now - dt.timedelta(seconds=settings.DELIVERY_MAX_AGE_SECONDS), self.relay_id, now, base, cap],
        )
        MessageEvent.objects.bulk_create(
            MessageEvent(
                message_id=o.key,
                mailing_id=self.mailing.pk,
                kind=MessageEvent.Kind.DEFERRED,
                at=now,
                data={"code": o.code, "reply": o.reply[:1000], "stage": o.stage},
            )
            for o in deferred
        )


def _rate_key(mailing_id: int, second: int) -> str:
    return f"{settings.CACHES['default'].get('KEY_PREFIX', 'posthorn')}:delivery:mailing:{mailing_id}:sent:{second}"


def _count_sent(mailing_id: int, count: int) -> None:
    key = _rate_key(mailing_id, int(time.time()))
    pipe = redis_client().pipeline()
    pipe.incrby(key, count)
    pipe.expire(key, 120)
    pipe.execute()


def recent_rate(mailing_id: int, window: int = 10) -> float:
    now = int(time.time())
    values = redis_client().mget([_rate_key(mailing_id, now - i) for i in range(1, window + 1)])
    return sum(int(v or 0) for v in values) / window


def _mailing_state(mailing_id: int) -> str | None:
    return Mailing.objects.filter(pk=mailing_id).values_list("state", flat=True).first()


def _release(ids: list[int], state: str, reply: str = "") -> None:
    """Hand back claimed Messages that were never tried (pause: to the queue; cancel: skipped)."""
    if not ids:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE delivery_message SET state = %s, lease_expires_at = NULL, smtp_reply = %s "
            "WHERE id = ANY(%s) AND state = 'sending'",
            [state, reply, ids],
        )


def _extend_lease(ids: list[int]) -> None:
    if not ids:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE delivery_message SET lease_expires_at = clock_timestamp() + %s WHERE id = ANY(%s) AND state = 'sending'",
            [dt.timedelta(seconds=settings.DELIVERY_LEASE_SECONDS), ids],
        )


def _skip_unsendable(mailing: Mailing, batch: list[Claimed]) -> list[Claimed]:
    """Claim-time re-check: an unsubscribe or bounce since planning stops mail already queued."""
    from contacts.selectors import address_is_suppressed, unsendable_contact_ids

    transactional = mailing.kind == Mailing.Kind.TRANSACTIONAL
    contact_ids = [c.contact_id for c in batch if c.contact_id is not None]
    blocked_contacts = (
        unsendable_contact_ids(contact_ids, transactional=transactional) if contact_ids else set()
    )
    keep, skipped = [], []
    for item in batch:
        if item.contact_id is not None and item.contact_id in blocked_contacts:
            skipped.append(item.id)
        elif item.contact_id is None and address_is_suppressed(item.email):
            skipped.append(item.id)
        else:
            keep.append(item)
    _release(skipped, MessageState.SKIPPED, "not sent: the contact became unsendable before sending")
    return keep


def _contexts(
    mailing: Mailing, builder: MessageBuilder, batch: list[Claimed], tokens: dict[int, str]
) -> dict[int, dict[str, Any]]:
    from contacts.selectors import contact_merge_data
    from contacts.tokens import preferences_url
    from templates.context import recipient_context

    merge = contact_merge_data([c.contact_id for c in batch if c.contact_id is not None])
    # Signing a preferences link costs ~40 µs; only templates that show one pay for it.
    wants_preferences = builder.uses is None or "preferences_url" in builder.uses
    contexts = {}
    # A test send renders as the contact the person chose; only a test Mailing may ask for that.
    is_test = bool((mailing.meta or {}).get("test"))
    for item in batch:
        contact = merge.get(item.contact_id) if item.contact_id is not None else None
        if is_test and isinstance((item.data or {}).get("__contact__"), dict):
            contact = item.data["__contact__"]
        unsubscribe = builder.unsubscribe_url(item.id, tokens[item.id])
        urls = {
            "unsubscribe_url": unsubscribe,
            "preferences_url": preferences_url(item.contact_id)
            if item.contact_id is not None and wants_preferences
            else unsubscribe,
        }
        extra = {k: v for k, v in (item.data or {}).items() if not k.startswith("__")}
        try:
            contexts[item.id] = recipient_context(
                contact=contact or {"email": item.email}, urls=urls, extra=extra
            )
        except ValueError:
            # Transactional data that clashes with a reserved name: the caller's data loses.
            safe = {k: v for k, v in extra.items() if k not in ("contact", *urls, "view_in_browser_url")}
            contexts[item.id] = recipient_context(
                contact=contact or {"email": item.email}, urls=urls, extra=safe
            )
    return contexts


# --- relay choice and connections ---


def choose_relay(relays: list[Relay], exclude: set[int]) -> Relay | None:
    now = timezone.now()
    usable = [
        r for r in relays if r.pk not in exclude and (r.backed_off_until is None or r.backed_off_until <= now)
    ]
    if not usable:
        return None
    return random.choices(usable, weights=[max(r.weight, 1) for r in usable])[0]


def _limits(relay: Relay) -> ratelimit.Limits:
    return ratelimit.Limits(
        per_second=relay.per_second, burst=relay.burst, per_hour=relay.per_hour, per_day=relay.per_day
    )


def open_connection(relay: Relay) -> RelayConnection:
    connection_ = RelayConnection(
        relay.host,
        relay.port,
        security=relay.security,
        verify_certificate=relay.verify_certificate,
        username=relay.username,
        password=services.relay_password(relay),
        helo_name=relay.helo_name,
        timeout=settings.DELIVERY_SMTP_TIMEOUT,
    )
    connection_.open()
    return connection_


@dataclass
class RunResult:
    sent: int = 0
    claimed: int = 0
    finished: bool = False
    reason: str = ""


def run(mailing_id: int, token: str | None, *, seconds: float | None = None) -> RunResult:
    """One runner's turn on a Mailing; returns why it stopped. Re-enqueueing is the task's job.

    `token` names the runner's slot (tasks); None runs outside the DELIVERY_PARALLEL bound (drain).
    """
    budget = settings.DELIVERY_TASK_SECONDS if seconds is None else seconds
    deadline = time.monotonic() + budget
    result = RunResult()
    # The slot only bounds parallelism (the Message leases guard correctness), so it lives as long
    # as a Message lease: a killed runner's place is free as soon as its Messages are.
    runner = _runner_slot(mailing_id, token or "", lease=settings.DELIVERY_LEASE_SECONDS)
    if token is not None:
        if not runner.refresh():
            result.reason = "enough runners already"
            return result
        runner.held = True
    tried: set[int] = set()
    try:
        while time.monotonic() < deadline:
            mailing = Mailing.objects.select_related("identity").filter(pk=mailing_id).first()
            if mailing is None or mailing.state not in ACTIVE_STATES:
                result.reason = f"mailing is {mailing.state if mailing else 'gone'}"
                return result
            relays = _pool(mailing_id)
            relay = choose_relay(relays, tried)
            if relay is None:
                if not relays:
                    services.mailing_set_error(
                        mailing_id, "no enabled relay: add or enable one under Delivery > Relays"
                    )
                    result.reason = "no relay"
                    return result
                if tried:
                    tried.clear()
                    continue
                # Every relay is backed off: say so on the Mailing, and let the watchdog come back later.
                errors = "; ".join(f"{r.name}: {r.last_error}" for r in relays if r.last_error)
                services.mailing_set_error(mailing_id, f"every relay is failing, retrying later. {errors}")
                result.reason = "all relays backed off"
                return result
            slot = ratelimit.ConnectionSlot(relay.pk, relay.max_connections, settings.DELIVERY_LEASE_SECONDS)
            wait = slot.acquire()
            if wait:
                tried.add(relay.pk)
                if len(tried) >= len(relays):
                    tried.clear()
                    time.sleep(min(wait, 1.0, max(0.0, deadline - time.monotonic())))
                continue
            try:
                outcome = _work_relay(mailing, relay, slot, runner, deadline, result)
            finally:
                slot.release()
            if outcome == "relay failed":
                tried.add(relay.pk)
                continue
            if outcome in ("empty", "stopped"):
                break
        if result.reason == "empty" and mailing_id:
            result.finished = services.mailing_finish_if_done(mailing_id)
        return result
    finally:
        if result.reason != "time":
            runner.release()


def _work_relay(
    mailing: Mailing,
    relay: Relay,
    slot: ratelimit.ConnectionSlot,
    runner: ratelimit.ConnectionSlot,
    deadline: float,
    result: RunResult,
) -> str:
    """Send batches of one Mailing over one connection to `relay` until done, stopped or out of time."""
    try:
        builder = builder_for(mailing)
    except Exception as exc:  # a snapshot that cannot be built does not get better by retrying
        services.mailing_set_error(mailing.pk, f"this mailing's messages cannot be built: {exc}")
        result.reason = "build error"
        return "stopped"
    try:
        smtp = open_connection(relay)
    except RelayError as exc:
        message = f"relay {relay.name}: {exc}"
        services.relay_record_failure(relay.pk, str(exc))
        services.mailing_set_error(mailing.pk, message)
        log.warning("mailing %s: %s", mailing.pk, message)
        return "relay failed"
    if relay.consecutive_failures or relay.capabilities != smtp.info.esmtp:
        services.relay_record_success(relay.pk, smtp.info.esmtp)
    if mailing.last_error:
        services.mailing_set_error(mailing.pk, "")
    limits = _limits(relay)
    try:
        while True:
            if time.monotonic() >= deadline:
                result.reason = "time"
                return "time"
            size = settings.DELIVERY_BATCH_SIZE
            if limits.per_second > 0:
                # Never claim more than can go out well within the lease.
                size = max(1, min(size, int(limits.per_second * settings.DELIVERY_LEASE_SECONDS / 4)))
            batch = claim(mailing.pk, relay.pk, size)
            if not batch:
                result.reason = "empty"
                return "empty"
            result.claimed += len(batch)
            batch = _skip_unsendable(mailing, batch)
            if not batch:
                continue
            stop = _send_batch(mailing, relay, smtp, builder, limits, batch, slot, runner, deadline, result)
            if stop:
                return stop
            if not smtp.is_open:
                return "relay failed"
    finally:
        smtp.close()


def _send_batch(
    mailing: Mailing,
    relay: Relay,
    smtp: RelayConnection,
    builder: MessageBuilder,
    limits: ratelimit.Limits,
    batch: list[Claimed],
    slot: ratelimit.ConnectionSlot,
    runner: ratelimit.ConnectionSlot,
    deadline: float,
    result: RunResult,
) -> str:
    """Stream one claimed batch; returns "" to go on, or why to stop."""
    tokens = {c.id: verp.message_token(c.id, "unsubscribe") for c in batch}
    contexts = _contexts(mailing, builder, batch, tokens)
    recorder = Recorder(mailing=mailing, relay_id=relay.pk, contact_of={c.id: c.contact_id for c in batch})
    mail_from = {c.id: verp.verp_address(c.id).encode() for c in batch}
    untried = {c.id for c in batch}
    control = {"stop": "", "tokens": 0, "lease_at": time.monotonic(), "state_at": time.monotonic()}
    lease_refresh = settings.DELIVERY_LEASE_SECONDS / 3

    def envelopes() -> Iterator[Envelope]:
        for item in batch:
            if control["stop"]:
                return
            while control["tokens"] <= 0:
                granted, wait = ratelimit.take(relay.pk, min(50, len(untried)), limits)
                if granted:
                    control["tokens"] = granted
                    break
                if time.monotonic() + wait > deadline + settings.DELIVERY_LEASE_SECONDS / 2:
                    control["stop"] = "rate limited"
                    return
                time.sleep(min(wait, 1.0))
                _check(control)
                if control["stop"]:
                    return
            untried.discard(item.id)
            try:
                data = builder.build(Recipient(item.id, item.email, contexts[item.id], tokens[item.id]))
            except Exception as exc:  # one recipient's data (a Liquid limit, say) must not stop the rest
                log.warning("message %s could not be built: %s", item.id, exc)
                recorder.add(
                    Outcome(item.id, FAILED, 0, f"could not build the message: {exc}"[:1000], "build")
                )
                continue
            control["tokens"] -= 1
            yield Envelope(item.id, mail_from[item.id], item.email.encode(), data)

    def _check(ctl: dict[str, Any]) -> None:
        # Pause and cancel are read a few times a second, not at every write.
        if time.monotonic() - ctl["state_at"] >= 0.3:
            ctl["state_at"] = time.monotonic()
            state = _mailing_state(mailing.pk)
            if state not in ACTIVE_STATES:
                ctl["stop"] = f"mailing {state}"
        if time.monotonic() - ctl["lease_at"] > lease_refresh:
            ctl["lease_at"] = time.monotonic()
            _extend_lease(list(untried) + [o.key for o in recorder.buffer])
            slot.refresh()
            if runner.held:
                runner.refresh()

    relay_failure = ""
    for outcome in smtp.send(envelopes()):
        recorder.add(outcome)
        if outcome.stage == "connection" and not relay_failure:
            relay_failure = outcome.reply
        elif outcome.code == 421 and not relay_failure:
            relay_failure = f"{outcome.code} {outcome.reply}"
        if recorder.due():
            recorder.flush()
            _check(control)
    recorder.flush()
    recorder.record_engagement()
    result.sent += recorder.sent_total
    # Whatever was claimed and never handed to the relay goes back (or is skipped on cancel).
    state = _mailing_state(mailing.pk)
    if state == Mailing.State.CANCELLED:
        _release(list(untried), MessageState.SKIPPED, "mailing cancelled")
    else:
        _release(list(untried), MessageState.QUEUED)
    if relay_failure:
        services.relay_record_failure(relay.pk, relay_failure)
        services.mailing_set_error(mailing.pk, f"relay {relay.name}: {relay_failure}")
        return ""
    if control["stop"]:
        result.reason = control["stop"]
        return "stopped"
    return ""


def watchdog() -> dict[str, int]:
    """The beat task's work: recover expired leases, requeue due deferrals, restart stalled mailings."""
    recovered = services.leases_recover()
    requeued = services.deferred_requeue()
    dispatched = 0
    # A handful of open Mailings, each checked through the claim index: cheap at any ledger size.
    open_mailings = Mailing.objects.filter(state__in=ACTIVE_STATES).values_list("pk", flat=True)
    waiting = [
        m for m in open_mailings if Message.objects.filter(mailing_id=m, state=MessageState.QUEUED).exists()
    ]
    for mailing_id in waiting:
        dispatched += dispatch(mailing_id)
    # Mailings whose last Messages were deferred and then failed finish here.
    for mailing_id in Mailing.objects.filter(state=Mailing.State.SENDING).values_list("pk", flat=True):
        if mailing_id not in waiting:
            services.mailing_finish_if_done(mailing_id)
    return {"recovered": recovered, "requeued": requeued, "dispatched": dispatched}


def drain(mailing_id: int, *, progress: Any = None, seconds: float | None = None) -> RunResult:
    """Send a Mailing in this process until nothing is left to claim (management commands, tests).

    `progress`, when given, is called with the number sent after each runner turn.
    """
    total = RunResult()
    deadline = None if seconds is None else time.monotonic() + seconds
    while deadline is None or time.monotonic() < deadline:
        turn = settings.DELIVERY_TASK_SECONDS if deadline is None else max(0.1, deadline - time.monotonic())
        result = run(mailing_id, None, seconds=turn)
        total.sent += result.sent
        total.claimed += result.claimed
        total.finished = total.finished or result.finished
        total.reason = result.reason
        if progress is not None:
            progress(result.sent)
        if result.reason != "time":
            break
    return total
