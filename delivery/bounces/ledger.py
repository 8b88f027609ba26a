"""The contracts this sub-app builds against, in one place: the send ledger (delivery), the VERP
token (delivery.verp) and the contact services (contacts).

They are looked up when called, not at import, so the classifier, parse_bounce and the bounce log
work while the ledger is being built; where a piece is absent the answer is "unknown".
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.db.models import F
from django.db.models.functions import Lower
from django.utils import timezone

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


# --- Contacts, set-wise ---
# contacts.services changes one contact per call (3 statements each). The policy decides a whole
# batch first, then these apply it in a few statements with the same meaning as
# contact_record_soft_bounce, contact_mark_bounced and contact_mark_complained (no audit rows:
# those services write one only for a person, `by`, and a bounce has none).


def _by_count(counts: Counter) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = defaultdict(list)
    for contact_id, count in counts.items():
        groups[count].append(contact_id)
    return groups


def _contact_models() -> tuple[Any, Any] | None:
    try:
        return apps.get_model("contacts", "Contact"), apps.get_model("contacts", "Subscription")
    except LookupError:
        return None


def contacts_record_soft_bounces(counts: Counter) -> None:
    models = _contact_models()
    if models is None:
        return
    for count, ids in _by_count(counts).items():
        models[0].objects.filter(id__in=ids).update(soft_bounce_count=F("soft_bounce_count") + count)


def contacts_mark_bounced(counts: Counter, *, source: str) -> None:
    """Count the bounces; status bounced unless blocklisted or complained (as contact_mark_bounced)."""
    models = _contact_models()
    if models is None or not counts:
        return
    contact_model = models[0]
    now = timezone.now()
    for count, ids in _by_count(counts).items():
        contact_model.objects.filter(id__in=ids).update(
            bounce_count=F("bounce_count") + count, updated_at=now
        )
    contact_model.objects.filter(id__in=list(counts), status__in=["active", "unsubscribed"]).update(
        status="bounced"
    )
    log.debug("%d contacts bounced (%s)", len(counts), source)


def contacts_mark_complained(emails: dict[int, str], *, source: str) -> None:
    """Status complained (unless blocklisted), every list left, the address suppressed."""
    models = _contact_models()
    if models is None or not emails:
        return
    contact_model, subscription_model = models
    now = timezone.now()
    ids = list(emails)
    contact_model.objects.filter(id__in=ids).exclude(status="blocklisted").update(
        status="complained", updated_at=now
    )
    subscription_model.objects.filter(contact_id__in=ids).exclude(status="unsubscribed").update(
        status="unsubscribed", unsubscribed_at=now, updated_at=now
    )
    suppress_many(emails.values(), reason="complaint", source=source)


def suppress_many(values: Iterable[str], *, reason: str, source: str) -> int:
    """Suppress addresses (existing suppressions kept); a value that is not an address is logged."""
    services = _contacts()
    if services is None:
        return 0
    suppression_model = apps.get_model("contacts", "Suppression")
    rows = {}
    for value in values:
        if not value:
            continue
        try:
            kind, normalised = services.suppression_value(value)
        except ValueError as exc:
            log.warning("not suppressed: %s", exc)
            continue
        rows[(kind, normalised)] = suppression_model(
            kind=kind, value=normalised, reason=reason[:300], source=source[:64]
        )
    suppression_model.objects.bulk_create(rows.values(), ignore_conflicts=True)
    return len(rows)


def _contacts() -> Any | None:
    return _module("contacts.services")


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
