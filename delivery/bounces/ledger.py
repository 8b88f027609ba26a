"""The contracts this sub-app builds against, in one place: the send ledger (delivery), the VERP
token (delivery.verp) and the contact services (contacts).

They are looked up when called, not at import, so the classifier, parse_bounce and the bounce log
work while the ledger is being built; where a piece is absent the answer is "unknown".
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
from dataclasses import dataclass
from typing import Any

from django.apps import apps

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MessageInfo:
    id: int
    email: str
    contact_id: int | None
    mailing_id: int | None
    relay_id: int | None
    sending_domain: str


def _module(name: str) -> Any | None:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return None


def verp_message_id(address: str) -> int | None:
    verp = _module("delivery.verp")
    return verp.message_id_from_address(address) if verp else None


def looks_like_verp(address: str, bounce_domain: str) -> bool:
    local, _, domain = address.lower().rpartition("@")
    return local.startswith("bounces+") and domain == bounce_domain.lower()


def message_info(message_id: int) -> MessageInfo | None:
    try:
        message_model = apps.get_model("delivery", "Message")
    except LookupError:
        return None
    row = (
        message_model.objects.filter(pk=message_id)
        .values("id", "email", "contact_id", "mailing_id", "relay_id", "mailing__from_email")
        .first()
    )
    if row is None:
        return None
    return MessageInfo(
        id=row["id"],
        email=(row["email"] or "").lower(),
        contact_id=row["contact_id"],
        mailing_id=row["mailing_id"],
        relay_id=row["relay_id"],
        sending_domain=(row["mailing__from_email"] or "").rpartition("@")[2].lower(),
    )


def contact_id_for_address(address: str) -> int | None:
    try:
        contact_model = apps.get_model("contacts", "Contact")
    except LookupError:
        return None
    return contact_model.objects.filter(email__iexact=address).values_list("id", flat=True).first()


def contact_status(contact_id: int) -> str | None:
    try:
        contact_model = apps.get_model("contacts", "Contact")
    except LookupError:
        return None
    return contact_model.objects.filter(pk=contact_id).values_list("status", flat=True).first()


def record_message_event(message_id: int, kind: str, data: dict[str, Any], at: dt.datetime) -> None:
    services = _module("delivery.services")
    if services is None or not hasattr(services, "message_event_record"):
        log.warning(
            "delivery.services.message_event_record is absent: %s event for message %s not recorded",
            kind,
            message_id,
        )
        return
    services.message_event_record(message_id, kind, data=data, at=at)


def _contacts() -> Any | None:
    return _module("contacts.services")


def mark_bounced(contact_id: int, *, reason: str, source: str) -> bool:
    services = _contacts()
    if services is None:
        return False
    services.contact_mark_bounced(contact_id, reason=reason, source=source)
    return True


def record_soft_bounce(contact_id: int) -> int:
    services = _contacts()
    return services.contact_record_soft_bounce(contact_id) if services else 0


def mark_complained(contact_id: int, *, source: str) -> bool:
    services = _contacts()
    if services is None:
        return False
    services.contact_mark_complained(contact_id, source=source)
    return True


def suppress(value: str, *, reason: str, source: str) -> bool:
    services = _contacts()
    if services is None or not value:
        return False
    services.suppression_add(value, reason=reason, source=source)
    return True


def unsubscribe_message_id(address: str) -> int | None:
    verp = _module("delivery.verp")
    finder = getattr(verp, "message_id_from_unsubscribe_address", None) if verp else None
    return finder(address) if finder else None


def unsubscribe_by_message(message_id: int) -> bool:
    services = _module("delivery.services")
    return bool(services and services.unsubscribe_by_message(message_id, source="mailto"))


def on_smtp_rejected(sender: Any, message_id: int, code: int, reply: str, stage: str, **kwargs: Any) -> None:
    from delivery.bounces.services import smtp_rejection_process

    try:
        smtp_rejection_process(message_id, code=code, reply=reply, stage=stage)
    except Exception:  # the sender must go on; the Message already records the refusal
        log.exception("bounce policy failed for refused message %s", message_id)
