"""Writes: every bounce path ends in `_policy_apply`: it stores the events and applies the policy.

Entry points: `bounce_process` / `bounces_process` (inbound messages: SMTP listener, MTA pipe,
mailbox poller), `smtp_refusals_process` (5xx to RCPT or data during sending, called by the
engine), `esp_event_process` / `esp_events_process` (ESP webhooks). Contacts change through
contacts.services' set-wise functions; Messages and their events through delivery.ledger.

Attribution (issue #12): a returned message changes a contact ONLY when something we signed names
the Message: the VERP token of the return path, or our own signed Message-ID found in the returned
headers (feedback loops that keep the original). A token that fails its HMAC is dropped and logged.
Anything else (a report that only names an address, however well it matches a contact) is stored
as evidence, outcome "unattributed" with the reason on its events, and changes nothing: anyone can
send a DSN naming any address. Every inbound path (listener, pipe, mailbox poller) comes through
`bounces_process`, so all follow this rule. Feedback-ID names a mailing, not a recipient, so it
attributes nothing by itself.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.utils import parseaddr

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from contacts import services as contacts
from contacts.selectors import contact_ids_by_address
from delivery import ledger, verp
from delivery.bounces import bulk, rules
from delivery.bounces.classifier import BounceRecipient, BounceReport, classify_refusal, classify_safely
from delivery.bounces.models import BounceEvent, BouncePolicy, InboundMessage
from delivery.bounces.selectors import (
    MessageInfo,
    SoftHistory,
    bounce_policy_later,
    messages_info,
    messages_info_later,
    soft_history,
    soft_history_of_messages_later,
)
from delivery.mailings import unsubscribe_by_message
from delivery.models import Message
from mailplatform import metrics

log = logging.getLogger(__name__)

MAX_RAW_KEPT = 256 * 1024  # evidence: the report and the returned headers, not a 50 MB attachment


@dataclass
class ProcessResult:
    inbound_id: int | None
    outcome: str
    events: list[int] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)


def bounce_domain() -> str:
    return str(getattr(settings, "BOUNCE_DOMAIN", "localhost")).lower()


@dataclass(frozen=True)
class Inbound:
    """One message that arrived on the return path, before anything is known about it."""

    raw: bytes
    source: str
    envelope_from: str = ""
    envelope_to: tuple[str, ...] = ()


@dataclass
class PolicyLine:
    """One classified recipient, attributed (or not), waiting for the policy."""

    kind: str
    reason: str
    status: str
    diagnostic: str
    recipient: str
    source: str
    at: dt.datetime
    message: MessageInfo | None = None
    contact_id: int | None = None
    attributed_by: str = ""
    email: str = ""
    inbound_id: int | None = None
    esp: str = ""
    esp_event_id: str = ""
    message_event_data: dict | None = None
    unattributed_why: str = ""  # set on evidence that names no Message we signed


def looks_like_verp(address: str, domain: str) -> bool:
    local, _, at = address.lower().rpartition("@")
    return local.startswith("bounces+") and at == domain.lower()


UNATTRIBUTED_WHY = "unattributed: no signed return-path token or Message-ID"


def _token_message_id(report: BounceReport, envelope_to: Sequence[str]) -> tuple[int | None, str, str]:
    """(message id, outcome, attributed_by) from what we signed alone, no database: outcome "" when a
    valid VERP token or our signed Message-ID in the returned headers named a message, "forged" when
    only damaged tokens were seen, "unattributed" when there was nothing of ours."""
    domain = bounce_domain()
    candidates = [a.lower() for a in envelope_to if a] + report.envelope_to
    saw_token = False
    for address in dict.fromkeys(candidates):
        if not looks_like_verp(address, domain):
            continue
        saw_token = True
        message_id = verp.message_id_from_address(address)
        if message_id is not None:
            return message_id, "", "token"
    message_id = verp.message_id_from_message_id_header(report.original_headers.get("message-id", ""))
    if message_id is not None:
        return message_id, "", "message-id"
    if saw_token:
        log.warning("bounce with a forged or damaged VERP token to %s: dropped", candidates[:3])
        return None, "forged", ""
    return None, "unattributed", ""


def _pick_recipient(report: BounceReport, info: MessageInfo) -> BounceRecipient | None:
    """The report's line about the Message's recipient; a lone line stands for it (forwarding
    rewrites addresses), several lines none of which matches stand for nobody."""
    for recipient in report.recipients:
        if recipient.address == info.email:
            return recipient
    return report.recipients[0] if len(report.recipients) == 1 else None


# --- The policy: one implementation, for one bounce or ten thousand ---


@dataclass
class _Effects:
    """What the policy decided to do to contacts, applied set-wise once the batch is decided."""

    soft: Counter = field(default_factory=Counter)
    bounced: Counter = field(default_factory=Counter)
    complained: dict[int, str] = field(default_factory=dict)


def _decide(
    line: PolicyLine,
    policy: BouncePolicy,
    history: SoftHistory,
    effects: _Effects,
) -> str:
    """The policy for one line (in batch order). Returns what it did (kept on the event)."""
    contact_id = line.contact_id
    if line.unattributed_why:
        return line.unattributed_why
    if contact_id is None:
        return "recorded"
    kind = line.kind
    if kind == rules.HARD:
        effects.bounced[contact_id] += 1
        return "contact bounced"
    if kind in (rules.SOFT, rules.UNKNOWN):
        effects.soft[contact_id] += 1
        key = line.message.mailing_id if line.message and line.message.mailing_id is not None else object()
        history[contact_id].append((key, line.at))
        since = line.at - dt.timedelta(days=policy.soft_bounce_window_days)
        mailings = len({key for key, at in history[contact_id] if at >= since})
        if mailings >= policy.soft_bounce_threshold:
            effects.bounced[contact_id] += 1
            return "contact bounced (soft threshold)"
        return f"soft bounce {mailings}/{policy.soft_bounce_threshold}"
    if kind == rules.COMPLAINT:
        effects.complained[contact_id] = line.email
        return "contact complained, unsubscribed, suppressed"
    if kind == rules.BLOCK:
        return "admin alerted (block)"
    return "recorded"


EVENT_FIELDS = [f.name for f in BounceEvent._meta.concrete_fields if not f.primary_key]
INBOUND_FIELDS = [f.name for f in InboundMessage._meta.concrete_fields if not f.primary_key]

_MESSAGE_EVENT_KIND = {
    rules.HARD: "bounced",
    rules.SOFT: "bounced",
    rules.UNKNOWN: "bounced",
    rules.BLOCK: "bounced",
    rules.COMPLAINT: "complained",
    rules.DELAYED: "deferred",
}


def _policy_apply(
    lines: list[PolicyLine],
    policy: BouncePolicy | None = None,
    *,
    history: SoftHistory | None = None,
    event_ids: Sequence[int] | None = None,
) -> list[BounceEvent]:
    """Store the lines as events and apply the policy to their contacts, in a handful of
    statements whatever the number of lines. Runs inside the caller's transaction.

    `history`: the soft bounces of (at least) the lines' contacts over the policy's window back
    from the earliest line, when the caller read it already; `event_ids`: ids drawn for the
    events (bulk.draw_ids, at least one a line), so that no write waits for an answer."""
    if not lines:
        return []
    policy = policy or BouncePolicy.current()
    if history is None:
        soft_contacts = {
            line.contact_id
            for line in lines
            if line.contact_id is not None and line.kind in (rules.SOFT, rules.UNKNOWN)
        }
        earliest = min(line.at for line in lines) - dt.timedelta(days=policy.soft_bounce_window_days)
        history = soft_history(soft_contacts, earliest)
    effects = _Effects()
    events = [
        BounceEvent(
            inbound_id=line.inbound_id,
            at=line.at,
            source=line.source,
            kind=line.kind,
            reason=line.reason[:32],
            status=line.status[:16],
            diagnostic=line.diagnostic[:2000],
            recipient=line.recipient[:254],
            message_id=line.message.id if line.message else None,
            mailing_id=line.message.mailing_id if line.message else None,
            contact_id=line.contact_id,
            relay_id=line.message.relay_id if line.message else None,
            sending_domain=line.message.sending_domain if line.message else "",
            attributed_by=line.attributed_by,
            action=_decide(line, policy, history, effects)[:80],
            esp=line.esp,
            esp_event_id=line.esp_event_id[:200],
        )
        for line in lines
    ]
    bulk.insert_objects(events, EVENT_FIELDS, event_ids)
    _count_for_metrics(events)
    # No audit rows: contacts' services write one only for a person (`by`), and a bounce has none.
    contacts.contacts_record_bounces(effects.soft, effects.bounced)
    contacts.contacts_mark_complained(effects.complained, source=f"bounce:{lines[0].source}")
    ledger.record_bounces(
        [
            (
                line.message.id,
                line.message.mailing_id,
                _MESSAGE_EVENT_KIND[line.kind],
                {"bounce_event": event.pk, **(line.message_event_data or {})},
                line.at,
            )
            for line, event in zip(lines, events, strict=True)
            if line.message and line.message_event_data is not None and line.kind in _MESSAGE_EVENT_KIND
        ]
    )
    return events


def _count_for_metrics(events: list[BounceEvent]) -> None:
    """Hard bounces and complaints per sending domain, counted for Prometheus once committed
    (delivery/metrics.py reads them: posthorn_domain_bounces_total, posthorn_domain_complaints_total)."""
    counts = Counter(
        (event.sending_domain, "complaints" if event.kind == rules.COMPLAINT else "bounces")
        for event in events
        if event.sending_domain and event.kind in (rules.HARD, rules.COMPLAINT)
    )

    def add() -> None:
        for (domain, name), n in counts.items():
            metrics.count("domain", domain, {name: n})

    if counts:
        transaction.on_commit(add)


# --- Inbound messages (SMTP listener, MTA pipe, mailbox poller, bench) ---


def _mailto_unsubscribe(envelope_to: Sequence[str]) -> bool | None:
    """List-Unsubscribe's mailto: target lives on the bounce domain too. None: not one."""
    for address in envelope_to:
        message_id = verp.message_id_from_unsubscribe_address(address)
        if message_id is not None:
            return unsubscribe_by_message(message_id, source="mailto")
    return None


def bounce_process(
    raw: bytes,
    *,
    source: str,
    envelope_from: str = "",
    envelope_to: list[str] | None = None,
) -> ProcessResult:
    """Classify one inbound message, attribute it, apply the policy; all or nothing."""
    item = Inbound(raw=raw, source=source, envelope_from=envelope_from, envelope_to=tuple(envelope_to or ()))
    return bounces_process([item], fall_back=False)[0]


def bounces_process(
    items: Sequence[Inbound],
    *,
    reports: Sequence[BounceReport] | None = None,
    fall_back: bool = True,
) -> list[ProcessResult]:
    """Many inbound messages in one transaction: classified in Python, then stored, attributed and
    put through the policy in a few set-based statements. If the batch fails (one poisonous
    message), each message is retried in a transaction of its own so the others still land.
    `reports`: the items' classifications when the caller made them already (the SMTP listener
    classifies in processes of its own, off the thread that stores)."""
    if not items:
        return []
    if reports is None:
        reports = [classify_safely(item.raw) for item in items]
    elif len(reports) != len(items):
        raise ValueError("one report per item")
    try:
        # Pipelined: the group's reads share one round trip, its writes another, then the commit.
        with transaction.atomic(), bulk.pipelined():
            return _process_batch(items, reports)
    except Exception:
        if not fall_back:
            raise
        log.exception("bounce batch of %d failed: processing one by one", len(items))
    results: list[ProcessResult] = []
    for item, report in zip(items, reports, strict=True):
        try:
            results.append(bounces_process([item], reports=[report], fall_back=False)[0])
        except Exception:  # this one message is the poison: the caller keeps it for a later try
            log.exception("bounce from %s could not be processed", item.envelope_from or "?")
            results.append(ProcessResult(inbound_id=None, outcome="error"))
    return results


SOFT_LOCK_NAMESPACE = 0x626F756E  # "boun": keeps these advisory locks apart from other apps'


def _soft_contacts_lock_later(message_ids: set[int]) -> Callable[[], object]:
    """Lock, until the transaction ends, the contacts these Messages went to, before their soft
    bounce history is read (sent in the same pipeline, just ahead of it): a transaction storing
    soft bounces of the same contact (another store thread of the listener, another listener
    process, the pipe) waits for this one's commit and then reads its events, so the threshold
    is counted over every bounce, never twice from the same history. In contact order: two
    transactions never wait on each other in a cycle."""
    if not message_ids:
        return list
    return bulk.fetch_later(
        "SELECT pg_advisory_xact_lock(%s, s.k) FROM ("  # noqa: S608
        f"SELECT DISTINCT (m.contact_id & 2147483647)::integer AS k FROM {Message._meta.db_table} m "
        "WHERE m.id = ANY(%s) AND m.contact_id IS NOT NULL ORDER BY 1) AS s",
        [SOFT_LOCK_NAMESPACE, sorted(message_ids)],
    )


def _process_batch(items: Sequence[Inbound], reports: Sequence[BounceReport]) -> list[ProcessResult]:
    now = timezone.now()
    results = [ProcessResult(inbound_id=None, outcome="none") for _ in items]
    tokens: list[int | None] = [None] * len(items)
    attributed_by: list[str] = [""] * len(items)
    for index, (item, report) in enumerate(zip(items, reports, strict=True)):
        unsubscribed = _mailto_unsubscribe(item.envelope_to)
        if unsubscribed is not None:
            results[index].outcome = "unsubscribed"
            results[index].actions.append("unsubscribed (mailto)" if unsubscribed else "already unsubscribed")
            continue
        if not report.recipients:
            continue
        tokens[index], outcome, attributed_by[index] = _token_message_id(report, item.envelope_to)
        results[index].outcome = outcome
    named = {t for t in tokens if t is not None}
    # Sent together, read together (bulk.pipelined): one round trip for every read of the group.
    inbound_ids = bulk.draw_ids(InboundMessage, len(items))
    event_ids = bulk.draw_ids(BounceEvent, sum(len(report.recipients) for report in reports))
    locked = _soft_contacts_lock_later(
        {
            token
            for token, report in zip(tokens, reports, strict=True)
            if token is not None and any(r.kind in (rules.SOFT, rules.UNKNOWN) for r in report.recipients)
        }
    )
    history = soft_history_of_messages_later(named, now)
    infos_later = messages_info_later(named)
    policy_later = bounce_policy_later()
    locked()
    policy = policy_later()
    infos = infos_later()
    pending: list[tuple[int, PolicyLine]] = []
    for index, report in enumerate(reports):
        result = results[index]
        if tokens[index] is not None:
            info = infos.get(tokens[index])
            if info is None:
                log.warning("bounce for message %s, which does not exist: dropped", tokens[index])
                result.outcome = "unknown_message"
                continue
            recipient = _pick_recipient(report, info)
            if recipient is None:
                result.outcome = "unmatched"
                continue
            pending.append(
                (
                    index,
                    _line(recipient, items[index].source, now, info, info.contact_id, attributed_by[index]),
                )
            )
            result.outcome = "applied" if info.contact_id else "unattributed"
        elif result.outcome == "unattributed":
            # Evidence only: kept with the reason, no contact named, so the policy changes nothing.
            for recipient in report.recipients:
                line = _line(recipient, items[index].source, now, None, None, "")
                line.unattributed_why = UNATTRIBUTED_WHY
                pending.append((index, line))
    inbound = [
        InboundMessage(
            received_at=now,
            source=item.source,
            envelope_from=item.envelope_from[:254],
            envelope_to=", ".join(item.envelope_to)[:254],
            subject=report.subject[:255],
            format=report.format[:12],
            outcome=result.outcome,
            size=len(item.raw),
            raw=item.raw[:MAX_RAW_KEPT],
            sha256=hashlib.sha256(item.raw).hexdigest(),
        )
        for item, report, result in zip(items, reports, results, strict=True)
    ]
    bulk.insert_objects(inbound, INBOUND_FIELDS, inbound_ids())
    for row, result in zip(inbound, results, strict=True):
        result.inbound_id = row.pk
    for index, line in pending:
        line.inbound_id = inbound[index].pk
    events = _policy_apply([line for _, line in pending], policy, history=history(), event_ids=event_ids())
    for (index, _pending_line), event in zip(pending, events, strict=True):
        results[index].events.append(event.pk)
        results[index].actions.append(event.action)
    return results


def _line(
    recipient: BounceRecipient,
    source: str,
    now: dt.datetime,
    message: MessageInfo | None,
    contact_id: int | None,
    attributed_by: str,
    event_data: dict | None = None,
) -> PolicyLine:
    return PolicyLine(
        kind=recipient.kind,
        reason=recipient.reason,
        status=recipient.status,
        diagnostic=recipient.diagnostic,
        recipient=recipient.address,
        source=source,
        at=now,
        message=message,
        contact_id=contact_id,
        attributed_by=attributed_by,
        email=message.email if message else recipient.address,
        message_event_data={**(event_data or {}), **recipient.as_dict()},
    )


# --- First-hand refusals and ESP events ---


@dataclass(frozen=True)
class Refusal:
    """A relay's 5xx during sending, as the engine heard it."""

    message_id: int
    code: int
    reply: str
    stage: str  # mail | rcpt | data


def smtp_refusals_process(refusals: Sequence[Refusal]) -> list[BounceEvent | None]:
    """Refusals of recipients heard first-hand while sending: each recorded once, as a bounce.

    One BounceEvent and one `bounced` MessageEvent per refused Message, both with the
    classifier's kind (classify_refusal), which the ledger also keeps on the Message; then the
    policy, as for any bounce. A refused MAIL FROM speaks of the sender, never of the recipient:
    None, nothing recorded here (the ledger has the Message failed with the reply).
    """
    infos = messages_info(r.message_id for r in refusals if r.stage in ledger.REFUSAL_STAGES)
    now = timezone.now()
    lines: list[PolicyLine | None] = []
    for refusal in refusals:
        info = infos.get(refusal.message_id) if refusal.stage in ledger.REFUSAL_STAGES else None
        if info is None:
            lines.append(None)
            continue
        recipient = classify_refusal(info.email, refusal.code, refusal.reply, refusal.stage)
        data = {"code": refusal.code, "reply": refusal.reply[:1000], "stage": refusal.stage}
        lines.append(_line(recipient, InboundMessage.Source.SEND, now, info, info.contact_id, "token", data))
    with transaction.atomic():
        created = iter(_policy_apply([line for line in lines if line is not None]))
    return [next(created) if line is not None else None for line in lines]


def smtp_rejection_process(message_id: int, *, code: int, reply: str, stage: str) -> BounceEvent | None:
    """One refusal (smtp_refusals_process for a single Message)."""
    return smtp_refusals_process([Refusal(message_id, code, reply, stage)])[0]


@dataclass(frozen=True)
class EspEvent:
    """An ESP's tracking event, normalised by the webhook tables."""

    esp: str
    event_id: str
    recipient: str
    kind: str
    reason: str
    status: str
    diagnostic: str
    at: dt.datetime | None = None


def esp_event_process(
    *,
    esp: str,
    event_id: str,
    recipient: str,
    kind: str,
    reason: str,
    status: str,
    diagnostic: str,
    at: dt.datetime | None = None,
) -> BounceEvent | None:
    """An ESP's tracking event. Stored once per event id; a retry of the same event returns None
    and changes nothing."""
    event = EspEvent(esp, event_id, recipient, kind, reason, status, diagnostic, at)
    return esp_events_process([event], fall_back=False)[0]


def esp_events_process(events: Sequence[EspEvent], *, fall_back: bool = True) -> list[BounceEvent | None]:
    """A webhook request's events in one transaction; each (esp, event id, recipient) once."""
    if not events:
        return []
    try:
        with transaction.atomic():
            return _esp_batch(events)
    except IntegrityError:
        # A retry raced us to the unique constraint: one by one, the duplicate returns None.
        if not fall_back or len(events) == 1:
            return [None] if len(events) == 1 else [None] * len(events)
        out: list[BounceEvent | None] = []
        for event in events:
            out.extend(esp_events_process([event], fall_back=False))
        return out


def _esp_batch(events: Sequence[EspEvent]) -> list[BounceEvent | None]:
    now = timezone.now()
    addresses = [parseaddr(e.recipient)[1].lower() for e in events]
    contact_ids = contact_ids_by_address({a for a in addresses if a})
    ids = [e.event_id[:200] for e in events]
    stored = set(
        BounceEvent.objects.filter(esp__in={e.esp for e in events}, esp_event_id__in=set(ids)).values_list(
            "esp", "esp_event_id", "recipient"
        )
    )
    lines: list[PolicyLine | None] = []
    for event, address, event_id in zip(events, addresses, ids, strict=True):
        key = (event.esp, event_id, address[:254])
        if key in stored:
            lines.append(None)
            continue
        stored.add(key)
        contact_id = contact_ids.get(address) if address else None
        lines.append(
            PolicyLine(
                kind=event.kind,
                reason=event.reason,
                status=event.status,
                diagnostic=event.diagnostic,
                recipient=address,
                source=InboundMessage.Source.WEBHOOK,
                at=event.at or now,
                contact_id=contact_id,
                attributed_by="esp" if contact_id else "",
                email=address,
                esp=event.esp,
                esp_event_id=event_id,
            )
        )
    created = iter(_policy_apply([line for line in lines if line is not None]))
    return [next(created) if line is not None else None for line in lines]


def policy_update(*, by, **values: int) -> BouncePolicy:
    from mailplatform.services import audit_record

    policy = BouncePolicy.current()
    for name, value in values.items():
        setattr(policy, name, value)
    policy.save()
    audit_record(by, "bounces.policy_updated", policy, details={k: int(v) for k, v in values.items()})
    return policy


def evidence_prune(now: dt.datetime | None = None) -> int:
    """Drop raw messages older than the policy keeps them; the classified events stay."""
    cutoff = (now or timezone.now()) - dt.timedelta(days=BouncePolicy.current().keep_raw_days)
    return InboundMessage.objects.filter(received_at__lt=cutoff).filter(~Q(raw=b"")).update(raw=b"")
