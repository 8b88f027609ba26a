"""Mailings: the immutable snapshot of what goes out, its plan and its life (start, pause, resume, cancel, done).

The Messages themselves are written by delivery.ledger; starting a Mailing hands it to
delivery.runners, which enqueues the send tasks when the transaction commits.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from delivery import ledger, runners
from delivery.headers import check_extra_headers, check_header_value
from delivery.identities import check_from
from delivery.models import Mailing, Message, MessageEvent, Relay
from delivery.relays import relay_ensure_default
from delivery.windows import check_window
from mailplatform.errors import Conflict, Invalid
from mailplatform.services import audit_record


def compiled_dict(compiled: Any) -> dict[str, Any]:
    if isinstance(compiled, dict):
        return compiled
    return compiled.to_dict()


def compiled_sha(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def mailing_create(
    *,
    name: str,
    compiled: Any,
    from_email: str,
    from_name: str = "",
    reply_to: str = "",
    headers: dict[str, str] | None = None,
    list_ids: Sequence[int] = (),
    relay_ids: Sequence[int] = (),
    kind: str = Mailing.Kind.MARKETING,
    send_group: str | None = None,
    track_opens: bool = True,
    track_clicks: bool = True,
    template_id: int | None = None,
    template_version_id: int | None = None,
    meta: dict[str, Any] | None = None,
    state: str = Mailing.State.DRAFT,
    send_window: dict[str, Any] | None = None,
) -> Mailing:
    """Snapshot what goes out. Raises Invalid naming the field that is wrong (Conflict for a state that forbids it).

    compiled: a templates.compiler.CompiledTemplate (or its to_dict()).
    list_ids: the lists this goes to; one-click unsubscribe leaves exactly these.
    relay_ids: the relay pool; empty means every enabled relay.
    send_group: Mailings sharing a group never mail one contact twice (A/B variants of a
        campaign pass e.g. "campaign:12"); default: a group of its own.
    headers: extra headers {name: value}; names the platform writes itself are refused.
    send_window: {"start": "09:00", "end": "17:00", "tz": zone or "contact"} (delivery.windows):
        kept in meta["window"]; outside it the engine holds the mail in the ledger.
    """
    window = check_window(send_window)
    if window is not None:
        meta = {**(meta or {}), "window": window.to_meta()}
    if kind not in Mailing.Kind.values:
        raise Invalid(f"kind must be one of {', '.join(Mailing.Kind.values)}", field="kind")
    from_email = from_email.strip()
    try:
        validate_email(from_email)
    except ValidationError:
        raise Invalid(
            f"from address {from_email!r} is not a valid email address", field="from_email"
        ) from None
    check_header_value(from_email, field="from address")
    check_header_value(from_name, field="from name")
    if reply_to:
        reply_to = reply_to.strip()
        check_header_value(reply_to, field="reply-to")
        try:
            validate_email(reply_to)
        except ValidationError:
            raise Invalid(f"reply-to {reply_to!r} is not a valid email address", field="reply_to") from None
    clean_headers = check_extra_headers(headers or {})
    data = compiled_dict(compiled)
    subject = str(data.get("subject", ""))
    check_header_value(subject, field="subject")
    identity = check_from(from_email)
    relays = list(Relay.objects.filter(pk__in=list(relay_ids)))
    if len(relays) != len(set(relay_ids)):
        raise Invalid("a relay in the pool does not exist", field="relays")
    with transaction.atomic():
        mailing = Mailing.objects.create(
            name=name[:200],
            kind=kind,
            send_group=(send_group or f"mailing:{uuid.uuid4().hex}")[:100],
            from_email=from_email,
            from_name=from_name,
            reply_to=reply_to,
            subject=subject[:998],
            compiled=data,
            compiled_sha=compiled_sha(data),
            headers=clean_headers,
            list_ids=sorted({int(i) for i in list_ids}),
            identity=identity,
            track_opens=track_opens,
            track_clicks=track_clicks,
            template_id=template_id,
            template_version_id=template_version_id,
            meta=meta or {},
            state=state,
        )
        if relays:
            mailing.relays.set(relays)
    return mailing


def mailing_plan(mailing_id: int, *, audience: tuple[str, list]) -> int:
    """Queue one Message per contact of the audience; returns how many are new. Idempotent.

    `audience` is contacts.selectors.audience_sql(...)'s (sql, params) selecting sendable
    contact ids; contacts already in the send group are skipped (delivery.ledger.plan).
    """
    mailing = Mailing.objects.get(pk=mailing_id)
    now = timezone.now()
    with transaction.atomic():
        created, total = ledger.plan(mailing, audience, now)
        Mailing.objects.filter(pk=mailing_id).update(planned_at=now, planned_count=total)
    return created


def mailing_queue_keyed(mailing_id: int, *, source: tuple[str, list]) -> int:
    """Queue keyed Messages on an open (standing) Mailing set-wise; returns how many are new.

    `source` is (sql, params) selecting (contact_id, idempotency_key, data); a key already in the
    ledger queues nothing (delivery.ledger.queue_keyed). Runners are dispatched on commit. The
    claim-time re-check (delivery.eligibility) applies as to any Message of the Mailing's kind.
    """
    mailing = Mailing.objects.get(pk=mailing_id)
    if mailing.state not in (Mailing.State.STANDING, Mailing.State.SENDING):
        raise Conflict(f"mailing {mailing_id} is {mailing.state}: nothing can be queued on it", code="state")
    created = ledger.queue_keyed(mailing, source, timezone.now())
    if created:
        transaction.on_commit(lambda: runners.dispatch(mailing_id))
    return created


def mailings_cancel_for_contacts(
    mailing_ids: Sequence[int], contact_ids: Sequence[int], *, reason: str
) -> int:
    """Nothing more of these Mailings goes to these contacts: their queued and held Messages are
    skipped (those being sent now are past stopping). Returns how many were skipped."""
    return ledger.skip_open_for_contacts(list(mailing_ids), list(contact_ids), reason[:200])


def mailing_start(mailing_id: int, *, audience: tuple[str, list] | None = None) -> Mailing:
    """Start sending; plans first when nothing is planned yet.

    The plan uses `audience` (contacts.selectors.audience_sql output) when given, else everyone
    sendable on the Mailing's lists. Dispatch to the workers happens when the transaction commits.
    """
    relay_ensure_default()
    with transaction.atomic():
        mailing = Mailing.objects.select_for_update().get(pk=mailing_id)
        if mailing.state in (Mailing.State.CANCELLED, Mailing.State.DONE):
            raise Conflict(f"mailing {mailing_id} is {mailing.state} and cannot be started", code="state")
        if mailing.planned_at is None and mailing.kind == Mailing.Kind.MARKETING:
            if audience is None and mailing.list_ids:
                from contacts.selectors import audience_sql

                audience = audience_sql(list_ids=list(mailing.list_ids))
            if audience is not None:
                mailing_plan(mailing_id, audience=audience)
        if mailing.state != Mailing.State.STANDING:
            mailing.state = Mailing.State.SENDING
        mailing.started_at = mailing.started_at or timezone.now()
        mailing.last_error = ""
        mailing.save(update_fields=["state", "started_at", "last_error"])
        transaction.on_commit(lambda: runners.dispatch(mailing_id))
    return mailing


def _switch(
    mailing_id: int, *, from_state: str, to_state: str, verb: str, by: Any, clear_error: bool = False
) -> Mailing:
    """Move a Mailing from one state to the next under a row lock, audited; refused from any other."""
    with transaction.atomic():
        mailing = Mailing.objects.select_for_update().get(pk=mailing_id)
        if mailing.state != from_state:
            raise Conflict(
                f"only a {from_state} mailing can be {verb} (this one is {mailing.state})", code="state"
            )
        mailing.state = to_state
        mailing.paused_at = timezone.now() if to_state == Mailing.State.PAUSED else None
        fields = ["state", "paused_at"]
        if clear_error:
            mailing.last_error = ""
            fields.append("last_error")
        mailing.save(update_fields=fields)
        audit_record(by, f"mailing.{verb}", mailing)
    return mailing


def mailing_pause(mailing_id: int, *, by: Any = None) -> Mailing:
    """Workers stop after the chunk they are sending; what they held goes back to the queue."""
    return _switch(
        mailing_id, from_state=Mailing.State.SENDING, to_state=Mailing.State.PAUSED, verb="paused", by=by
    )


def mailing_resume(mailing_id: int, *, by: Any = None) -> Mailing:
    with transaction.atomic():
        mailing = _switch(
            mailing_id,
            from_state=Mailing.State.PAUSED,
            to_state=Mailing.State.SENDING,
            verb="resumed",
            by=by,
            clear_error=True,
        )
        transaction.on_commit(lambda: runners.dispatch(mailing_id))
    return mailing


def mailing_cancel(mailing_id: int, *, by: Any = None) -> Mailing:
    """Nothing more goes out; queued and deferred Messages become skipped."""
    with transaction.atomic():
        mailing = Mailing.objects.select_for_update().get(pk=mailing_id)
        if mailing.state in (Mailing.State.DONE, Mailing.State.CANCELLED, Mailing.State.STANDING):
            raise Conflict(f"a {mailing.state} mailing cannot be cancelled", code="state")
        mailing.state = Mailing.State.CANCELLED
        mailing.finished_at = timezone.now()
        mailing.save(update_fields=["state", "finished_at"])
        ledger.skip_open(mailing_id, "mailing cancelled")
        audit_record(by, "mailing.cancelled", mailing)
    return mailing


def mailing_finish_if_done(mailing_id: int) -> bool:
    """Mark a sending mailing done when no Message is left to send."""
    if ledger.has_open(mailing_id):
        return False
    # A finished mailing has no problem left to show: whatever a runner said on the way is over.
    return bool(
        Mailing.objects.filter(pk=mailing_id, state=Mailing.State.SENDING).update(
            state=Mailing.State.DONE, finished_at=timezone.now(), last_error=""
        )
    )


def mailing_set_error(mailing_id: int, error: str) -> None:
    """Say why a Mailing is not going out; only while it is open (a runner late with "every relay is
    failing" must not mark a mailing another runner has just finished)."""
    Mailing.objects.filter(
        pk=mailing_id, state__in=[Mailing.State.SENDING, Mailing.State.STANDING, Mailing.State.PAUSED]
    ).update(last_error=error[:2000])


def mailing_clear_error(mailing_id: int) -> None:
    """Mail is going out again: the condition the error named is gone (a write only when there was one)."""
    Mailing.objects.filter(pk=mailing_id).exclude(last_error="").update(last_error="")


def unsubscribe_by_message(message_id: int, *, source: str = "one-click") -> bool:
    """One-click unsubscribe: leave the lists the Mailing was sent to. True when it changed something."""
    from contacts.services import contact_unsubscribe

    message = Message.objects.select_related("mailing").filter(pk=message_id).first()
    if message is None:
        return False
    with transaction.atomic():
        if MessageEvent.objects.filter(message_id=message_id, kind=MessageEvent.Kind.UNSUBSCRIBED).exists():
            return False
        if message.contact_id is not None:
            contact_unsubscribe(message.contact_id, list_ids=message.mailing.list_ids or None, source=source)
        MessageEvent.objects.create(
            message_id=message_id,
            mailing_id=message.mailing_id,
            kind=MessageEvent.Kind.UNSUBSCRIBED,
            at=timezone.now(),
            data={"source": source, "list_ids": message.mailing.list_ids},
        )
    return True


# --- one receiving domain group of a Mailing (the deliverability guard) ---

# Mail the guard holds for a group waits for a person, not a time: its not-before is far away.
GUARD_HOLD = dt.timedelta(days=3650)


def mailing_pause_group(mailing_id: int, group: str, *, reason: str, by: Any = None) -> bool:
    """Hold this Mailing's mail to one receiving domain group (the others keep flowing); False when
    that group was already paused, or resumed by a person (then the guard leaves it alone)."""
    from delivery import domains
    from delivery.models import GroupPause, HoldReason

    with transaction.atomic():
        mailing = Mailing.objects.select_for_update().get(pk=mailing_id)
        pause, created = GroupPause.objects.get_or_create(
            mailing=mailing, group=group, defaults={"reason": reason[:2000]}
        )
        if not created:
            return False
        held = ledger.hold_domains(
            mailing_id, domains.members(group), timezone.now() + GUARD_HOLD, HoldReason.GUARD
        )
        audit_record(
            by, "mailing.group_paused", mailing, details={"group": group, "held": held, "reason": reason}
        )
    return True


def mailing_resume_group(mailing_id: int, group: str, *, by: Any = None) -> int:
    """Let a paused receiving domain group go on: its held mail back to the queue; the guard does
    not pause it again for this Mailing. Returns how many Messages came back."""
    from delivery import domains
    from delivery.models import GroupPause, HoldReason

    with transaction.atomic():
        mailing = Mailing.objects.select_for_update().get(pk=mailing_id)
        pause = GroupPause.objects.filter(mailing=mailing, group=group, resumed_at__isnull=True).first()
        if pause is None:
            raise Conflict(f"{group} is not paused for this mailing", code="state")
        pause.resumed_at = timezone.now()
        pause.save(update_fields=["resumed_at"])
        back = ledger.release_domains(mailing_id, domains.members(group), HoldReason.GUARD)
        audit_record(by, "mailing.group_resumed", mailing, details={"group": group, "requeued": back})
        if mailing.state == Mailing.State.SENDING:
            transaction.on_commit(lambda: runners.dispatch(mailing_id))
    return back
