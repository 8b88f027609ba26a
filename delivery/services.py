"""Writes of the delivery app: relays, identities, Mailings, the ledger and its events.

The send loop itself is in delivery.engine; the Celery tasks in delivery.tasks only load ids
and call these functions.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import validate_email
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from delivery import dkim
from delivery.headers import check_extra_headers, check_header_value
from delivery.models import (
    PORT_SECURITY,
    Mailing,
    Message,
    MessageEvent,
    MessageState,
    Relay,
    SendingIdentity,
)
from delivery.smtp import RelayError, SessionInfo, test_connection
from mailplatform import crypto
from mailplatform.services import audit_record

CAPTURE_RELAY_NAME = "Capture relay (local)"


# --- relays ---


def relay_ensure_default() -> Relay | None:
    """On a fresh install (no relay at all) point a relay at the capture relay so mail can go at once."""
    if Relay.objects.exists():
        return None
    relay, _ = Relay.objects.get_or_create(
        name=CAPTURE_RELAY_NAME,
        defaults={
            "host": settings.CAPTURE_SMTP_HOST,
            "port": settings.CAPTURE_SMTP_PORT,
            "security": "none",
            "max_connections": 4,
        },
    )
    return relay


def relay_save(
    relay: Relay | None = None,
    *,
    by: Any = None,
    password: str | None = None,
    **fields: Any,
) -> Relay:
    """Create or update a relay. `password=None` keeps the stored one; "" clears it."""
    relay = relay or Relay()
    creating = relay.pk is None
    for name, value in fields.items():
        setattr(relay, name, value)
    if creating and "security" not in fields and relay.port in PORT_SECURITY:
        relay.security = PORT_SECURITY[relay.port]
    if password is not None:
        relay.password_encrypted = crypto.encrypt(password)
    relay.full_clean()
    with transaction.atomic():
        relay.save()
        changed = sorted(set(fields) | ({"password"} if password is not None else set()))
        audit_record(by, "relay.created" if creating else "relay.updated", relay, details={"fields": changed})
    return relay


def relay_delete(relay: Relay, *, by: Any) -> None:
    with transaction.atomic():
        audit_record(by, "relay.deleted", relay)
        relay.delete()


def relay_password(relay: Relay) -> str:
    return crypto.decrypt(relay.password_encrypted)


def relay_test(relay: Relay, *, timeout: float = 10.0) -> SessionInfo:
    """Connect, EHLO, STARTTLS and AUTH; records the capabilities or the error on the relay."""
    try:
        info = test_connection(
            relay.host,
            relay.port,
            security=relay.security,
            verify_certificate=relay.verify_certificate,
            username=relay.username,
            password=relay_password(relay),
            helo_name=relay.helo_name,
            timeout=timeout,
        )
    except RelayError as exc:
        relay_record_failure(relay.pk, str(exc), back_off=False)
        raise
    Relay.objects.filter(pk=relay.pk).update(
        capabilities=info.esmtp,
        last_success_at=timezone.now(),
        last_error="",
        consecutive_failures=0,
        backed_off_until=None,
    )
    return info


def relay_record_failure(relay_id: int, error: str, *, back_off: bool = True) -> None:
    """The relay failed (connection, TLS, AUTH, 421): back it off so the others take its share."""
    now = timezone.now()
    with transaction.atomic():
        relay = Relay.objects.select_for_update().filter(pk=relay_id).first()
        if relay is None:
            return
        relay.consecutive_failures += 1
        relay.last_error = error[:2000]
        relay.last_error_at = now
        if back_off:
            seconds = min(
                settings.DELIVERY_RELAY_BACKOFF_BASE_SECONDS * 2 ** min(relay.consecutive_failures - 1, 20),
                settings.DELIVERY_RELAY_BACKOFF_MAX_SECONDS,
            )
            relay.backed_off_until = now + dt.timedelta(seconds=seconds)
        relay.save(update_fields=["consecutive_failures", "last_error", "last_error_at", "backed_off_until"])


def relay_record_success(relay_id: int, capabilities: dict[str, str] | None = None) -> None:
    fields: dict[str, Any] = {
        "last_success_at": timezone.now(),
        "consecutive_failures": 0,
        "backed_off_until": None,
    }
    if capabilities is not None:
        fields["capabilities"] = capabilities
    Relay.objects.filter(pk=relay_id).update(**fields)


# --- sending identities ---


def identity_save(
    identity: SendingIdentity | None = None,
    *,
    address: str,
    dkim_selector: str = "",
    enabled: bool = True,
    by: Any = None,
) -> SendingIdentity:
    address = address.strip().lower()
    check_header_value(address, field="address")
    if "@" in address:
        validate_email(address)
    elif not address or "." not in address or " " in address:
        raise ValidationError(f"{address!r} is neither an email address nor a domain", code="address")
    identity = identity or SendingIdentity()
    creating = identity.pk is None
    identity.address = address
    identity.dkim_selector = dkim_selector.strip().lower()
    identity.enabled = enabled
    identity.full_clean()
    with transaction.atomic():
        identity.save()
        audit_record(by, "identity.created" if creating else "identity.updated", identity)
    return identity


def identity_generate_dkim(
    identity: SendingIdentity, *, selector: str | None = None, by: Any = None
) -> SendingIdentity:
    """A fresh 2048-bit key; the DNS record to publish is identity.dkim_dns_name / dkim_dns_value."""
    pem, public = dkim.generate_private_key()
    identity.dkim_selector = (selector or identity.dkim_selector or timezone.now().strftime("ph%Y%m")).lower()
    identity.dkim_private_key_encrypted = crypto.encrypt(pem)
    identity.dkim_public_key = public
    with transaction.atomic():
        identity.save()
        audit_record(by, "identity.dkim_generated", identity, details={"selector": identity.dkim_selector})
    return identity


def identity_for(from_email: str) -> SendingIdentity | None:
    """The identity that allows this from address: the exact address first, then its domain."""
    address = from_email.strip().lower()
    domain = address.rsplit("@", 1)[-1]
    found = {
        i.address: i for i in SendingIdentity.objects.filter(enabled=True, address__in=[address, domain])
    }
    return found.get(address) or found.get(domain)


def _check_from(from_email: str) -> SendingIdentity | None:
    """Once an admin has configured any identity, from addresses must match one."""
    identity = identity_for(from_email)
    if identity is None and SendingIdentity.objects.filter(enabled=True).exists():
        raise ValidationError(
            f"{from_email} is not an allowed sender: add it (or its domain) under Delivery > Sending identities",
            code="from_email",
        )
    return identity


# --- mailings ---


def _compiled_dict(compiled: Any) -> dict[str, Any]:
    if isinstance(compiled, dict):
        return compiled
    return compiled.to_dict()


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
) -> Mailing:
    """Snapshot what goes out. Raises ValidationError naming the field that is wrong.

    compiled: a templates.compiler.CompiledTemplate (or its to_dict()).
    list_ids: the lists this goes to; one-click unsubscribe leaves exactly these.
    relay_ids: the relay pool; empty means every enabled relay.
    send_group: Mailings sharing a group never mail one contact twice (A/B variants of a
        campaign pass e.g. "campaign:12"); default: a group of its own.
    headers: extra headers {name: value}; names the platform writes itself are refused.
    """
    if kind not in Mailing.Kind.values:
        raise ValidationError(f"kind must be one of {', '.join(Mailing.Kind.values)}", code="kind")
    from_email = from_email.strip()
    try:
        validate_email(from_email)
    except ValidationError:
        raise ValidationError(
            f"from address {from_email!r} is not a valid email address", code="from_email"
        ) from None
    check_header_value(from_email, field="from address")
    check_header_value(from_name, field="from name")
    if reply_to:
        reply_to = reply_to.strip()
        check_header_value(reply_to, field="reply-to")
        try:
            validate_email(reply_to)
        except ValidationError:
            raise ValidationError(
                f"reply-to {reply_to!r} is not a valid email address", code="reply_to"
            ) from None
    clean_headers = check_extra_headers(headers or {})
    data = _compiled_dict(compiled)
    subject = str(data.get("subject", ""))
    check_header_value(subject, field="subject")
    identity = _check_from(from_email)
    relays = list(Relay.objects.filter(pk__in=list(relay_ids)))
    if len(relays) != len(set(relay_ids)):
        raise ValidationError("a relay in the pool does not exist", code="relays")
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

    `audience` is contacts.selectors.audience_sql(...)'s (sql, params), selecting sendable
    contact ids. One INSERT ... SELECT: contacts already in the send group (another variant,
    an earlier run) are skipped by the unique (send_group, contact) constraint.
    """
    sql, params = audience
    mailing = Mailing.objects.get(pk=mailing_id)
    now = timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO delivery_message
                (mailing_id, send_group, contact_id, email, state, attempts, smtp_reply, created_at)
            SELECT %s, %s, t.id, t.email, 'queued', 0, '', %s
            FROM contacts_contact t
            WHERE t.id IN ({sql})
            ORDER BY t.id
            ON CONFLICT (send_group, contact_id) WHERE idempotency_key IS NULL DO NOTHING
            """,  # noqa: S608 - `sql` is audience_sql's parameterised query, not user text
            [mailing.pk, mailing.send_group, now, *params],
        )
        created = cursor.rowcount
        Mailing.objects.filter(pk=mailing_id).update(
            planned_at=now, planned_count=Message.objects.filter(mailing_id=mailing_id).count()
        )
    return max(created, 0)


def mailing_start(mailing_id: int, *, audience: tuple[str, list] | None = None) -> Mailing:
    """Start sending; plans first when nothing is planned yet.

    The plan uses `audience` (contacts.selectors.audience_sql output) when given, else everyone
    sendable on the Mailing's lists. Dispatch to the workers happens when the transaction commits.
    """
    relay_ensure_default()
    with transaction.atomic():
        mailing = Mailing.objects.select_for_update().get(pk=mailing_id)
        if mailing.state in (Mailing.State.CANCELLED, Mailing.State.DONE):
            raise ValidationError(
                f"mailing {mailing_id} is {mailing.state} and cannot be started", code="state"
            )
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
        transaction.on_commit(lambda: _dispatch(mailing_id))
    return mailing


def _dispatch(mailing_id: int) -> None:
    from delivery.engine import dispatch

    dispatch(mailing_id)


def mailing_pause(mailing_id: int, *, by: Any = None) -> Mailing:
    """Workers stop after the chunk they are sending; what they held goes back to the queue."""
    with transaction.atomic():
        mailing = Mailing.objects.select_for_update().get(pk=mailing_id)
        if mailing.state != Mailing.State.SENDING:
            raise ValidationError(
                f"only a sending mailing can be paused (this one is {mailing.state})", code="state"
            )
        mailing.state = Mailing.State.PAUSED
        mailing.save(update_fields=["state"])
        audit_record(by, "mailing.paused", mailing)
    return mailing


def mailing_resume(mailing_id: int, *, by: Any = None) -> Mailing:
    with transaction.atomic():
        mailing = Mailing.objects.select_for_update().get(pk=mailing_id)
        if mailing.state != Mailing.State.PAUSED:
            raise ValidationError(
                f"only a paused mailing can be resumed (this one is {mailing.state})", code="state"
            )
        mailing.state = Mailing.State.SENDING
        mailing.last_error = ""
        mailing.save(update_fields=["state", "last_error"])
        audit_record(by, "mailing.resumed", mailing)
        transaction.on_commit(lambda: _dispatch(mailing_id))
    return mailing


def mailing_cancel(mailing_id: int, *, by: Any = None) -> Mailing:
    """Nothing more goes out; queued and deferred Messages become skipped."""
    with transaction.atomic():
        mailing = Mailing.objects.select_for_update().get(pk=mailing_id)
        if mailing.state in (Mailing.State.DONE, Mailing.State.CANCELLED, Mailing.State.STANDING):
            raise ValidationError(f"a {mailing.state} mailing cannot be cancelled", code="state")
        mailing.state = Mailing.State.CANCELLED
        mailing.finished_at = timezone.now()
        mailing.save(update_fields=["state", "finished_at"])
        Message.objects.filter(
            mailing_id=mailing_id, state__in=[MessageState.QUEUED, MessageState.DEFERRED]
        ).update(state=MessageState.SKIPPED, smtp_reply="mailing cancelled", next_attempt_at=None)
        audit_record(by, "mailing.cancelled", mailing)
    return mailing


def mailing_finish_if_done(mailing_id: int) -> bool:
    """Mark a sending mailing done when no Message is left to send."""
    open_states = [MessageState.QUEUED, MessageState.SENDING, MessageState.DEFERRED]
    if Message.objects.filter(mailing_id=mailing_id, state__in=open_states).exists():
        return False
    return bool(
        Mailing.objects.filter(pk=mailing_id, state=Mailing.State.SENDING).update(
            state=Mailing.State.DONE, finished_at=timezone.now()
        )
    )


def mailing_set_error(mailing_id: int, error: str) -> None:
    Mailing.objects.filter(pk=mailing_id).update(last_error=error[:2000])


# --- events ---


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


# --- transactional ---


def compiled_sha(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _standing_mailing_for_template(template_id: int, version_id: int | None) -> Mailing:
    """The open transactional Mailing for this template as it is now (a new one after an edit)."""
    from templates.models import EmailTemplate
    from templates.services import template_compile

    template = EmailTemplate.objects.filter(pk=template_id).values("name", "current_version_id").first()
    if template is None:
        raise ValidationError(f"template {template_id} does not exist", code="template_id")
    data = _compiled_dict(template_compile(template_id, version_id))
    sha = compiled_sha(data)
    existing = Mailing.objects.filter(
        state=Mailing.State.STANDING, template_id=template_id, compiled_sha=sha
    ).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            return mailing_create(
                name=f"Transactional: {template['name']}",
                compiled=data,
                from_email=settings.DELIVERY_DEFAULT_FROM_EMAIL,
                from_name=settings.DELIVERY_DEFAULT_FROM_NAME,
                kind=Mailing.Kind.TRANSACTIONAL,
                send_group=f"transactional:{template_id}",
                template_id=template_id,
                template_version_id=version_id or template["current_version_id"],
                state=Mailing.State.STANDING,
                track_opens=False,
                track_clicks=False,
            )
    except IntegrityError:  # another request created it first
        return Mailing.objects.get(state=Mailing.State.STANDING, template_id=template_id, compiled_sha=sha)


def _recipient(to: int | str) -> tuple[int | None, str]:
    """(contact id, address) for a contact id or a bare address."""
    from contacts.models import Contact

    if isinstance(to, int) or (isinstance(to, str) and to.isdigit()):
        contact = Contact.objects.filter(pk=int(to)).values_list("id", "email").first()
        if contact is None:
            raise ValidationError(f"contact {to} does not exist", code="to")
        return contact[0], contact[1]
    address = str(to).strip()
    check_header_value(address, field="to")
    try:
        validate_email(address)
    except ValidationError:
        raise ValidationError(f"{address!r} is not a valid email address", code="to") from None
    contact_id = Contact.objects.filter(email__iexact=address).values_list("id", flat=True).first()
    return contact_id, address


def transactional_queue(
    mailing: Mailing, *, to: int | str, data: dict[str, Any] | None, idempotency_key: str | None
) -> Message:
    """Queue one Message on a standing (or one-off) Mailing; the same key returns the same Message."""
    from contacts.selectors import address_is_suppressed, unsendable_contact_ids

    # Every transactional path (API, test sends, confirmations) comes through here.
    relay_ensure_default()

    if idempotency_key is not None:
        idempotency_key = str(idempotency_key).strip()
        if not idempotency_key or len(idempotency_key) > 200:
            raise ValidationError("idempotency_key must be 1 to 200 characters", code="idempotency_key")
        existing = Message.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing
    contact_id, address = _recipient(to)
    blocked = address_is_suppressed(address) or (
        contact_id is not None and contact_id in unsendable_contact_ids([contact_id], transactional=True)
    )
    message = Message(
        mailing=mailing,
        send_group=mailing.send_group,
        contact_id=contact_id,
        email=address,
        state=MessageState.SKIPPED if blocked else MessageState.QUEUED,
        smtp_reply="address is suppressed, bounced or complained" if blocked else "",
        idempotency_key=idempotency_key or f"auto:{uuid.uuid4().hex}",
        data=data or {},
    )
    try:
        with transaction.atomic():
            message.save()
    except IntegrityError:
        existing = Message.objects.filter(idempotency_key=message.idempotency_key).first()
        if existing is None:
            raise
        return existing
    if not blocked:
        transaction.on_commit(lambda: _dispatch(mailing.pk))
    return message


def transactional_send(
    *,
    template_id: int,
    to: int | str,
    data: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    version_id: int | None = None,
) -> Message:
    """One template to one contact (id) or address, now, through the engine and the ledger.

    Skips bounced, complained, blocklisted and suppressed addresses (the Message is `skipped`),
    not marketing unsubscribes. A repeated idempotency_key returns the first Message unchanged.
    """
    if data is not None and not isinstance(data, dict):
        raise ValidationError("data must be an object", code="data")
    if idempotency_key is not None:
        existing = Message.objects.filter(idempotency_key=str(idempotency_key).strip()).first()
        if existing is not None:
            return existing
    mailing = _standing_mailing_for_template(template_id, version_id)
    return transactional_queue(mailing, to=to, data=data, idempotency_key=idempotency_key)


# Every test send carries this header, so the capture relay (and a reader's filters) can tell it apart.
TEST_HEADER = "X-Posthorn-Test"


def test_send_many(
    compiled: Any,
    to_addresses: Sequence[str],
    *,
    from_email: str | None = None,
    from_name: str = "",
    reply_to: str = "",
    data: dict[str, Any] | None = None,
    contact: dict[str, Any] | None = None,
    name: str = "Test send",
    by: Any = None,
) -> list[Message]:
    """ "Send a test": a one-off Mailing of this compiled template to a few addresses, through the engine.

    Each recipient sees `contact` (a real contact's merge data, chosen by the caller) when given,
    else sample data; `data` is merged over it like a transactional send's.
    """
    mailing = mailing_create(
        name=name,
        compiled=compiled,
        from_email=from_email or settings.DELIVERY_DEFAULT_FROM_EMAIL,
        from_name=from_name or settings.DELIVERY_DEFAULT_FROM_NAME,
        reply_to=reply_to,
        headers={TEST_HEADER: "yes"},
        kind=Mailing.Kind.TRANSACTIONAL,
        state=Mailing.State.SENDING,
        track_opens=False,
        track_clicks=False,
        meta={"test": True},
    )
    # Stored on the Message as JSON: a date attribute becomes its ISO text, as a template shows it.
    extra = {"__test__": True, **(data or {})}
    if contact is not None:
        extra["__contact__"] = json.loads(json.dumps(contact, cls=DjangoJSONEncoder))
    messages = []
    with transaction.atomic():
        Mailing.objects.filter(pk=mailing.pk).update(started_at=timezone.now())
        for address in to_addresses:
            messages.append(transactional_queue(mailing, to=address, data=extra, idempotency_key=None))
        audit_record(by, "mailing.test_sent", mailing, details={"to": list(to_addresses)})
    return messages


def test_send(compiled: Any, to_address: str, **options: Any) -> Message:
    """One address: see test_send_many."""
    return test_send_many(compiled, [to_address], **options)[0]


test_send.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
test_send_many.__test__ = False  # type: ignore[attr-defined]


# --- outcomes, recovery, retention (the engine calls these) ---


def _values(rows: Iterable[tuple], width: int) -> tuple[str, list]:
    params: list = []
    placeholders = []
    row_sql = "(" + ", ".join(["%s"] * width) + ")"
    for row in rows:
        placeholders.append(row_sql)
        params.extend(row)
    return ", ".join(placeholders), params


# Lease and retry times use clock_timestamp(), not now(): now() is the start of the transaction,
# which in a long transaction (or a test) would freeze the clock the leases are measured by.


def leases_recover() -> int:
    """Messages whose lease expired (their worker was lost) go back to the queue, marked as maybe sent."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE delivery_message SET state = 'queued', lease_expires_at = NULL, recovered_at = clock_timestamp()
            WHERE state = 'sending' AND lease_expires_at < clock_timestamp()
            """
        )
        return cursor.rowcount


def deferred_requeue() -> int:
    """Deferred Messages whose next attempt is due go back to the queue; too old ones fail."""
    max_age = dt.timedelta(seconds=settings.DELIVERY_MAX_AGE_SECONDS)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE delivery_message SET state = 'failed', next_attempt_at = NULL,
                smtp_reply = 'gave up: still deferred after the maximum age. Last reply: ' || smtp_reply
            WHERE state = 'deferred' AND created_at < clock_timestamp() - %s
            """,
            [max_age],
        )
        cursor.execute(
            """
            UPDATE delivery_message SET state = 'queued'
            WHERE state = 'deferred' AND next_attempt_at <= clock_timestamp()
            """
        )
        return cursor.rowcount


def ledger_prune(*, days: int | None = None, batch: int = 10000) -> int:
    """Delete ledger rows (and their events) older than the retention; finished Mailings only."""
    days = settings.DELIVERY_RETENTION_DAYS if days is None else days
    if days <= 0:
        return 0
    cutoff = timezone.now() - dt.timedelta(days=days)
    total = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                """
                WITH doomed AS (
                    SELECT id FROM delivery_message
                    WHERE created_at < %s AND state IN ('sent', 'failed', 'skipped')
                    ORDER BY created_at LIMIT %s
                ), events AS (
                    DELETE FROM delivery_messageevent WHERE message_id IN (SELECT id FROM doomed)
                )
                DELETE FROM delivery_message WHERE id IN (SELECT id FROM doomed)
                """,
                [cutoff, batch],
            )
            deleted = cursor.rowcount
        total += deleted
        if deleted < batch:
            break
    # Events outlive nothing: old events of kept Messages go too (opens and clicks pile up).
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM delivery_messageevent WHERE at < %s", [cutoff])
    Mailing.objects.filter(
        state__in=[Mailing.State.DONE, Mailing.State.CANCELLED], finished_at__lt=cutoff, messages__isnull=True
    ).delete()
    return total


def new_runner_token() -> str:
    return secrets.token_hex(8)


# --- platform mail: double opt-in confirmation ---

CONFIRMATION_SUBJECT = "Please confirm your subscription to {{ list_name }}"
CONFIRMATION_HTML = """<!doctype html>
<html><body style="font-family: Arial, sans-serif; color: #1f2933;">
<p>Hello {{ contact.first_name | default: "there" }},</p>
<p>Someone (we hope you) asked to subscribe {{ contact.email }} to <strong>{{ list_name }}</strong>.</p>
<p><a href="{{ confirm_url }}" style="display:inline-block;padding:10px 18px;background:#2f5bea;color:#fff;
text-decoration:none;border-radius:6px">Confirm my subscription</a></p>
<p>If you did not ask for this, ignore this message: you will not be subscribed.</p>
</body></html>"""


def _confirmation_mailing() -> Mailing:
    from templates.compiler import compile_template

    data = _compiled_dict(compile_template(subject=CONFIRMATION_SUBJECT, html=CONFIRMATION_HTML))
    sha = compiled_sha(data)
    existing = Mailing.objects.filter(
        state=Mailing.State.STANDING, meta__system="confirmation", compiled_sha=sha
    ).first()
    if existing is not None:
        return existing
    return mailing_create(
        name="Subscription confirmations",
        compiled=data,
        from_email=settings.DELIVERY_DEFAULT_FROM_EMAIL,
        from_name=settings.DELIVERY_DEFAULT_FROM_NAME,
        kind=Mailing.Kind.TRANSACTIONAL,
        send_group="system:confirmation",
        state=Mailing.State.STANDING,
        track_opens=False,
        track_clicks=False,
        meta={"system": "confirmation"},
    )


def confirmation_send(subscription_id: int, confirm_url: str) -> Message | None:
    from contacts.models import Subscription

    subscription = Subscription.objects.select_related("mailing_list").filter(pk=subscription_id).first()
    if subscription is None:
        return None
    key = f"confirm:{subscription_id}:{hashlib.sha256(confirm_url.encode()).hexdigest()[:24]}"
    return transactional_queue(
        _confirmation_mailing(),
        to=subscription.contact_id,
        data={"confirm_url": confirm_url, "list_name": subscription.mailing_list.name},
        idempotency_key=key,
    )
