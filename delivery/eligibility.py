"""Whether a recipient may still be mailed: the one check every kind of Mailing goes through.

Planning selects only sendable contacts, but an unsubscribe, a bounce or a suppression can come
between planning (or queueing a transactional Message) and the send. The engine asks here for
every claimed batch, and transactional sends ask here before they queue, so the rule is in one
place: extend `unsendable` (list subscriptions, say) and every path follows.
"""

from __future__ import annotations

from collections.abc import Iterable

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
    blocked = set()
    for key, contact_id, email in recipients:
        if contact_id is not None:
            if contact_id in blocked_contacts:
                blocked.add(key)
        elif address_is_suppressed(email):
            blocked.add(key)
    return blocked
