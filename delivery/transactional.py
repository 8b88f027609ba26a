"""Transactional sends: one template to one recipient now, test sends, and the platform's own mail.

Each goes through a Mailing like a campaign does (a standing one per template content, a one-off
one per test send) and through the same ledger, eligibility check and engine.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from delivery import eligibility, ledger, runners
from delivery.headers import check_header_value
from delivery.mailings import compiled_dict, compiled_sha, mailing_create
from delivery.models import Mailing, Message
from delivery.relays import relay_ensure_default
from mailplatform.errors import Conflict, Invalid
from mailplatform.services import audit_record


def _standing_mailing_for_template(template_id: int, version_id: int | None) -> Mailing:
    """The open transactional Mailing for this template as it is now (a new one after an edit)."""
    from templates.models import EmailTemplate
    from templates.services import template_compile

    template = EmailTemplate.objects.filter(pk=template_id).values("name", "current_version_id").first()
    if template is None:
        raise Invalid(f"template {template_id} does not exist", field="template_id")
    return _standing_mailing(
        compiled_dict(template_compile(template_id, version_id)),
        {"template_id": template_id},
        name=f"Transactional: {template['name']}",
        send_group=f"transactional:{template_id}",
        template_id=template_id,
        template_version_id=version_id or template["current_version_id"],
    )


def _standing_mailing(data: dict[str, Any], lookup: dict[str, Any], **create: Any) -> Mailing:
    """The standing transactional Mailing that `lookup` names, for this compiled content: made on
    first use and again after the content changes; two requests racing get the same one."""
    standing = Mailing.objects.filter(state=Mailing.State.STANDING, compiled_sha=compiled_sha(data), **lookup)
    existing = standing.first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            create.setdefault("from_email", settings.DELIVERY_DEFAULT_FROM_EMAIL)
            create.setdefault("from_name", settings.DELIVERY_DEFAULT_FROM_NAME)
            return mailing_create(
                compiled=data,
                kind=Mailing.Kind.TRANSACTIONAL,
                state=Mailing.State.STANDING,
                track_opens=False,
                track_clicks=False,
                **create,
            )
    except IntegrityError:  # another request created it first
        return standing.get()


def _recipient(to: int | str) -> tuple[int | None, str]:
    """(contact id, address) for a contact id or a bare address."""
    from contacts.models import Contact

    if isinstance(to, int) or (isinstance(to, str) and to.isdigit()):
        contact = Contact.objects.filter(pk=int(to)).values_list("id", "email").first()
        if contact is None:
            raise Invalid(f"contact {to} does not exist", field="to")
        return contact[0], contact[1]
    address = str(to).strip()
    check_header_value(address, field="to")
    try:
        validate_email(address)
    except ValidationError:
        raise Invalid(f"{address!r} is not a valid email address", field="to") from None
    contact_id = Contact.objects.filter(email__iexact=address).values_list("id", flat=True).first()
    return contact_id, address


def _checked_key(idempotency_key: str | None) -> str | None:
    if idempotency_key is None:
        return None
    key = str(idempotency_key).strip()
    if not key or len(key) > 200:
        raise Invalid("idempotency_key must be 1 to 200 characters", field="idempotency_key")
    return key


def _same_request(message: Message, template_id: int, to: int | str, data: dict[str, Any]) -> bool:
    text = str(to).strip()
    same_to = message.contact_id == int(text) if text.isdigit() else message.email.lower() == text.lower()
    return message.mailing.template_id == template_id and same_to and (message.data or {}) == data


def transactional_queue(
    mailing: Mailing, *, to: int | str, data: dict[str, Any] | None, idempotency_key: str | None
) -> Message:
    """Queue one Message on a standing (or one-off) Mailing; the same key returns the same Message."""
    return _queue(mailing, to=to, data=data, key=_checked_key(idempotency_key))[0]


def _queue(
    mailing: Mailing, *, to: int | str, data: dict[str, Any] | None, key: str | None
) -> tuple[Message, bool]:
    # Every transactional path (API, test sends, confirmations) comes through here. A key already
    # in the ledger comes back from ledger.queue_one (its unique index decides, races included).
    relay_ensure_default()
    contact_id, address = _recipient(to)
    blocked = bool(eligibility.unsendable(mailing, [(0, contact_id, address)]))
    message, created = ledger.queue_one(
        mailing,
        contact_id=contact_id,
        email=address,
        idempotency_key=key or f"auto:{uuid.uuid4().hex}",
        data=data or {},
        skip_reason="address is suppressed, bounced or complained" if blocked else "",
    )
    if created and not blocked:
        transaction.on_commit(lambda: runners.dispatch(mailing.pk))
    return message, created


def transactional_request(
    *,
    template_id: int,
    to: int | str,
    data: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    version_id: int | None = None,
) -> tuple[Message, bool]:
    """One template to one contact (id) or address, now: (the Message, whether it was a replay).

    Idempotency is decided here and nowhere else: a key seen before returns its Message unchanged
    when the request is the same (template, recipient, data) and is refused with a Conflict when it
    is not; ledger.queue_one settles two requests that race with one key. Skips bounced,
    complained, blocklisted and suppressed addresses (the Message is `skipped`), not marketing
    unsubscribes.
    """
    if data is not None and not isinstance(data, dict):
        raise Invalid("data must be an object", field="data")
    key = _checked_key(idempotency_key)
    if key is not None:
        existing = ledger.by_idempotency_key(key)
        if existing is not None:
            if not _same_request(existing, template_id, to, data or {}):
                raise Conflict(
                    "This Idempotency-Key was used for a different request (template, recipient or data).",
                    code="idempotency_key_reused",
                    field="idempotency_key",
                )
            return existing, True
    mailing = _standing_mailing_for_template(template_id, version_id)
    message, created = _queue(mailing, to=to, data=data, key=key)
    return message, not created


def transactional_send(**request: Any) -> Message:
    """transactional_request's Message (see there)."""
    return transactional_request(**request)[0]


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


# --- platform mail: double opt-in confirmation, password reset ---

EMAIL_TEMPLATES = Path(__file__).parent / "templates" / "delivery" / "email"
CONFIRMATION_SUBJECT = "Please confirm your subscription to {{ list_name }}"
CONFIRMATION_HTML = EMAIL_TEMPLATES / "confirmation.html"
PASSWORD_RESET_SUBJECT = "Reset your Posthorn password"
PASSWORD_RESET_HTML = EMAIL_TEMPLATES / "password_reset.html"


@cache
def _system_html(path: Path) -> str:
    # Liquid (compiled by templates.compiler like any email template), not a Django template: read
    # as text. The final newline is the file's, not the mail's (the snapshot's sha stays the same).
    return path.read_text(encoding="utf-8").removesuffix("\n")


def _system_mailing(system: str, name: str, subject: str, html_path: Path) -> Mailing:
    """The standing Mailing of one kind of platform mail, made once per version of its content."""
    from delivery.identities import platform_from_email
    from templates.compiler import compile_template

    # The From is part of the lookup: a new organisation default From gets its own standing Mailing.
    from_email = platform_from_email()
    return _standing_mailing(
        compiled_dict(compile_template(subject=subject, html=_system_html(html_path))),
        {"meta__system": system, "from_email": from_email},
        name=name,
        send_group=f"system:{system}",
        from_email=from_email,
        meta={"system": system},
    )


def _confirmation_mailing() -> Mailing:
    return _system_mailing(
        "confirmation", "Subscription confirmations", CONFIRMATION_SUBJECT, CONFIRMATION_HTML
    )


def password_reset_send(email: str, reset_url: str) -> Message:
    """A password reset link, to the account's bare address, through the ledger like any mail."""
    mailing = _system_mailing(
        "password_reset", "Password resets", PASSWORD_RESET_SUBJECT, PASSWORD_RESET_HTML
    )
    key = f"password-reset:{hashlib.sha256(reset_url.encode()).hexdigest()[:32]}"
    return transactional_queue(mailing, to=email, data={"reset_url": reset_url}, idempotency_key=key)


def _list_confirmation_mailing(list_id: int) -> Mailing | None:
    """The list's own confirmation mail (ListConfirmation: its template, from its identity), as a
    standing Mailing per list, identity and content; None when the list has none set."""
    from delivery.models import ListConfirmation
    from templates.services import template_compile

    chosen = (
        ListConfirmation.objects.select_related("identity", "template")
        .filter(mailing_list_id=list_id)
        .first()
    )
    if chosen is None or chosen.template is None:
        return None
    from_email = confirmation_from(chosen.identity)
    return _standing_mailing(
        compiled_dict(template_compile(chosen.template_id)),
        {"meta__confirmation_for": f"{list_id}:{from_email}"},
        name=f"Subscription confirmations: {chosen.template.name}",
        send_group=f"system:confirmation:{list_id}",
        from_email=from_email,
        template_version_id=chosen.template.current_version_id,
        meta={
            "system": "confirmation",
            "confirmation_for": f"{list_id}:{from_email}",
            "template": chosen.template_id,
        },
    )


def confirmation_from(identity: Any) -> str:
    """A sending identity's From for platform mail: its address, or noreply@ its domain; none
    chosen: the platform's From (delivery.identities.platform_from_email)."""
    if identity is None:
        from delivery.identities import platform_from_email

        return platform_from_email()
    if "@" in identity.address:
        return identity.address
    return f"{settings.DELIVERY_DEFAULT_FROM_EMAIL.split('@')[0]}@{identity.address}"


def confirmation_send(subscription_id: int, confirm_url: str) -> Message | None:
    from contacts.models import Subscription

    subscription = Subscription.objects.select_related("mailing_list").filter(pk=subscription_id).first()
    if subscription is None:
        return None
    key = f"confirm:{subscription_id}:{hashlib.sha256(confirm_url.encode()).hexdigest()[:24]}"
    return transactional_queue(
        _list_confirmation_mailing(subscription.mailing_list_id) or _confirmation_mailing(),
        to=subscription.contact_id,
        data={"confirm_url": confirm_url, "list_name": subscription.mailing_list.name},
        idempotency_key=key,
    )


def list_confirmation_save(
    list_id: int, *, template_id: int | None, identity_id: int | None, by: Any = None
) -> Any:
    """Choose the list's confirmation template and identity (None, None: the built-in mail).

    The template must be transactional and link {{ confirm_url }}; the identity's From must be
    allowed (delivery.identities)."""
    from delivery.models import ListConfirmation, SendingIdentity
    from mailplatform.services import audit_record
    from templates.models import EmailTemplate
    from templates.services import template_compile

    template = EmailTemplate.objects.filter(pk=template_id).first() if template_id else None
    if template_id and template is None:
        raise Invalid("no such template", field="template")
    if template is not None and "confirm_url" not in template_compile(template.pk).fields:
        raise Invalid(
            'the template has no confirmation link: add <a href="{{ confirm_url }}">Confirm</a>',
            field="template",
        )
    identity = SendingIdentity.objects.filter(pk=identity_id).first() if identity_id else None
    if identity_id and identity is None:
        raise Invalid("no such sending identity", field="identity")
    chosen, _ = ListConfirmation.objects.update_or_create(
        mailing_list_id=list_id, defaults={"template": template, "identity": identity}
    )
    if by is not None:
        audit_record(
            by,
            "list.confirmation_mail",
            chosen,
            details={"list": list_id, "template": template_id, "identity": identity_id},
        )
    return chosen
