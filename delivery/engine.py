"""The send loop: claim a batch under a lease, build each message, pipeline it to a relay, record.

A *runner* (one `send_mailing` task) works one Mailing through one relay connection at a time:

  choose a relay (weighted; backed-off ones skipped, one runner probes a relay whose wait is over)
  and take one of its connection slots
  -> claim up to a batch of queued Messages with FOR UPDATE SKIP LOCKED, under a lease
  -> drop those that must not get this Mailing any more (delivery.eligibility, the claim-time
     re-check: contact status, suppressions, the subscription to the Mailing's lists)
  -> stream them through the pipelined SMTP session, paced by the relay's token bucket, announcing
     each chunk as in flight (delivery.inflight) before it goes
  -> write outcomes every few dozen messages or fraction of a second, and read the Mailing's
     state and the worker's stop flag at the same moments (pause, cancel, SIGTERM take effect there)

Faults (issue #20):
- A heartbeat thread (delivery.liveness) renews the runner's leases and slots every few seconds,
  so a killed worker's rows and slots are free DELIVERY_LEASE_SECONDS after its last beat. The
  watchdog then puts its rows back in the queue, marking `recovered_at` (may have gone twice) on
  exactly those it had announced and not recorded.
- A SIGTERM'd worker's runners stop at the next message: what is on the wire is answered and
  recorded, the rest of the batch goes back to the queue, the slot passes to a queued successor.
- A dropped database connection is reconnected and the step retried (`_retrying`): outcomes held
  in memory are written, not lost; only if they cannot be written for long do their rows come back
  through lease recovery, named.

How many runners work a Mailing is bounded by a semaphore in Redis (`DELIVERY_PARALLEL`),
and how many connections a relay gets by the relay's own semaphore, across all hosts.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from delivery import (
    domains,
    eligibility,
    inflight,
    ledger,
    liveness,
    ratelimit,
    relayhealth,
    relays,
    runners,
    verp,
    warmup,
    webversion,
    windows,
)
from delivery import metrics as delivery_metrics
from delivery.compose import MessageBuilder, Recipient
from delivery.dkim import DkimSigner
from delivery.ledger import ACTIVE_STATES, Claimed
from delivery.mailings import GUARD_HOLD, mailing_clear_error, mailing_finish_if_done, mailing_set_error
from delivery.models import GroupPause, HoldReason, Mailing, MessageState, Relay
from delivery.smtp import DEFERRED, FAILED, SENT, Envelope, Outcome, RelayConnection, RelayError
from mailplatform import crypto, logs
from mailplatform.redis_cache import redis_client

log = logging.getLogger(__name__)

T = TypeVar("T")
# Waits between tries of a database step whose connection dropped: ~15 s in all, within a lease.
_RECONNECT_DELAYS = (0.1, 0.3, 1, 2, 4, 8)


def _retrying(step: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a database step; when the connection drops (pg_terminate_backend, a failover, a restart),
    reconnect and run it again. Every step retried here is one transaction, or safe to repeat."""
    for delay in (*_RECONNECT_DELAYS, None):
        try:
            return step(*args, **kwargs)
        except (OperationalError, InterfaceError):
            if delay is None or connection.in_atomic_block:
                raise
            log.warning("database connection lost in %s; reconnecting", step.__name__, exc_info=True)
            connection.close()
            time.sleep(delay)
    raise AssertionError("unreachable")


class Holdings:
    """What a runner holds (claimed rows, slots), renewed by its heartbeat thread."""

    def __init__(self) -> None:
        self.ids: set[int] = set()
        self._semaphores: list[ratelimit.Semaphore] = []
        self._lock = threading.Lock()

    def hold(self, semaphore: ratelimit.Semaphore) -> None:
        with self._lock:
            self._semaphores.append(semaphore)

    def release(self, semaphore: ratelimit.Semaphore) -> None:
        # Under the lock: a renewal running now must not take the released place again.
        with self._lock:
            if semaphore in self._semaphores:
                self._semaphores.remove(semaphore)
            semaphore.release()

    def renew(self) -> None:
        ledger.extend_lease(sorted(self.ids.copy()))
        with self._lock:
            for semaphore in self._semaphores:
                semaphore.refresh()


# A batch's size while mail held for a receiving domain's pace is pending (it is requeued between batches).
HELD_BATCH_SIZE = 100

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


# --- recording outcomes ---


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
    holdings: Holdings | None = None

    def record_engagement(self) -> None:
        if self.sent_contacts:
            from contacts.services import contacts_record_sent

            _retrying(contacts_record_sent, self.sent_contacts, timezone.now(), mailing_id=self.mailing.pk)
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
        outcomes = self.buffer
        now = timezone.now()
        sent = [o for o in outcomes if o.status == SENT]
        failed = [o for o in outcomes if o.status == FAILED]
        deferred = [o for o in outcomes if o.status == DEFERRED and o.stage != "connection"]
        # A receiving domain's rate limit: a short hold, not the relay's exponential back-off.
        throttled = [o for o in deferred if o.domain_throttled]
        deferred = [o for o in deferred if not o.domain_throttled]
        # Not tried at all, or cut off by a lost connection: back to the queue (ledger.record_outcomes).
        returned = [o for o in outcomes if o.status == DEFERRED and o.stage == "connection"]
        # Held in memory until written: a dropped connection is reconnected and the write retried.
        _retrying(
            ledger.record_outcomes,
            self.mailing.pk,
            self.relay_id,
            sent=sent,
            failed=failed,
            deferred=deferred,
            returned=returned,
            now=now,
            throttled=throttled,
        )
        self.buffer = []
        written = [o.key for o in outcomes]
        # What Redis is told after a write (counters, settled in-flight ids, the sent rate) goes as
        # one pipeline: one round trip a flush, not three (each ~200-350 us of redis-py's CPU).
        pipe = redis_client().pipeline(transaction=False)
        delivery_metrics.count_outcomes(
            self.relay_id,
            self.mailing.from_email,
            sent=len(sent),
            failed=len(failed),
            deferred=len(deferred) + len(throttled),
            pipe=pipe,
        )
        inflight.settle(self.mailing.pk, written, pipe=pipe)
        if sent:
            ratelimit.count_sent(self.mailing.pk, len(sent), pipe=pipe)
        pipe.execute()
        if self.holdings is not None:
            self.holdings.ids.difference_update(written)
        if sent:
            self.sent_contacts.extend(c for c in (self.contact_of.get(o.key) for o in sent) if c is not None)
            self.sent_total += len(sent)
        refused = [o for o in failed if o.stage in ledger.REFUSAL_STAGES]
        if refused:
            _record_refusals(refused)


def _record_refusals(refused: list[Outcome]) -> None:
    """Recipients the receiving side refused: recorded once, as bounces, by the bounces app.

    After the outcomes are committed, in a transaction of its own: the bounce policy failing must
    not undo (and so resend) what was sent. The Message keeps the refusal's code and reply either way.
    """
    from delivery.bounces.services import Refusal, smtp_refusals_process

    try:
        smtp_refusals_process([Refusal(o.key, o.code, o.reply, o.stage) for o in refused])
    except Exception:
        log.exception("bounce policy failed for %d refused messages", len(refused))


def _mailing_state(mailing_id: int) -> str | None:
    # Read a few times a second by every runner: one raw statement, not the ORM's query building
    # (~0.9 ms of the worker's CPU a call against ~0.15).
    return _retrying(_read_mailing_state, mailing_id)


def _read_mailing_state(mailing_id: int) -> str | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT state FROM delivery_mailing WHERE id = %s", [mailing_id])
        row = cursor.fetchone()
    return None if row is None else row[0]


def _skip_unsendable(mailing: Mailing, batch: list[Claimed]) -> list[Claimed]:
    """Claim-time re-check: an unsubscribe or bounce since planning stops mail already queued; mail
    to a contact over a frequency cap waits in the ledger until the cap has room (and is checked again)."""
    blocked = eligibility.unsendable(mailing, [(c.id, c.contact_id, c.email) for c in batch])
    if blocked:
        ledger.release(
            sorted(blocked), MessageState.SKIPPED, "not sent: the contact became unsendable before sending"
        )
        batch = [c for c in batch if c.id not in blocked]
    held = eligibility.frequency_holds(mailing, [(c.id, c.contact_id, c.email) for c in batch])
    for until, ids in held.items():
        ledger.hold(ids, until, HoldReason.FREQUENCY)
    waiting = {i for ids in held.values() for i in ids}
    return [c for c in batch if c.id not in waiting] if waiting else batch


def _contexts(
    mailing: Mailing, builder: MessageBuilder, batch: list[Claimed], tokens: dict[int, str]
) -> dict[int, dict[str, Any]]:
    from contacts.selectors import contact_merge_data
    from contacts.tokens import preferences_url
    from mailplatform.selectors import org_data
    from templates.context import recipient_context

    merge = contact_merge_data([c.contact_id for c in batch if c.contact_id is not None])
    org = org_data()  # once per batch: {{ org.* }}
    # Signing a preferences link costs ~40 µs; only templates that show one pay for it.
    wants_preferences = builder.uses is None or "preferences_url" in builder.uses
    wants_view = builder.uses is None or "view_in_browser_url" in builder.uses
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
        if wants_view:
            urls["view_in_browser_url"] = webversion.view_url(item.id)
        extra = {k: v for k, v in (item.data or {}).items() if not k.startswith("__")}
        try:
            contexts[item.id] = recipient_context(
                contact=contact or {"email": item.email}, urls=urls, extra=extra, org=org
            )
        except ValueError:
            # Transactional data that clashes with a reserved name: the caller's data loses.
            safe = {
                k: v for k, v in extra.items() if k not in ("contact", "org", *urls, "view_in_browser_url")
            }
            contexts[item.id] = recipient_context(
                contact=contact or {"email": item.email}, urls=urls, extra=safe, org=org
            )
    return contexts


@dataclass
class RunResult:
    sent: int = 0
    claimed: int = 0
    finished: bool = False
    reason: str = ""


def run(
    mailing_id: int, token: str | None, *, seconds: float | None = None, hostname: str | None = None
) -> RunResult:
    """One runner's turn on a Mailing; returns why it stopped. Re-enqueueing is the task's job.

    `token` names the runner's slot (tasks); None runs outside the DELIVERY_PARALLEL bound (drain).
    `hostname` is the Celery worker's node name, whose stop flag the runner obeys (liveness).
    """
    budget = settings.DELIVERY_TASK_SECONDS if seconds is None else seconds
    deadline = time.monotonic() + budget
    result = RunResult()
    holdings = Holdings()
    # The slot only bounds parallelism (the Message leases guard correctness); the heartbeat renews
    # it with the leases, so a killed runner's place is free as soon as its Messages are.
    runner = runners.semaphore(mailing_id, token or "", lease=settings.DELIVERY_LEASE_SECONDS)
    if token is not None:
        if not runner.refresh():
            result.reason = "enough runners already"
            return result
        runner.held = True
        holdings.hold(runner)
    tried: set[int] = set()
    backed_off_waits = 0
    heartbeat = liveness.Heartbeat(holdings.renew)
    heartbeat.start()
    try:
        while time.monotonic() < deadline:
            heartbeat.progress()
            if liveness.stop_requested(hostname):
                result.reason = STOPPING
                break
            mailing = _retrying(
                lambda: Mailing.objects.select_related("identity").filter(pk=mailing_id).first()
            )
            if mailing is None or mailing.state not in ACTIVE_STATES:
                result.reason = f"mailing is {mailing.state if mailing else 'gone'}"
                return result
            pool = _retrying(relays.pool, mailing_id)
            # A relay at its warm-up cap for today is left to the others (delivery.warmup).
            capped = _retrying(warmup.capped_relays, [r.pk for r in pool]) if pool else set()
            if pool and len(capped) == len(pool):
                _retrying(_hold_for_warmup, mailing_id)
                result.reason = "warm-up cap"
                return result
            relay = relays.choose_relay(pool, tried | capped)
            if relay is None:
                if not pool:
                    mailing_set_error(
                        mailing_id, "no enabled relay: add or enable one under Delivery > Relays"
                    )
                    result.reason = "no relay"
                    return result
                if tried:
                    tried.clear()
                    continue
                if backed_off_waits < _BACKED_OFF_WAITS and time.monotonic() + 0.5 < deadline:
                    # Backoffs start at seconds: wait a little for a probe rather than leave at once.
                    backed_off_waits += 1
                    time.sleep(0.5)
                    continue
                # Every relay is backed off: say so on the Mailing, and let the watchdog come back later.
                errors = "; ".join(f"{r.name}: {r.last_error}" for r in pool if r.last_error)
                mailing_set_error(mailing_id, f"every relay is failing, retrying later. {errors}")
                result.reason = "all relays backed off"
                return result
            slot = ratelimit.ConnectionSlot(relay.pk, relay.max_connections, settings.DELIVERY_LEASE_SECONDS)
            wait = slot.acquire()
            if wait:
                if getattr(relay, "probing", False):
                    relayhealth.give_back_probe(relay.pk)
                tried.add(relay.pk)
                if len(tried) >= len(pool):
                    tried.clear()
                    time.sleep(min(wait, 1.0, max(0.0, deadline - time.monotonic())))
                continue
            holdings.hold(slot)
            try:
                with logs.bind(mailing=mailing_id, relay=relay.pk):
                    outcome = _work_relay(mailing, relay, holdings, heartbeat, hostname, deadline, result)
            finally:
                holdings.release(slot)
            if outcome in ("relay failed", "relay capped"):
                tried.add(relay.pk)
                continue
            if outcome in ("empty", "stopped"):
                break
        if result.reason == "empty" and mailing_id:
            result.finished = _retrying(mailing_finish_if_done, mailing_id)
        return result
    finally:
        heartbeat.stop()
        # Out of time or stopping: the slot passes to the successor the task queues (runners.handover).
        if result.reason not in ("time", STOPPING):
            holdings.release(runner)
        if result.reason == "empty" and token is not None:
            _dispatch_if_queued_meanwhile(mailing_id)


def _dispatch_if_queued_meanwhile(mailing_id: int) -> None:
    """Mail queued on a standing Mailing between this runner's last look and its leaving found its
    place still taken, so that mail's dispatch queued nobody: look again now the place is free.
    Whichever comes second, this look or that dispatch, sees the other (the watchdog only later)."""
    try:
        if ledger.has_queued(mailing_id):
            runners.dispatch(mailing_id)
    except Exception as exc:  # the database or Redis being away: the watchdog's round covers it
        log.warning("mailing %s: no look for mail queued meanwhile (the watchdog will): %s", mailing_id, exc)


# Why a runner stopped when its worker was asked to (SIGTERM): the task queues a successor.
STOPPING = "worker stopping"
# Half-second waits a runner spends for a backed-off relay to be probed before it gives up its turn.
_BACKED_OFF_WAITS = 10


def _work_relay(
    mailing: Mailing,
    relay: Relay,
    holdings: Holdings,
    heartbeat: liveness.Heartbeat,
    hostname: str | None,
    deadline: float,
    result: RunResult,
) -> str:
    """Send batches of one Mailing over one connection to `relay` until done, stopped or out of time."""
    try:
        builder = builder_for(mailing)
    except Exception as exc:  # a snapshot that cannot be built does not get better by retrying
        mailing_set_error(mailing.pk, f"this mailing's messages cannot be built: {exc}")
        result.reason = "build error"
        return "stopped"
    probing = getattr(relay, "probing", False)
    try:
        smtp = relays.open_connection(relay)
    except RelayError as exc:
        message = f"relay {relay.name}: {exc}"
        _retrying(relays.relay_record_failure, relay.pk, str(exc), probe=probing)
        mailing_set_error(mailing.pk, message)
        log.warning("mailing %s: %s", mailing.pk, message)
        return "relay failed"
    # Healthy again for every runner at once (a probe that got through, or a relay that had failed).
    _retrying(
        relays.relay_record_success,
        relay.pk,
        smtp.info.esmtp if relay.capabilities != smtp.info.esmtp else None,
    )
    limits = relays.limits(relay)
    requeued_at = 0.0
    held_wait: float | None = None
    try:
        while True:
            heartbeat.progress()
            if time.monotonic() >= deadline:
                result.reason = "time"
                return "time"
            if liveness.stop_requested(hostname):
                result.reason = STOPPING
                return "stopped"
            size = settings.DELIVERY_BATCH_SIZE
            if limits.per_second > 0:
                # Never claim more than can go out well within the lease.
                size = max(1, min(size, int(limits.per_second * settings.DELIVERY_LEASE_SECONDS / 4)))
            if time.monotonic() - requeued_at >= 0.5:
                # Mail held for a receiving domain's pace comes back as its turn comes, not at the
                # watchdog's next round; mail held by warm-up as far as today's caps have room.
                requeued_at = time.monotonic()
                _requeued, held_wait = _retrying(ledger.requeue_held, mailing.pk, _DOMAIN_HOLDS)
                _retrying(warmup.release, mailing.pk)
            if held_wait is not None:
                # Held mail is only requeued between batches: keep them short (a fraction of a
                # second) so that it goes out close to its turn.
                size = min(size, HELD_BATCH_SIZE)
            with warmup.claiming_in_turn(mailing, relay.pk):
                batch = _retrying(ledger.claim, mailing.pk, relay.pk, size)
                claimed, capped_by = bool(batch), ""
                if batch:
                    holdings.ids.update(c.id for c in batch)
                    result.claimed += len(batch)
                    batch = _retrying(_skip_unsendable, mailing, batch)
                if batch:
                    batch = _retrying(_window_gate, mailing, batch)
                    holdings.ids.intersection_update({c.id for c in batch})
                if batch:
                    batch, capped_by = _retrying(_warmup_gate, mailing, relay.pk, batch)
                    if capped_by:
                        holdings.ids.intersection_update({c.id for c in batch})
            if not claimed:
                requeued, wait = _retrying(ledger.requeue_held, mailing.pk, _DOMAIN_HOLDS)
                # Another runner may have requeued held mail between our claim and our look.
                if requeued or _retrying(ledger.has_queued, mailing.pk):
                    continue
                if wait is not None and wait <= 2.0 and time.monotonic() + wait < deadline:
                    time.sleep(wait + 0.01)  # only held mail is left, and its turn is near
                    continue
                result.reason = "empty"
                return "empty"
            if not batch:
                holdings.ids.clear()
                if capped_by == "relay":
                    return "relay capped"
                if capped_by == "domain":
                    result.reason = "warm-up cap"
                    return "stopped"
                continue
            stop = _send_batch(
                mailing, relay, smtp, builder, limits, batch, holdings, heartbeat, hostname, deadline, result
            )
            holdings.ids.clear()
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
    holdings: Holdings,
    heartbeat: liveness.Heartbeat,
    hostname: str | None,
    deadline: float,
    result: RunResult,
) -> str:
    """Stream one claimed batch; returns "" to go on, or why to stop."""
    groups = dict(zip((c.id for c in batch), domains.groups_of(c.email for c in batch), strict=True))
    batch = _guard_gate(mailing.pk, batch, groups, holdings)
    batch = _domain_gate(batch, groups)
    batch, slots = _domain_connections(batch, groups, holdings)
    try:
        if not batch:
            return ""
        return _stream_batch(
            mailing,
            relay,
            smtp,
            builder,
            limits,
            batch,
            groups,
            holdings,
            heartbeat,
            hostname,
            deadline,
            result,
        )
    finally:
        for slot in slots:
            holdings.release(slot)


def _stream_batch(
    mailing: Mailing,
    relay: Relay,
    smtp: RelayConnection,
    builder: MessageBuilder,
    limits: ratelimit.Limits,
    batch: list[Claimed],
    groups: dict[int, str],
    holdings: Holdings,
    heartbeat: liveness.Heartbeat,
    hostname: str | None,
    deadline: float,
    result: RunResult,
) -> str:
    tokens = verp.message_tokens((c.id for c in batch), "unsubscribe")
    contexts = _retrying(_contexts, mailing, builder, batch, tokens)
    recorder = Recorder(
        mailing=mailing, relay_id=relay.pk, contact_of={c.id: c.contact_id for c in batch}, holdings=holdings
    )
    mail_from = verp.verp_addresses(c.id for c in batch)
    untried = {c.id for c in batch}
    control: dict[str, Any] = {"stop": "", "tokens": 0, "state_at": time.monotonic(), "announced": 0}

    def envelopes() -> Iterator[Envelope]:
        for index, item in enumerate(batch):
            if control["stop"] or liveness.stopping_here():
                control["stop"] = control["stop"] or STOPPING
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
            if index >= control["announced"]:
                # Said before it goes, a chunk at a time: a crash names these, not the whole batch.
                control["announced"] = index + inflight.CHUNK
                inflight.announce(mailing.pk, [c.id for c in batch[index : control["announced"]]])
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
        heartbeat.progress()
        # Pause, cancel and the worker's stop flag are read a few times a second, not at every write.
        if time.monotonic() - ctl["state_at"] >= 0.3:
            ctl["state_at"] = time.monotonic()
            state = _mailing_state(mailing.pk)
            if state not in ACTIVE_STATES:
                ctl["stop"] = f"mailing {state}"
            elif liveness.stop_requested(hostname):
                ctl["stop"] = STOPPING

    relay_failure = ""
    refusals: list[Outcome] = []
    for outcome in smtp.send(envelopes()):
        recorder.add(outcome)
        if outcome.domain_throttled:
            # Slow that receiving domain down (AIMD); the relay is fine and keeps the other domains.
            slower = domains.slow_down(groups[outcome.key])
            if slower is not None:
                log.info("receiving domain %s rate-limits us: down to %.2f/s", groups[outcome.key], slower)
            refusals.append(outcome)
        elif outcome.relay_fault and not relay_failure:
            relay_failure = (
                outcome.reply if outcome.stage == "connection" else f"{outcome.code} {outcome.reply}"
            )
        elif outcome.status == DEFERRED and outcome.stage in ("mail", "rcpt", "data"):
            refusals.append(outcome)
        if recorder.due():
            recorder.flush()
            _check(control)
    recorder.flush()
    recorder.record_engagement()
    result.sent += recorder.sent_total
    if recorder.sent_total:
        _retrying(mailing_clear_error, mailing.pk)
    # Whatever was claimed and never handed to the relay goes back (or is skipped on cancel).
    inflight.settle(mailing.pk, untried)
    state = _mailing_state(mailing.pk)
    if state == Mailing.State.CANCELLED:
        _retrying(ledger.release, list(untried), MessageState.SKIPPED, "mailing cancelled")
    else:
        _retrying(ledger.release, list(untried), MessageState.QUEUED)
    if relay_failure:
        _retrying(
            relays.relay_record_failure, relay.pk, relay_failure, probe=getattr(relay, "probing", False)
        )
        mailing_set_error(mailing.pk, f"relay {relay.name}: {relay_failure}")
        return ""
    if refusals:
        # A 4xx to one message (a busy mailbox, a domain's rate limit) is no failure of the relay,
        # but the admin sees the last one on it.
        last = refusals[-1]
        _retrying(relays.relay_note_error, relay.pk, f"{last.code} {last.reply} (at {last.stage.upper()})")
    if control["stop"]:
        result.reason = control["stop"]
        return "stopped"
    return ""


# Groups the guard paused, per Mailing, read at most every DELIVERY_GATE_CACHE_SECONDS per process
# (the pause itself holds what is queued at once; this gate catches what comes back later).
_pauses: dict[int, tuple[float, set[str]]] = {}


def _paused_groups(mailing_id: int) -> set[str]:
    cached = _pauses.get(mailing_id)
    if cached is not None and time.monotonic() - cached[0] < settings.DELIVERY_GATE_CACHE_SECONDS:
        return cached[1]
    groups = set(
        _retrying(
            lambda: list(
                GroupPause.objects.filter(mailing_id=mailing_id, resumed_at__isnull=True).values_list(
                    "group", flat=True
                )
            )
        )
    )
    if len(_pauses) > 200:
        _pauses.clear()
    _pauses[mailing_id] = (time.monotonic(), groups)
    return groups


def _guard_gate(
    mailing_id: int, batch: list[Claimed], groups: dict[int, str], holdings: Holdings
) -> list[Claimed]:
    """Mail to a receiving domain group the guard paused for this Mailing waits for a person
    (delivery.mailings.mailing_pause_group held what was queued; this catches what comes back later)."""
    paused = _paused_groups(mailing_id)
    if not paused:
        return batch
    stopped = [c.id for c in batch if groups[c.id] in paused]
    if not stopped:
        return batch
    _retrying(ledger.hold, stopped, timezone.now() + GUARD_HOLD, HoldReason.GUARD)
    holdings.ids.difference_update(stopped)
    held = set(stopped)
    return [c for c in batch if c.id not in held]


# Held mail of a receiving domain that comes back between batches (its pace, its connections).
_DOMAIN_HOLDS = (HoldReason.THROTTLED, HoldReason.CONNECTIONS)
# How long mail waits when its receiving domain's connections are all in use (a batch is short).
CONNECTION_HOLD_SECONDS = 0.25


def _domain_connections(
    batch: list[Claimed], groups: dict[int, str], holdings: Holdings
) -> tuple[list[Claimed], list[ratelimit.Semaphore]]:
    """A place among each receiving domain group's concurrent connections (`connections` in
    DELIVERY_DOMAIN_LIMITS: runners carrying its mail at once, on every worker) for this batch;
    the group's mail waits a moment in the ledger when they are all taken, the others go on."""
    slots: list[ratelimit.Semaphore] = []
    waiting: list[int] = []
    for group in sorted({groups[c.id] for c in batch}):
        limit = domains.limits_for(group).connections
        if limit <= 0:
            continue
        slot = domains.connection_slot(group, limit)
        if slot.acquire() == 0.0:
            holdings.hold(slot)
            slots.append(slot)
        else:
            waiting.extend(c.id for c in batch if groups[c.id] == group)
    if waiting:
        until = timezone.now() + dt.timedelta(seconds=CONNECTION_HOLD_SECONDS)
        _retrying(ledger.hold, waiting, until, HoldReason.CONNECTIONS)
        holdings.ids.difference_update(waiting)
        held = set(waiting)
        batch = [c for c in batch if c.id not in held]
    return batch, slots


def _warmup_gate(mailing: Mailing, relay_id: int, batch: list[Claimed]) -> tuple[list[Claimed], str]:
    """The claimed Messages today's warm-up caps let go (the first ones, in id order), and which cap
    stopped the rest ("" none). Over the From domain's cap the rest of the Mailing waits for the next
    day; over this relay's cap the rest goes back to the queue for the Mailing's other relays."""
    granted, capped_by = warmup.grant(mailing, relay_id, len(batch))
    if not capped_by:
        return batch, ""
    later = [c.id for c in batch[granted:]]
    if capped_by == "domain":
        until = warmup.hold_until()
        with transaction.atomic():
            ledger.hold(later, until, HoldReason.WARMUP)
            ledger.hold_queued(mailing.pk, until, HoldReason.WARMUP)
    else:
        ledger.release(later, MessageState.QUEUED)
    return batch[:granted], capped_by


def _window_gate(mailing: Mailing, batch: list[Claimed]) -> list[Claimed]:
    """What of the batch may go now under the Mailing's sending window (delivery.windows); the rest
    is held in the ledger until its window opens. With one zone for everybody the whole Mailing is
    outside: what is still queued is held at once, not batch by batch."""
    window = windows.of(mailing.meta)
    if window is None:
        return batch
    held = windows.outside(window, [(c.id, c.contact_id) for c in batch], timezone.now())
    if not held:
        return batch
    for until, ids in held.items():
        ledger.hold(ids, until, HoldReason.WINDOW)
        if not window.per_contact:
            ledger.hold_queued(mailing.pk, until, HoldReason.WINDOW)
    waiting = {i for ids in held.values() for i in ids}
    return [c for c in batch if c.id not in waiting]


def _hold_for_warmup(mailing_id: int) -> None:
    """Every relay of the Mailing is at its warm-up cap: its queued mail waits for the next day."""
    ledger.hold_queued(mailing_id, warmup.hold_until(), HoldReason.WARMUP)


def _domain_gate(batch: list[Claimed], groups: dict[int, str]) -> list[Claimed]:
    """The Messages of this batch each receiving domain may take now; the rest wait in the ledger,
    one after another at the domain's pace, while the other domains' mail goes on (no head-of-line
    blocking).

    A domain over its pace gets a schedule of turns (shared in Redis): held mail comes back at its
    turn and goes out on it (Claimed.turn), and while turns are pending newcomers join the end of
    the schedule instead of taking tokens first, so the domain gets its rate, in order, no more."""
    wanted: dict[str, list[int]] = {}
    for item in batch:
        if not item.turn:
            wanted.setdefault(groups[item.id], []).append(item.id)
    waiting: set[int] = set()
    now = timezone.now()
    for group, ids in wanted.items():
        if domains.turns_ahead(group) > 0:
            granted, wait, rate = 0, 0.0, domains.rate_in_force(group)
        else:
            granted, wait, rate = domains.take(group, len(ids))
        if granted >= len(ids):
            continue
        later = ids[granted:]
        waiting.update(later)
        interval = 1.0 / rate if rate > 0 else max(wait, 0.1)
        first = domains.turns(group, len(later), interval, wait)
        start = now + dt.timedelta(seconds=max(0.0, first - interval))
        ledger.hold_in_turn(later, start, interval, HoldReason.THROTTLED)
    return [c for c in batch if c.id not in waiting] if waiting else batch


def watchdog() -> dict[str, int]:
    """The beat task's work: recover expired leases, requeue due deferrals, restart stalled mailings."""
    recovered = ledger.recover_leases(inflight.take_maybe_sent)
    requeued = ledger.requeue_due()
    # Warm-up mail comes back as soon as a cap has room (a new day, a raised cap), oldest first.
    requeued += warmup.release_all()
    dispatched = 0
    # A handful of open Mailings, each checked through the claim index: cheap at any ledger size.
    open_mailings = Mailing.objects.filter(state__in=ACTIVE_STATES).values_list("pk", flat=True)
    waiting = [m for m in open_mailings if ledger.has_queued(m)]
    for mailing_id in waiting:
        dispatched += runners.dispatch(mailing_id)
    # Mailings whose last Messages were deferred and then failed finish here.
    for mailing_id in Mailing.objects.filter(state=Mailing.State.SENDING).values_list("pk", flat=True):
        if mailing_id not in waiting:
            mailing_finish_if_done(mailing_id)
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
