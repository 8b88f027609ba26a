"""The contracts this sub-app builds against, in one place: the send ledger (delivery), the VERP
token (delivery.verp) and the contact services (contacts).

They are looked up when called, not at import, so the classifier, parse_bounce and the bounce log
work while the ledger is being built; where a piece is absent the answer is "unknown".
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.db.models.functions import Lower

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
    return messages_info({message_id}).get(message_id)


def messages_info(message_ids: Iterable[int]) -> dict[int, MessageInfo]:
    """The Messages these ids name, in one query; absent ids are absent from the answer."""
    ids = sorted({int(i) for i in message_ids})
    if not ids:
        return {}
    try:
        message_model = apps.get_model("delivery", "Message")
    except LookupError:
        return {}
    rows = message_model.objects.filter(pk__in=ids).values(
        "id", "email", "contact_id", "mailing_id", "relay_id", "mailing__from_email"
    )
    return {
        row["id"]: MessageInfo(
            id=row["id"],
            email=(row["email"] or "").lower(),
            contact_id=row["contact_id"],
            mailing_id=row["mailing_id"],
            relay_id=row["relay_id"],
            sending_domain=(row["mailing__from_email"] or "").rpartition("@")[2].lower(),
        )
        for row in rows
    }


def contact_ids_for_addresses(addresses: Iterable[str]) -> dict[str, int]:
    """Lower-cased address -> contact id, in one query over the Lower(email) unique index."""
    wanted = sorted({a.lower() for a in addresses if a})
    if not wanted:
        return {}
    try:
        contact_model = apps.get_model("contacts", "Contact")
    except LookupError:
        return {}
    rows = (
        contact_model.objects.annotate(email_lower=Lower("email"))
        .filter(email_lower__in=wanted)
        .values_list("email_lower", "id")
    )
    return dict(rows)


def contact_status(contact_id: int) -> str | None:
    try:
        contact_model = apps.get_model("contacts", "Contact")
    except LookupError:
        return None
    return contact_model.objects.filter(pk=contact_id).values_list("status", flat=True).first()


def record_message_events(events: list[tuple[int, int, str, dict[str, Any], dt.datetime]]) -> int:
    """(message id, mailing id, kind, data, at) rows into the send ledger's event log, one insert."""
    if not events:
        return 0
    try:
        event_model = apps.get_model("delivery", "MessageEvent")
    except LookupError:
        log.warning("delivery.MessageEvent is absent: %d bounce events not recorded", len(events))
        return 0
    from delivery.bounces.bulk import insert_rows

    insert_rows(event_model, ["message", "mailing", "kind", "data", "at"], events)
    return len(events)


# --- Contacts, set-wise (contacts.services owns their meaning; no audit rows: those services
# write one only for a person, `by`, and a bounce has none) ---


def contacts_record_soft_bounces(counts: Counter) -> None:
    services = _contacts()
    if services is not None:
        services.contacts_record_soft_bounces(counts)


def contacts_mark_bounced(counts: Counter, *, source: str) -> None:
    services = _contacts()
    if services is not None and counts:
        services.contacts_mark_bounced(counts)
        log.debug("%d contacts bounced (%s)", len(counts), source)


def contacts_mark_complained(emails: dict[int, str], *, source: str) -> None:
    services = _contacts()
    if services is not None:
        services.contacts_mark_complained(emails, source=source)


def _contacts() -> Any | None:
    return _module("contacts.services")


def unsubscribe_message_id(address: str) -> int | None:
    verp = _module("delivery.verp")
    finder = getattr(verp, "message_id_from_unsubscribe_address", None) if verp else None
    return finder(address) if finder else None


def unsubscribe_by_message(message_id: int) -> bool:
    services = _module("delivery.mailings")
    return bool(services and services.unsubscribe_by_message(message_id, source="mailto"))


def on_smtp_rejected(sender: Any, message_id: int, code: int, reply: str, stage: str, **kwargs: Any) -> None:
    from delivery.bounces.services import smtp_rejection_process

    try:
        smtp_rejection_process(message_id, code=code, reply=reply, stage=stage)
    except Exception:  # the sender must go on; the Message already records the refusal
        log.exception("bounce policy failed for refused message %s", message_id)
