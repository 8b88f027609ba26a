"""Whether a recipient may still be mailed: the one check every kind of Mailing goes through.

Planning selects only sendable contacts, but an unsubscribe, a bounce or a suppression can come
between planning (or queueing a transactional Message) and the send. The engine asks here for
every claimed batch, and transactional sends ask here before they queue, so the rule is in one
place: extend `unsendable` (list subscriptions, say) and every path follows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from django.conf import settings
from django.db import connection
from django.utils import timezone

from delivery.models import Mailing

# (key, contact id or None, address): the key is the caller's (a Message id, or any number).
Recipient = tuple[int, "int | None", str]


def unsendable(mailing: Mailing, recipients: Iterable[Recipient]) -> set[int]:
    """The keys of `recipients` that must not be mailed now for this Mailing.

    A contact: marketing needs it active, transactional only not bounced, complained or
    blocklisted; both refuse a suppressed address or domain and an erased contact
    (contacts.selectors.unsendable_contact_ids). A marketing Mailing sent to lists also needs a
    confirmed subscription on one of them (contacts.selectors.contacts_not_subscribed): a one-click
    unsubscribe from the list, or any other way of leaving it, stops mail already queued. A bare
    address: refused when it or its domain is suppressed, or a contact with it is undeliverable.
    The frequency cap refuses only where a Mailing's own cap says so (a campaign's "skip contacts
    mailed in the last N hours"); otherwise mail over it waits (`frequency_holds`).
    """
    from contacts.selectors import address_is_suppressed, contacts_not_subscribed, unsendable_contact_ids

    recipients = list(recipients)
    transactional = mailing.kind == Mailing.Kind.TRANSACTIONAL
    contact_ids = [contact_id for _, contact_id, _ in recipients if contact_id is not None]
    blocked_contacts = (
        unsendable_contact_ids(contact_ids, transactional=transactional) if contact_ids else set()
    )
    if not transactional and mailing.list_ids and contact_ids:
        blocked_contacts |= contacts_not_subscribed(contact_ids, mailing.list_ids)
    if not transactional and contact_ids:
        skipping = [(messages, hours) for messages, hours, skips in _caps(mailing) if skips]
        blocked_contacts |= set(frequency_cap_until(mailing, contact_ids, caps=skipping))
    blocked = set()
    for key, contact_id, email in recipients:
        if contact_id is not None:
            if contact_id in blocked_contacts:
                blocked.add(key)
        elif address_is_suppressed(email):
            blocked.add(key)
    return blocked


def _caps(mailing: Mailing) -> list[tuple[int, int, bool]]:
    """(messages, hours, skips) of each cap on this Mailing's contacts: the install's holds mail over
    it; the Mailing's own skips it when it says `"over": "skip"` (a campaign's setting does)."""
    caps = []
    if settings.DELIVERY_FREQUENCY_CAP_MESSAGES > 0:
        caps.append((settings.DELIVERY_FREQUENCY_CAP_MESSAGES, settings.DELIVERY_FREQUENCY_CAP_HOURS, False))
    own = (mailing.meta or {}).get("frequency_cap") or {}
    try:
        messages, hours = int(own.get("messages", 0)), int(own.get("hours", 0))
    except (TypeError, ValueError):
        messages = hours = 0
    if messages > 0 and hours > 0:
        caps.append((messages, hours, own.get("over") == "skip"))
    return caps


def frequency_caps(mailing: Mailing) -> list[tuple[int, int]]:
    """(messages, hours) caps on this Mailing's contacts: the install's (DELIVERY_FREQUENCY_CAP_MESSAGES
    per DELIVERY_FREQUENCY_CAP_HOURS, off at 0) and the Mailing's own (meta["frequency_cap"], which a
    campaign's "skip contacts mailed in the last N hours" sets as one message per N hours)."""
    return [(messages, hours) for messages, hours, _ in _caps(mailing)]


def frequency_holds(
    mailing: Mailing, recipients: Iterable[Recipient], now: dt.datetime | None = None
) -> dict[dt.datetime, list[int]]:
    """Keys of a marketing Mailing's `recipients` over a cap that holds (not skips), by the time their
    contact is under every such cap again. The engine holds them in the ledger until then
    (HoldReason.FREQUENCY) and checks again when they are claimed once more, as Mautic's message
    queue reschedules mail over its frequency rules instead of dropping it."""
    if mailing.kind == Mailing.Kind.TRANSACTIONAL:
        return {}
    holding = [(messages, hours) for messages, hours, skips in _caps(mailing) if not skips]
    recipients = [r for r in recipients if r[1] is not None]
    if not holding or not recipients:
        return {}
    until = frequency_cap_until(mailing, [contact_id for _, contact_id, _ in recipients], now, caps=holding)
    held: dict[dt.datetime, list[int]] = {}
    for key, contact_id, _ in recipients:
        if contact_id in until:
            held.setdefault(until[contact_id], []).append(key)
    return held


def frequency_cap_until(
    mailing: Mailing,
    contact_ids: Sequence[int],
    now: dt.datetime | None = None,
    *,
    caps: list[tuple[int, int]] | None = None,
) -> dict[int, dt.datetime]:
    """Of `contact_ids`, those at or over a cap (the Mailing's caps, or `caps`), each with the time it
    is under all of them again: when its n-th latest marketing message in a window of n leaves it.
    Checked at claim time, so it holds however the mail was queued; two runners claiming one
    contact's messages in the same instant may both pass."""
    caps = frequency_caps(mailing) if caps is None else caps
    ids = sorted({int(i) for i in contact_ids})
    if not caps or not ids:
        return {}
    now = now or timezone.now()
    until: dict[int, dt.datetime] = {}
    with connection.cursor() as cursor:
        for messages, hours in caps:
            window = dt.timedelta(hours=hours)
            cursor.execute(
                """
                SELECT m.contact_id, (array_agg(m.sent_at ORDER BY m.sent_at DESC))[%s]
                FROM delivery_message m
                WHERE m.contact_id = ANY(%s) AND m.state = 'sent' AND m.sent_at > %s
                  AND m.mailing_id IN (SELECT g.id FROM delivery_mailing g WHERE g.kind = 'marketing')
                GROUP BY m.contact_id HAVING count(*) >= %s
                """,
                [messages, ids, now - window, messages],
            )
            for contact_id, nth_latest in cursor.fetchall():
                free = nth_latest + window
                until[contact_id] = max(free, until.get(contact_id, free))
    return until
