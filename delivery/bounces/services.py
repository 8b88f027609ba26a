"""Writes: every inbound path calls `bounce_process`; it classifies, attributes and applies the policy.

Attribution (DESIGN.md, return path): the VERP token first; a token that fails its HMAC is dropped
and logged. Without a token, a recipient the report names must match a contact's address exactly.
Nothing changes a contact's status on any other evidence.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass, field
from email.utils import parseaddr

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from delivery.bounces import ledger, rules
from delivery.bounces.classifier import (
    BounceRecipient,
    BounceReport,
    classify,
    find_status,
    kind_for,
    reason_for,
)
from delivery.bounces.models import BounceEvent, BouncePolicy, InboundMessage

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


def _attribute(report: BounceReport, envelope_to: list[str]) -> tuple[ledger.MessageInfo | None, str]:
    """(message, outcome): outcome is "" when a valid token named a message."""
    domain = bounce_domain()
    candidates = [a.lower() for a in envelope_to if a] + report.envelope_to
    saw_token = False
    for address in dict.fromkeys(candidates):
        if not ledger.looks_like_verp(address, domain):
            continue
        saw_token = True
        message_id = ledger.verp_message_id(address)
        if message_id is None:
            continue
        info = ledger.message_info(message_id)
        if info is None:
            log.warning("bounce for message %s, which does not exist: dropped", message_id)
            return None, "unknown_message"
        return info, ""
    if saw_token:
        log.warning("bounce with a forged or damaged VERP token to %s: dropped", candidates[:3])
        return None, "forged"
    return None, "unattributed"


def _pick_recipient(report: BounceReport, info: ledger.MessageInfo) -> BounceRecipient | None:
    """The report's line about the Message's recipient; a lone line stands for it (forwarding
    rewrites addresses), several lines none of which matches stand for nobody."""
    for recipient in report.recipients:
        if recipient.address == info.email:
            return recipient
    return report.recipients[0] if len(report.recipients) == 1 else None


def _soft_mailings(contact_id: int, since: dt.datetime) -> int:
    """Different mailings that soft-bounced for this contact since `since` (unknown mailings each count)."""
    return (
        BounceEvent.objects.filter(contact_id=contact_id, kind__in=[rules.SOFT, rules.UNKNOWN], at__gte=since)
        .annotate(mailing_key=Coalesce(F("mailing_id"), -F("id")))
        .values("mailing_key")
        .distinct()
        .count()
    )


def _apply(event: BounceEvent, policy: BouncePolicy, email: str) -> str:
    """The policy. Returns what it did (kept on the event, shown on the Bounces page)."""
    source = f"bounce:{event.source}"
    if event.contact_id is None:
        return "recorded"
    kind = event.kind
    if kind == rules.HARD:
        ledger.mark_bounced(event.contact_id, reason=f"{event.reason} {event.status}".strip(), source=source)
        return "contact bounced"
    if kind in (rules.SOFT, rules.UNKNOWN):
        ledger.record_soft_bounce(event.contact_id)
        since = event.at - dt.timedelta(days=policy.soft_bounce_window_days)
        mailings = _soft_mailings(event.contact_id, since)
        if mailings >= policy.soft_bounce_threshold:
            reason = f"{mailings} soft bounces in {policy.soft_bounce_window_days} days"
            ledger.mark_bounced(event.contact_id, reason=reason, source=source)
            return "contact bounced (soft threshold)"
        return f"soft bounce {mailings}/{policy.soft_bounce_threshold}"
    if kind == rules.COMPLAINT:
        ledger.mark_complained(event.contact_id, source=source)
        ledger.suppress(email, reason="complaint", source=source)
        return "contact complained, unsubscribed, suppressed"
    if kind == rules.BLOCK:
        return "admin alerted (block)"
    return "recorded"


_MESSAGE_EVENT_KIND = {
    rules.HARD: "bounced",
    rules.SOFT: "bounced",
    rules.UNKNOWN: "bounced",
    rules.BLOCK: "bounced",
    rules.COMPLAINT: "complained",
    rules.DELAYED: "deferred",
}


def _store_inbound(
    raw: bytes, *, source: str, envelope_from: str, envelope_to: str, subject: str
) -> InboundMessage:
    return InboundMessage.objects.create(
        source=source,
        envelope_from=envelope_from[:254],
        envelope_to=envelope_to[:254],
        subject=subject[:255],
        size=len(raw),
        raw=raw[:MAX_RAW_KEPT],
        sha256=hashlib.sha256(raw).hexdigest(),
    )


def bounce_process(
    raw: bytes,
    *,
    source: str,
    envelope_from: str = "",
    envelope_to: list[str] | None = None,
) -> ProcessResult:
    """Classify one inbound message, attribute it, apply the policy; all or nothing."""
    envelope_to = envelope_to or []
    try:
        report = classify(raw)
    except Exception as exc:  # the classifier is bounded, but the listener must never die of it
        log.exception("bounce classifier failed")
        report = BounceReport(format="none", errors=[repr(exc)])
    with transaction.atomic():
        inbound = _store_inbound(
            raw,
            source=source,
            envelope_from=envelope_from,
            envelope_to=", ".join(envelope_to),
            subject=report.subject,
        )
        result = _process_report(report, inbound, envelope_to)
        InboundMessage.objects.filter(pk=inbound.pk).update(format=report.format, outcome=result.outcome)
    return result


def _mailto_unsubscribe(envelope_to: list[str]) -> bool | None:
    """List-Unsubscribe's mailto: target lives on the bounce domain too. None: not one."""
    for address in envelope_to:
        message_id = ledger.unsubscribe_message_id(address)
        if message_id is not None:
            return ledger.unsubscribe_by_message(message_id)
    return None


def _process_report(report: BounceReport, inbound: InboundMessage, envelope_to: list[str]) -> ProcessResult:
    result = ProcessResult(inbound_id=inbound.pk, outcome="none")
    unsubscribed = _mailto_unsubscribe(envelope_to)
    if unsubscribed is not None:
        result.outcome = "unsubscribed"
        result.actions.append("unsubscribed (mailto)" if unsubscribed else "already unsubscribed")
        return result
    if not report.recipients:
        return result
    info, outcome = _attribute(report, envelope_to)
    if outcome in ("forged", "unknown_message"):
        result.outcome = outcome
        return result
    now = timezone.now()
    policy = BouncePolicy.current()
    lines: list[tuple[BounceRecipient, ledger.MessageInfo | None, int | None, str]] = []
    if info is not None:
        recipient = _pick_recipient(report, info)
        if recipient is None:
            result.outcome = "unmatched"
            return result
        lines.append((recipient, info, info.contact_id, "token"))
    else:
        for recipient in report.recipients:
            contact_id = (
                ledger.contact_id_for_address(recipient.address) if "@" in recipient.address else None
            )
            lines.append((recipient, None, contact_id, "recipient" if contact_id else ""))
    for recipient, message, contact_id, attributed_by in lines:
        event = BounceEvent.objects.create(
            inbound=inbound,
            at=now,
            source=inbound.source,
            kind=recipient.kind,
            reason=recipient.reason,
            status=recipient.status,
            diagnostic=recipient.diagnostic,
            recipient=recipient.address[:254],
            message_id=message.id if message else None,
            mailing_id=message.mailing_id if message else None,
            contact_id=contact_id,
            relay_id=message.relay_id if message else None,
            sending_domain=message.sending_domain if message else "",
            attributed_by=attributed_by,
        )
        email = message.email if message else recipient.address
        event.action = _apply(event, policy, email)
        event.save(update_fields=["action"])
        if message and recipient.kind in _MESSAGE_EVENT_KIND:
            ledger.record_message_event(
                message.id,
                _MESSAGE_EVENT_KIND[recipient.kind],
                {"bounce_event": event.pk, **recipient.as_dict()},
                now,
            )
        result.events.append(event.pk)
        result.actions.append(event.action)
    result.outcome = "applied" if any(c for _, _, c, _ in lines) else "unattributed"
    return result


def smtp_rejection_process(message_id: int, *, code: int, reply: str, stage: str) -> BounceEvent | None:
    """A relay's 5xx to RCPT or to the data during sending: a bounce we heard first-hand."""
    if stage not in ("rcpt", "data"):
        return None  # a refused MAIL FROM speaks of the sender, never of the recipient
    info = ledger.message_info(message_id)
    if info is None:
        return None
    diagnostic = f"{code} {reply}".strip()[:2000]
    status = find_status(diagnostic)
    reason = reason_for(status, diagnostic, str(code))
    if stage == "data" and rules.REASON_KIND.get(reason) == rules.HARD:
        reason = "filtered"  # refused after the content was seen: the content, not the address
    kind = kind_for(reason, status, "failed", str(code))
    with transaction.atomic():
        event = BounceEvent.objects.create(
            at=timezone.now(),
            source=InboundMessage.Source.SEND,
            kind=kind,
            reason=reason,
            status=status,
            diagnostic=diagnostic,
            recipient=info.email,
            message_id=info.id,
            mailing_id=info.mailing_id,
            contact_id=info.contact_id,
            relay_id=info.relay_id,
            sending_domain=info.sending_domain,
            attributed_by="token",
        )
        event.action = _apply(event, BouncePolicy.current(), info.email)
        event.save(update_fields=["action"])
    return event


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
    """An ESP's tracking event (normalised by the webhook tables). Stored once per event id;
    a retry of the same event returns None and changes nothing."""
    address = parseaddr(recipient)[1].lower()
    contact_id = ledger.contact_id_for_address(address) if address else None
    try:
        with transaction.atomic():
            event = BounceEvent.objects.create(
                at=at or timezone.now(),
                source=InboundMessage.Source.WEBHOOK,
                kind=kind,
                reason=reason,
                status=status[:16],
                diagnostic=diagnostic[:2000],
                recipient=address[:254],
                contact_id=contact_id,
                attributed_by="esp" if contact_id else "",
                esp=esp,
                esp_event_id=event_id[:200],
            )
            event.action = _apply(event, BouncePolicy.current(), address)
            event.save(update_fields=["action"])
    except IntegrityError:
        return None
    return event


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
