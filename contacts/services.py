"""Writes to contacts, lists, subscriptions, segments and suppressions.

Engagement and bounce writes come from delivery, many per second: they are single UPDATE
statements with no read first. Writes a person asks for (dashboard, public pages) go to the
audit log when `by` names who acted.

Unsubscribing, decided: `contact_unsubscribe(list_ids=None)` is a global opt-out (every
subscription unsubscribed and status `unsubscribed`, which stops all marketing mail and is never
undone by an import). Leaving some lists only unsubscribes those subscriptions; the status stays
`active`, because a contact without a confirmed subscription is in no audience anyway, and the
person may still join another list later from a subscribe form.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Greatest
from django.utils import timezone

from contacts import selectors, signals, tokens
from contacts.imports import ImportFileError, run_import
from contacts.models import (
    PROTECTED_STATUSES,
    UNDELIVERABLE_STATUSES,
    ConsentSource,
    Contact,
    ContactImport,
    ContactStatus,
    CustomField,
    Engagement,
    EngagementClick,
    FieldType,
    ImportMode,
    ImportStatus,
    MailingList,
    OptIn,
    Segment,
    SignupForm,
    Subscription,
    SubscriptionStatus,
    Suppression,
    SuppressionKind,
)
from contacts.segments import compile_rules
from contacts.validation import (
    EmailError,
    check_contact_language,
    check_contact_timezone,
    check_email,
    coerce_value,
)
from mailplatform.errors import Conflict, Invalid
from mailplatform.services import acting_user, audit_changes, audit_record
from mailplatform.uploads import media_path, upload_save

log = logging.getLogger(__name__)


def _audit(by: Any, action: str, target: Any = None, **details: Any) -> None:
    if by is not None:
        audit_record(by, action, target, details=details or None)


def _ids(contact_ids: Iterable[int]) -> list[int]:
    return sorted({int(i) for i in contact_ids})


# --- Engagement, from delivery ---


def contacts_record_sent(
    contact_ids: Iterable[int], at: dt.datetime, *, mailing_id: int | None = None
) -> int:
    """Set last_sent_at (never moving it backwards); returns how many contacts changed.

    With `mailing_id`, each contact's engagement row for that mailing records it as received
    (the first time counts; contacts erased meanwhile get no row).
    """
    ids = _ids(contact_ids)
    if not ids:
        return 0
    if mailing_id is not None:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO contacts_engagement (mailing_id, contact_id, sent_at) "
                "SELECT %s, c.id, %s FROM contacts_contact c WHERE c.id = ANY(%s) ORDER BY c.id "
                "ON CONFLICT (mailing_id, contact_id) DO UPDATE SET sent_at = "
                "coalesce(contacts_engagement.sent_at, EXCLUDED.sent_at)",
                [int(mailing_id), at, ids],
            )
    # Raw, with the ids as one array: the engine calls this once per batch of hundreds.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE contacts_contact SET last_sent_at = %s, updated_at = %s "
            "WHERE id = ANY(%s) AND (last_sent_at IS NULL OR last_sent_at < %s)",
            [at, timezone.now(), ids, at],
        )
        return cursor.rowcount


@dataclass(frozen=True)
class EngagementHit:
    """One open or click delivery saw: whose, on which mailing, when, by a person or a machine."""

    contact_id: int
    mailing_id: int
    kind: str  # "opened" | "clicked"
    at: dt.datetime
    machine: bool = False
    url: str = ""


def engagement_record(hits: Iterable[EngagementHit]) -> int:
    """Fold opens and clicks into the (mailing, contact) engagement rows; returns rows written.

    Many hits on one row become one upsert: the first human open and click and the first machine
    ones (a click is also an open). Clicked URLs (cut to 500 characters) go to EngagementLink once
    and (link, contact, machine) to EngagementClick once. Hits of contacts erased meanwhile write
    nothing. The caller also moves human hits onto the contact (contact_record_open / _click).
    """
    rows: dict[tuple[int, int], dict[str, Any]] = {}
    clicks: set[tuple[str, bool, int]] = set()
    for hit in hits:
        if hit.kind not in ("opened", "clicked"):
            continue
        row = rows.setdefault(
            (int(hit.mailing_id), int(hit.contact_id)),
            {"opened": None, "clicked": None, "m_opened": None, "m_clicked": None},
        )
        prefix = "m_" if hit.machine else ""
        for key in ["opened"] if hit.kind == "opened" else ["opened", "clicked"]:
            current = row[prefix + key]
            row[prefix + key] = hit.at if current is None else min(current, hit.at)
        if hit.kind == "clicked" and hit.url:
            clicks.add((hit.url[:500], bool(hit.machine), int(hit.contact_id)))
    if not rows:
        return 0
    values = []
    params: list[Any] = []
    for (mailing_id, contact_id), row in sorted(rows.items()):
        values.append("(%s, %s, %s::timestamptz, %s::timestamptz, %s::timestamptz, %s::timestamptz)")
        params.extend(
            [mailing_id, contact_id, row["opened"], row["clicked"], row["m_opened"], row["m_clicked"]]
        )
    # Fixed fragments; every value is a parameter.
    sql = (
        "INSERT INTO contacts_engagement AS e (mailing_id, contact_id, opened_at, clicked_at, "  # noqa: S608
        "machine_opened_at, machine_clicked_at) "
        "SELECT v.* FROM (VALUES " + ", ".join(values) + ") AS v(m, c, o, k, mo, mk) "
        "JOIN contacts_contact ct ON ct.id = v.c "
        "ON CONFLICT (mailing_id, contact_id) DO UPDATE SET "
        "opened_at = least(e.opened_at, EXCLUDED.opened_at), "
        "clicked_at = least(e.clicked_at, EXCLUDED.clicked_at), "
        "machine_opened_at = least(e.machine_opened_at, EXCLUDED.machine_opened_at), "
        "machine_clicked_at = least(e.machine_clicked_at, EXCLUDED.machine_clicked_at)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        written = cursor.rowcount
        if clicks:
            link_ids = _link_ids({url for url, _, _ in clicks})
            ordered = sorted((link_ids[url], machine, contact_id) for url, machine, contact_id in clicks)
            cursor.execute(
                "INSERT INTO contacts_engagementclick (link_id, machine, contact_id) "
                "SELECT k.l, k.m, k.c FROM unnest(%s::bigint[], %s::boolean[], %s::bigint[]) AS k(l, m, c) "
                "JOIN contacts_contact ct ON ct.id = k.c ON CONFLICT DO NOTHING",
                [[o[0] for o in ordered], [o[1] for o in ordered], [o[2] for o in ordered]],
            )
    return written


def _link_ids(urls: set[str]) -> dict[str, int]:
    """Each URL's EngagementLink id, adding the new ones (in sorted order: concurrent flushes
    insert the same URLs without deadlocking)."""
    ordered = sorted(urls)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO contacts_engagementlink (url) SELECT unnest(%s::text[]) ON CONFLICT (url) DO NOTHING",
            [ordered],
        )
        cursor.execute("SELECT url, id FROM contacts_engagementlink WHERE url = ANY(%s)", [ordered])
        return dict(cursor.fetchall())


def contact_record_open(contact_id: int, at: dt.datetime) -> None:
    Contact.objects.filter(id=contact_id).filter(
        Q(last_opened_at__isnull=True) | Q(last_opened_at__lt=at)
    ).update(last_opened_at=at)


def contact_record_click(contact_id: int, at: dt.datetime) -> None:
    # A click is also proof the mail was opened, even when images were blocked.
    Contact.objects.filter(id=contact_id).update(
        last_clicked_at=Greatest(
            F("last_clicked_at"), at, output_field=Contact._meta.get_field("last_clicked_at")
        ),
        last_opened_at=Greatest(
            F("last_opened_at"), at, output_field=Contact._meta.get_field("last_opened_at")
        ),
    )


def contacts_record_bounces(soft: Mapping[int, int], hard: Mapping[int, int]) -> None:
    """Soft and hard bounces, set-wise, in one statement whatever the number of contacts (the
    bounce listener stores a group per transaction: its statements are CPU its senders wait for).

    `soft` / `hard` map contact id -> bounces to count. Soft bounces are only counted (the
    delivery policy decides what they mean). A hard bounce counts, touches updated_at and makes
    the status bounced, except for blocklisted and complained contacts, which stay as they are.
    Rows are updated in id order, so two of these never wait on each other in a cycle."""
    ids = sorted(set(soft) | set(hard))
    if not ids:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE contacts_contact AS c SET
                soft_bounce_count = c.soft_bounce_count + v.soft,
                bounce_count = c.bounce_count + v.hard,
                updated_at = CASE WHEN v.hard > 0 THEN %s ELSE c.updated_at END,
                status = CASE WHEN v.hard > 0 AND c.status = ANY(%s) THEN %s ELSE c.status END
            FROM unnest(%s::bigint[], %s::integer[], %s::integer[]) AS v(id, soft, hard)
            WHERE c.id = v.id
            """,
            [
                timezone.now(),
                [ContactStatus.ACTIVE.value, ContactStatus.UNSUBSCRIBED.value],
                ContactStatus.BOUNCED.value,
                ids,
                [soft.get(contact_id, 0) for contact_id in ids],
                [hard.get(contact_id, 0) for contact_id in ids],
            ],
        )


def contacts_mark_bounced(counts: Mapping[int, int]) -> None:
    """Hard bounces, set-wise (contacts_record_bounces)."""
    contacts_record_bounces({}, counts)


def contacts_mark_complained(emails: Mapping[int, str], *, source: str) -> None:
    """Spam complaints, set-wise (contact id -> address): status complained (unless
    blocklisted), every list left, the address suppressed."""
    if not emails:
        return
    now = timezone.now()
    ids = list(emails)
    Contact.objects.filter(id__in=ids).exclude(status=ContactStatus.BLOCKLISTED).update(
        status=ContactStatus.COMPLAINED, updated_at=now
    )
    Subscription.objects.filter(contact_id__in=ids).exclude(status=SubscriptionStatus.UNSUBSCRIBED).update(
        status=SubscriptionStatus.UNSUBSCRIBED, unsubscribed_at=now, updated_at=now
    )
    suppressions_add(emails.values(), reason="complaint", source=source)


def contact_mark_bounced(contact_id: int, *, reason: str, source: str, by: Any = None) -> None:
    """Hard bounce of one contact (see contacts_mark_bounced)."""
    with transaction.atomic():
        contacts_mark_bounced({contact_id: 1})
        _audit(
            by, "contact.bounced", Contact.objects.filter(id=contact_id).first(), reason=reason, source=source
        )


def contact_record_soft_bounce(contact_id: int) -> int:
    """Count one soft bounce; returns the new count (the delivery policy decides what it means)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE contacts_contact SET soft_bounce_count = soft_bounce_count + 1 WHERE id = %s "
            "RETURNING soft_bounce_count",
            [contact_id],
        )
        row = cursor.fetchone()
    return row[0] if row else 0


def contact_reset_soft_bounces(contact_id: int) -> None:
    Contact.objects.filter(id=contact_id).update(soft_bounce_count=0)


def _unsubscribe_all(contact_id: int, now: dt.datetime) -> int:
    return (
        Subscription.objects.filter(contact_id=contact_id)
        .exclude(status=SubscriptionStatus.UNSUBSCRIBED)
        .update(status=SubscriptionStatus.UNSUBSCRIBED, unsubscribed_at=now, updated_at=now)
    )


def contact_mark_complained(contact_id: int, *, source: str, by: Any = None) -> None:
    """Spam complaint of one contact (see contacts_mark_complained)."""
    with transaction.atomic():
        contact = Contact.objects.filter(id=contact_id).first()
        if contact is None:
            return
        contacts_mark_complained({contact_id: contact.email}, source=source)
        _audit(by, "contact.complained", contact, source=source)


def contact_unsubscribe(
    contact_id: int, *, list_ids: list[int] | None = None, source: str, by: Any = None
) -> int:
    """Leave `list_ids`, or everything when None (see the module docstring); returns lists left."""
    now = timezone.now()
    with transaction.atomic():
        if list_ids is None:
            left = _unsubscribe_all(contact_id, now)
            Contact.objects.filter(id=contact_id, status=ContactStatus.ACTIVE).update(
                status=ContactStatus.UNSUBSCRIBED, updated_at=now
            )
        else:
            left = (
                Subscription.objects.filter(
                    contact_id=contact_id, mailing_list_id__in=[int(i) for i in list_ids]
                )
                .exclude(status=SubscriptionStatus.UNSUBSCRIBED)
                .update(status=SubscriptionStatus.UNSUBSCRIBED, unsubscribed_at=now, updated_at=now)
            )
        _audit(
            by,
            "contact.unsubscribed",
            Contact.objects.filter(id=contact_id).first(),
            lists="all" if list_ids is None else list(list_ids),
            source=source,
        )
    return left


DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")


def suppression_value(value: str) -> tuple[str, str]:
    """(kind, normalised value) for an address or a domain; Invalid says what is wrong."""
    text = value.strip().lower()
    if text.startswith("@"):
        text = text[1:]
    if "@" in text:
        try:
            return SuppressionKind.ADDRESS, check_email(text).lower()
        except EmailError as exc:
            raise Invalid(
                f"{value!r} is not a valid address: {exc}", code="invalid_suppression", field="value"
            ) from None
    try:
        text = text.encode("idna").decode("ascii")
    except UnicodeError:
        raise Invalid(f"{value!r} is not a valid domain", code="invalid_suppression", field="value") from None
    if not DOMAIN_RE.match(text):
        raise Invalid(
            f"{value!r} is neither an address nor a domain", code="invalid_suppression", field="value"
        )
    return SuppressionKind.DOMAIN, text


def suppression_add(value: str, *, reason: str, source: str, by: Any = None) -> Suppression:
    """Suppress an address or a whole domain (an existing suppression is kept, not duplicated)."""
    kind, normalised = suppression_value(value)
    with transaction.atomic():
        suppression, created = Suppression.objects.get_or_create(
            kind=kind, value=normalised, defaults={"reason": reason[:300], "source": source[:64]}
        )
        if created:
            _audit(by, "suppression.added", suppression, reason=reason, source=source)
    return suppression


def suppressions_add(values: Iterable[str], *, reason: str, source: str) -> int:
    """Suppress many addresses or domains in one insert (existing suppressions kept). A value that
    is neither is logged and skipped: one bad address in a batch must not lose the others."""
    rows: dict[tuple[str, str], Suppression] = {}
    for value in values:
        if not value:
            continue
        try:
            kind, normalised = suppression_value(value)
        except ValueError as exc:
            log.warning("not suppressed: %s", exc)
            continue
        rows[(kind, normalised)] = Suppression(
            kind=kind, value=normalised, reason=reason[:300], source=source[:64]
        )
    Suppression.objects.bulk_create(rows.values(), ignore_conflicts=True)
    return len(rows)


def suppression_remove(suppression: Suppression, *, by: Any) -> None:
    with transaction.atomic():
        _audit(by, "suppression.removed", suppression, value=suppression.value, kind=suppression.kind)
        suppression.delete()


# --- Contacts, fields, lists, segments from the dashboard ---


def contact_create(
    *,
    email: str,
    first_name: str = "",
    last_name: str = "",
    attributes: dict[str, Any] | None = None,
    language: str = "",
    timezone_name: str = "",
    list_ids: Iterable[int] = (),
    consent_source: str = ConsentSource.DASHBOARD,
    consent_ip: str | None = None,
    by: Any = None,
) -> Contact:
    address = check_email(email)
    now = timezone.now()
    values = {
        "first_name": first_name[:200],
        "last_name": last_name[:200],
        "attributes": _typed_attributes(attributes or {}),
        "language": check_contact_language(language),
        "timezone": check_contact_timezone(timezone_name),
    }
    with transaction.atomic():
        try:
            with transaction.atomic():
                contact = Contact.objects.create(
                    email=address,
                    consent_at=now,
                    consent_source=consent_source,
                    consent_ip=consent_ip,
                    **values,
                )
        except IntegrityError:
            # The unique index on lower(email) decides, not a look-up before: two requests at once.
            raise Conflict(
                f"A contact with the address {address!r} already exists.",
                code="contact_exists",
                field="email",
            ) from None
        for list_id in list_ids:
            Subscription.objects.create(
                contact=contact,
                mailing_list_id=list_id,
                status=SubscriptionStatus.CONFIRMED,
                confirmed_at=now,
                source=consent_source,
            )
            _announce_confirmed(contact.pk, int(list_id))
        _audit(by, "contact.created", contact)
    return contact


def _typed_attributes(values: dict[str, Any]) -> dict[str, Any]:
    kinds = dict(CustomField.objects.values_list("name", "type"))
    typed: dict[str, Any] = {}
    for name, raw in values.items():
        try:
            typed[name] = coerce_value(kinds.get(name, FieldType.TEXT), raw)
        except ValueError as exc:
            raise Invalid(f"field {name}: {exc}", code="invalid_attribute", field="attributes") from None
    return {k: v for k, v in typed.items() if v is not None}


def contact_update(
    contact: Contact,
    *,
    first_name: str,
    last_name: str,
    attributes: dict[str, Any],
    language: str | None = None,
    timezone_name: str | None = None,
    status: str | None = None,
    by: Any = None,
) -> Contact:
    """Set the contact's fields; `language`, `timezone_name` and `status` stay as they are when None."""
    with transaction.atomic():
        before = {"status": contact.status}
        contact.first_name = first_name[:200]
        contact.last_name = last_name[:200]
        contact.attributes = _typed_attributes(attributes)
        if language is not None:
            contact.language = check_contact_language(language)
        if timezone_name is not None:
            contact.timezone = check_contact_timezone(timezone_name)
        if status is not None:
            if status not in ContactStatus.values:
                raise Invalid(f"{status!r} is not a contact status", field="status")
            contact.status = status
        contact.save()
        _audit(by, "contact.updated", contact, status_before=before["status"], status=contact.status)
    return contact


def contact_subscribe(
    contact: Contact,
    mailing_list: MailingList,
    *,
    confirmed: bool,
    source: str,
    by: Any = None,
) -> Subscription:
    """Add to a list, or renew an unsubscribed membership (a person's own request may do that)."""
    now = timezone.now()
    with transaction.atomic():
        subscription, _ = Subscription.objects.select_for_update().get_or_create(
            contact=contact, mailing_list=mailing_list, defaults={"source": source}
        )
        if confirmed and subscription.status != SubscriptionStatus.CONFIRMED:
            subscription.status = SubscriptionStatus.CONFIRMED
            subscription.confirmed_at = now
            _announce_confirmed(contact.pk, mailing_list.pk)
        elif not confirmed and subscription.status == SubscriptionStatus.UNSUBSCRIBED:
            subscription.status = SubscriptionStatus.UNCONFIRMED
        subscription.source = source
        subscription.save()
        _audit(by, "contact.subscribed", contact, list=mailing_list.name, status=subscription.status)
    return subscription


def contacts_set_attribute(contact_ids: Iterable[int], name: str, value: Any) -> int:
    """Set one custom field on many contacts at once (typed as the field is declared); returns how many."""
    ids = _ids(contact_ids)
    if not ids:
        return 0
    typed = _typed_attributes({name: value})
    with connection.cursor() as cursor:
        if name in typed:
            cursor.execute(
                "UPDATE contacts_contact SET attributes = attributes || %s::jsonb, updated_at = %s WHERE id = ANY(%s)",
                [json.dumps({name: typed[name]}, default=str), timezone.now(), ids],
            )
        else:
            cursor.execute(
                "UPDATE contacts_contact SET attributes = attributes - %s, updated_at = %s WHERE id = ANY(%s)",
                [name, timezone.now(), ids],
            )
        return cursor.rowcount


def contact_erase(contact: Contact, *, by: Any) -> None:
    """GDPR erasure: the contact, its attributes and subscriptions are deleted.

    The audit entry keeps the contact's id, never the address. Delivery's ledger rows that
    pointed at the contact are delivery's to handle (its foreign key decides).
    """
    with transaction.atomic():
        audit_record(by, "contact.erased", None, details={"contact_id": contact.pk})
        Engagement.objects.filter(contact_id=contact.pk).delete()
        EngagementClick.objects.filter(contact_id=contact.pk).delete()  # (the URLs are nobody's)
        contact.delete()


def custom_field_usage(field: CustomField) -> dict[str, int]:
    """How many contacts hold a value for the field, and how many segments use it."""
    return {
        "contacts": Contact.objects.filter(attributes__has_key=field.name).count(),
        "segments": sum(
            1 for rules in Segment.objects.values_list("rules", flat=True) if _uses_field(rules, field.name)
        ),
    }


def _uses_field(rules: Any, name: str) -> bool:
    return any(
        condition.get("field") == f"attr:{name}"
        for group in (rules or {}).get("groups", [])
        for condition in group.get("conditions", [])
    )


def custom_field_update(
    field: CustomField, *, label: str, name: str, field_type: str, by: Any = None
) -> CustomField:
    """Change a field's label; its key and type only while no contact holds a value for it."""
    if field_type not in FieldType.values:
        raise Invalid(f"{field_type!r} is not a field type", field="type")
    with transaction.atomic():
        field = CustomField.objects.select_for_update().get(pk=field.pk)
        held = Contact.objects.filter(attributes__has_key=field.name).exists()
        if held and name != field.name:
            raise Conflict("contacts hold values under this key; it can no longer change", field="name")
        if held and field_type != field.type:
            raise Conflict("contacts hold values of this type; it can no longer change", field="type")
        if name != field.name and any(
            _uses_field(r, field.name) for r in Segment.objects.values_list("rules", flat=True)
        ):
            raise Conflict("a segment uses this key; change the segment first", field="name")
        before = {"label": field.label, "key": field.name, "type": field.type}
        field.label, field.name, field.type = label or name, name, field_type
        field.save()
        after = {"label": field.label, "key": field.name, "type": field.type}
        _audit(by, "custom_field.updated", field, changes=audit_changes(before, after))
    return field


def custom_field_delete(field: CustomField, *, by: Any = None) -> int:
    """Delete the field and every contact's value for it; returns how many values went.
    Refused while a segment's rules use it (the segment would stop working)."""
    with transaction.atomic():
        field = CustomField.objects.select_for_update().get(pk=field.pk)
        users = [s.name for s in Segment.objects.all() if _uses_field(s.rules, field.name)]
        if users:
            raise Conflict(f"the segment(s) {', '.join(users[:5])} use this field; change them first")
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE contacts_contact SET attributes = attributes - %s WHERE attributes ? %s",
                [field.name, field.name],
            )
            removed = cursor.rowcount
        _audit(by, "custom_field.deleted", field, key=field.name, values_removed=removed)
        field.delete()
    return removed


def custom_field_create(*, name: str, label: str, field_type: str, by: Any = None) -> CustomField:
    if field_type not in FieldType.values:
        raise Invalid(f"{field_type!r} is not a field type", field="type")
    with transaction.atomic():
        field = CustomField.objects.create(name=name, label=label or name, type=field_type)
        _audit(by, "custom_field.created", field, type=field_type)
    return field


def mailing_list_save(
    mailing_list: MailingList | None,
    *,
    name: str,
    description: str = "",
    opt_in: str = OptIn.DOUBLE,
    is_public: bool = False,
    by: Any = None,
) -> MailingList:
    with transaction.atomic():
        created = mailing_list is None
        mailing_list = mailing_list or MailingList()
        mailing_list.name = name
        mailing_list.description = description
        mailing_list.opt_in = opt_in
        mailing_list.is_public = is_public
        mailing_list.save()
        _audit(by, "list.created" if created else "list.updated", mailing_list)
    return mailing_list


def mailing_list_delete(mailing_list: MailingList, *, by: Any) -> None:
    with transaction.atomic():
        _audit(by, "list.deleted", mailing_list, name=mailing_list.name)
        mailing_list.delete()


def mailing_list_get_or_create(name: str, *, by: Any = None) -> MailingList:
    mailing_list, created = MailingList.objects.get_or_create(
        name=name, defaults={"opt_in": OptIn.SINGLE, "is_public": False}
    )
    if created:
        _audit(by, "list.created", mailing_list)
    return mailing_list


def segment_save(
    segment: Segment | None, *, name: str, rules: Any, description: str = "", by: Any = None
) -> Segment:
    compile_rules(rules)  # refuses malformed rules with a message naming the condition
    with transaction.atomic():
        created = segment is None
        segment = segment or Segment()
        segment.name = name
        segment.description = description
        segment.rules = rules
        segment.save()
        _audit(by, "segment.created" if created else "segment.updated", segment)
    return segment


def segment_delete(segment: Segment, *, by: Any) -> None:
    with transaction.atomic():
        _audit(by, "segment.deleted", segment, name=segment.name)
        segment.delete()


def contact_protected(contact: Contact) -> bool:
    return contact.status in PROTECTED_STATUSES


# --- Imports: a ContactImport row records each run; the file work is contacts.imports ---

IMPORT_PROGRESS_KEY = "contacts:import-progress:{}"
# Uploaded CSVs wait here for their import and are deleted once it ran.
IMPORT_UPLOADS = "imports/uploads"


def import_progress(import_id: int) -> dict[str, Any] | None:
    """Live progress of a running import (kept in the cache: the import's transaction hides its rows)."""
    return cache.get(IMPORT_PROGRESS_KEY.format(import_id))


def contact_import_create(
    *,
    path: str,
    filename: str,
    mode: str,
    list_ids: Iterable[int] = (),
    mapping: dict[str, str] | None = None,
    by: Any = None,
    draft: bool = False,
    drop_flagged: bool = False,
) -> ContactImport:
    """Record an import; a draft waits for its column mapping (contact_import_start)."""
    if mode not in ImportMode.values:
        raise Invalid(f"mode must be one of {', '.join(ImportMode.values)}", field="mode")
    with transaction.atomic():
        contact_import = ContactImport.objects.create(
            filename=filename[:255],
            path=path,
            mode=mode,
            mapping=mapping or {},
            drop_flagged=drop_flagged,
            total_bytes=Path(path).stat().st_size,
            created_by=acting_user(by),
            status=ImportStatus.DRAFT if draft else ImportStatus.PENDING,
        )
        contact_import.mailing_lists.set(list(list_ids))
        if not draft:
            _audit(by, "contacts.import_started", contact_import, filename=filename, mode=mode)
    return contact_import


def contact_import_start(
    contact_import: ContactImport,
    *,
    mode: str,
    list_ids: Iterable[int],
    mapping: dict[str, str],
    by: Any,
    drop_flagged: bool = False,
) -> ContactImport:
    """Settle a draft's mode, lists and mapping and queue it for a worker."""
    if mode not in ImportMode.values:
        raise Invalid(f"mode must be one of {', '.join(ImportMode.values)}", field="mode")
    with transaction.atomic():
        updated = ContactImport.objects.filter(pk=contact_import.pk, status=ImportStatus.DRAFT).update(
            mode=mode, mapping=mapping, drop_flagged=drop_flagged, status=ImportStatus.PENDING
        )
        if not updated:
            return contact_import  # started already (a double click)
        contact_import.refresh_from_db()
        contact_import.mailing_lists.set(list(list_ids))
        _audit(by, "contacts.import_started", contact_import, filename=contact_import.filename, mode=mode)
        contact_import_enqueue(contact_import)
    return contact_import


def contact_import_enqueue(contact_import: ContactImport) -> None:
    from contacts.tasks import import_contacts_task

    transaction.on_commit(lambda: import_contacts_task.delay(contact_import.pk))


def contact_import_run(
    import_id: int, *, progress: Callable[[str, int, int], None] | None = None
) -> ContactImport:
    """Run a recorded import to the end; its row records the counts or the one-line error."""
    # A session lock per import: a redelivered task waits for nobody and runs nothing twice. An
    # import left "running" by a worker that died stored nothing (one transaction), so whoever
    # holds the lock next may run it again.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [IMPORT_LOCK_NAMESPACE, import_id])
        if not cursor.fetchone()[0]:
            return ContactImport.objects.get(pk=import_id)
    try:
        return _contact_import_run_locked(import_id, progress)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [IMPORT_LOCK_NAMESPACE, import_id])


IMPORT_LOCK_NAMESPACE = 0x636F6E74  # "cont": keeps these advisory locks apart from other apps'


def _contact_import_run_locked(
    import_id: int, progress: Callable[[str, int, int], None] | None
) -> ContactImport:
    contact_import = ContactImport.objects.get(pk=import_id)
    if contact_import.status not in (ImportStatus.PENDING, ImportStatus.RUNNING):
        return contact_import  # done, failed or still a draft
    ContactImport.objects.filter(pk=import_id).update(status=ImportStatus.RUNNING, started_at=timezone.now())
    key = IMPORT_PROGRESS_KEY.format(import_id)

    def report(stage: str, done: int, total: int) -> None:
        # Reading is most of the work: it moves the bar to 80%, the merge the rest.
        share = 0.8 * done / total if stage == "reading" and total else 0.8 + 0.2 * done / max(total, 1)
        cache.set(key, {"stage": stage, "percent": min(99, int(share * 100))}, timeout=24 * 3600)
        if progress:
            progress(stage, done, total)

    report_path = media_path(f"imports/{import_id}-bad-rows.csv")
    try:
        result = run_import(
            Path(contact_import.path),
            mode=contact_import.mode,
            list_ids=list(contact_import.mailing_lists.values_list("id", flat=True)),
            mapping=contact_import.mapping or None,
            report_path=report_path,
            label=f"import #{import_id} {contact_import.filename}"[:300],
            progress=report,
            drop_flagged=contact_import.drop_flagged,
        )
    except ImportFileError as exc:
        ContactImport.objects.filter(pk=import_id).update(
            status=ImportStatus.FAILED, error=str(exc), finished_at=timezone.now()
        )
        cache.delete(key)
        _discard_upload(contact_import.path)
        raise
    except Exception:
        ContactImport.objects.filter(pk=import_id).update(
            status=ImportStatus.FAILED,
            error="the import failed unexpectedly; nothing was stored (see the server log)",
            finished_at=timezone.now(),
        )
        cache.delete(key)
        raise
    ContactImport.objects.filter(pk=import_id).update(
        status=ImportStatus.DONE,
        processed_bytes=contact_import.total_bytes,
        report_path=result.report_path,
        finished_at=timezone.now(),
        **result.counts(),
    )
    cache.delete(key)
    _discard_upload(contact_import.path)
    return ContactImport.objects.get(pk=import_id)


def import_upload_save(upload: UploadedFile) -> Path:
    """Keep an uploaded CSV for its import (dashboard and API alike); it is deleted once imported."""
    return upload_save(upload, IMPORT_UPLOADS, suffix=".csv")


def _discard_upload(path: str) -> None:
    """Uploaded files hold personal data: gone once imported. A command's own file is left alone."""
    uploads = (Path(settings.MEDIA_ROOT) / IMPORT_UPLOADS).resolve()
    target = Path(path).resolve()
    if uploads in target.parents:
        target.unlink(missing_ok=True)


# --- Public pages: subscribe, confirm, preferences (the person acts on their own behalf) ---


def public_subscribe(
    mailing_list: MailingList,
    *,
    email: str,
    first_name: str = "",
    last_name: str = "",
    ip_address: str | None = None,
    detail: str = "",
) -> Subscription | None:
    """A subscribe form was sent. Returns the subscription, or None when nothing may be done.

    The caller shows the same answer whatever happens here, so the page never tells whether
    an address is known, subscribed or blocked. A double opt-in list gets an unconfirmed
    subscription and a confirmation_requested signal after commit; so does an unsubscribed
    contact on any list. A bounced, complained or blocklisted contact, or a suppressed address,
    is never changed from here (an admin can).
    """
    address = check_email(email)
    if selectors.address_is_suppressed(address):
        return None
    now = timezone.now()
    with transaction.atomic():
        contact = selectors.contact_by_email(address)
        if contact is None:
            contact = Contact.objects.create(
                email=address,
                first_name=first_name[:200],
                last_name=last_name[:200],
                # Active but in no audience until a subscription is confirmed.
                status=ContactStatus.ACTIVE,
                consent_source=ConsentSource.FORM,
                consent_at=None if mailing_list.opt_in == OptIn.DOUBLE else now,
                consent_ip=ip_address,
                consent_detail=(detail or f"subscribe form of list {mailing_list.name}")[:300],
            )
        elif contact.status in UNDELIVERABLE_STATUSES:
            return None
        subscription, _ = Subscription.objects.select_for_update().get_or_create(
            contact=contact, mailing_list=mailing_list, defaults={"source": "form"}
        )
        if subscription.status == SubscriptionStatus.CONFIRMED:
            return subscription
        # Anyone can type an address into a public form. Single opt-in subscribes at once only an
        # address that never said no: a contact (or subscription) that unsubscribed is asked by mail,
        # whatever the list's opt-in, and only their click (subscription_confirm) brings them back.
        said_no = (
            contact.status == ContactStatus.UNSUBSCRIBED
            or subscription.status == SubscriptionStatus.UNSUBSCRIBED
        )
        if mailing_list.opt_in == OptIn.SINGLE and not said_no:
            _confirm(subscription, ip_address=ip_address, now=now)
            return subscription
        subscription.status = SubscriptionStatus.UNCONFIRMED
        subscription.source = "form"
        subscription.save(update_fields=["status", "source", "updated_at"])
        subscription_id = subscription.pk
        transaction.on_commit(
            lambda: signals.confirmation_requested.send(
                sender=Subscription,
                subscription_id=subscription_id,
                confirm_url=tokens.confirm_url(subscription_id),
            )
        )
    return subscription


def signup_submit(form: SignupForm, data: Any, *, ip_address: str | None) -> None:
    """A signup form was posted: every bot defence (contacts.signup), then each of its lists.

    Raises SignupRefused (nothing stored) when a defence refuses; otherwise answers nothing, the
    same whether the address was new, known, already subscribed or may not be changed.
    """
    from contacts.signup import check_submission

    submission = check_submission(form, data, ip_address=ip_address)
    for mailing_list in form.lists.all():
        public_subscribe(
            mailing_list,
            email=submission.email,
            first_name=submission.first_name,
            last_name=submission.last_name,
            ip_address=ip_address,
            detail=f"signup form {form.name}: list {mailing_list.name}",
        )


def signup_form_save(
    form: SignupForm | None, *, by: Any, lists: Iterable[MailingList], **fields: Any
) -> SignupForm:
    for line in str(fields.get("allowed_origins", "")).splitlines():
        origin = line.strip()
        if origin and not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?", origin):
            raise Invalid(
                f"{origin[:60]!r} is not an origin like https://www.example.com (no path)",
                field="allowed_origins",
            )
    with transaction.atomic():
        created = form is None
        form = form or SignupForm()
        for name, value in fields.items():
            setattr(form, name, value)
        form.save()
        form.lists.set(list(lists))
        _audit(by, "signup_form.created" if created else "signup_form.updated", form, name=form.name)
    return form


def _announce_confirmed(contact_id: int, list_id: int) -> None:
    """After the commit: the contact is confirmed on the list (other apps start their journeys)."""
    transaction.on_commit(
        lambda: signals.subscription_confirmed.send(
            sender=Subscription, contact_id=contact_id, list_id=list_id
        )
    )


def _confirm(subscription: Subscription, *, ip_address: str | None, now: dt.datetime) -> None:
    subscription.status = SubscriptionStatus.CONFIRMED
    subscription.confirmed_at = now
    subscription.save(update_fields=["status", "confirmed_at", "updated_at"])
    _announce_confirmed(subscription.contact_id, subscription.mailing_list_id)
    contact = subscription.contact
    # Confirming is the person's own fresh consent: it lifts an earlier marketing unsubscribe,
    # never a bounce, complaint or blocklisting.
    if contact.status in (ContactStatus.ACTIVE, ContactStatus.UNSUBSCRIBED):
        contact.status = ContactStatus.ACTIVE
        contact.consent_at = now
        contact.consent_source = ConsentSource.FORM
        contact.consent_ip = ip_address
        contact.consent_detail = f"confirmed list {subscription.mailing_list.name}"[:300]
        contact.save(
            update_fields=[
                "status",
                "consent_at",
                "consent_source",
                "consent_ip",
                "consent_detail",
                "updated_at",
            ]
        )


def subscription_confirm(subscription_id: int, *, ip_address: str | None = None) -> Subscription | None:
    """Confirm a double opt-in subscription; None when it is gone or may not be confirmed."""
    with transaction.atomic():
        subscription = (
            Subscription.objects.select_for_update()
            .select_related("contact", "mailing_list")
            .filter(pk=subscription_id)
            .first()
        )
        if subscription is None or subscription.contact.status in UNDELIVERABLE_STATUSES:
            return None
        if subscription.status == SubscriptionStatus.UNCONFIRMED:
            _confirm(subscription, ip_address=ip_address, now=timezone.now())
        return subscription


def preferences_save(
    contact: Contact, *, list_ids: Iterable[int], unsubscribe_all: bool, ip_address: str | None = None
) -> None:
    """The preference centre: stay on exactly `list_ids` (public lists or ones already joined)."""
    if unsubscribe_all:
        contact_unsubscribe(contact.pk, list_ids=None, source="preferences")
        return
    wanted = {int(i) for i in list_ids}
    allowed = set(
        MailingList.objects.filter(Q(is_public=True) | Q(subscriptions__contact=contact)).values_list(
            "id", flat=True
        )
    )
    wanted &= allowed
    now = timezone.now()
    with transaction.atomic():
        current = {
            s.mailing_list_id: s for s in Subscription.objects.select_for_update().filter(contact=contact)
        }
        leave = [
            i for i, s in current.items() if i not in wanted and s.status != SubscriptionStatus.UNSUBSCRIBED
        ]
        if leave:
            contact_unsubscribe(contact.pk, list_ids=leave, source="preferences")
        if contact.status in UNDELIVERABLE_STATUSES:
            return
        for list_id in wanted:
            subscription = current.get(list_id)
            if subscription is None:
                subscription = Subscription.objects.create(
                    contact=contact,
                    mailing_list_id=list_id,
                    status=SubscriptionStatus.UNCONFIRMED,
                    source="preferences",
                )
            if subscription.status != SubscriptionStatus.CONFIRMED:
                # The link came in the person's own mail: that proves the address.
                _confirm(subscription, ip_address=ip_address, now=now)


def contact_export_data(contact: Contact, *, by: Any) -> dict[str, Any]:
    """Everything contacts holds about one person (GDPR access request), recorded in the audit log."""
    data = {
        **contact.own_values(),
        "consent": {
            "at": contact.consent_at.isoformat() if contact.consent_at else None,
            "source": contact.consent_source,
            "ip": contact.consent_ip,
            "detail": contact.consent_detail,
        },
        "engagement": {
            "last_sent_at": contact.last_sent_at.isoformat() if contact.last_sent_at else None,
            "last_opened_at": contact.last_opened_at.isoformat() if contact.last_opened_at else None,
            "last_clicked_at": contact.last_clicked_at.isoformat() if contact.last_clicked_at else None,
            "bounce_count": contact.bounce_count,
            "soft_bounce_count": contact.soft_bounce_count,
        },
        "created_at": contact.created_at.isoformat(),
        "updated_at": contact.updated_at.isoformat(),
        "subscriptions": [
            {
                "list": s.mailing_list.name,
                "status": s.status,
                "source": s.source,
                "created_at": s.created_at.isoformat(),
                "confirmed_at": s.confirmed_at.isoformat() if s.confirmed_at else None,
                "unsubscribed_at": s.unsubscribed_at.isoformat() if s.unsubscribed_at else None,
            }
            for s in contact.subscriptions.select_related("mailing_list").order_by("id")
        ],
    }
    audit_record(by, "contact.data_exported", contact)
    return data


# --- List hygiene: the sunset policy ---

SUNSET_SOURCE = "sunset"


def sunset_run(
    *,
    months: int,
    after_mailing_ids: Iterable[int],
    grace_days: int = 7,
    list_ids: Iterable[int] | None = None,
    by: Any = None,
    dry_run: bool = False,
) -> int:
    """Move out of the active audience the contacts who did not engage, after a re-engagement attempt.

    A contact is sunset when it is active, had one of `after_mailing_ids` (the re-engagement mail)
    at least `grace_days` ago and did not open it, and has no human open or click in `months`
    months. Its confirmed subscriptions (on `list_ids`, or all) become unsubscribed with source
    "sunset": no audience includes it, the contact itself is untouched, and sunset_restore brings
    exactly those subscriptions back. Audited; returns how many contacts (with dry_run, would be).
    """
    mailings = sorted({int(i) for i in after_mailing_ids})
    if not mailings:
        raise Invalid("name the re-engagement mailing(s) the contacts had first", field="after_mailing_ids")
    if not 1 <= months <= 120:
        raise Invalid("months must be between 1 and 120", field="months")
    now = timezone.now()
    cutoff = now - dt.timedelta(days=30 * months)
    lists = sorted({int(i) for i in list_ids}) if list_ids else None
    sql = (
        "SELECT c.id FROM contacts_contact c WHERE c.status = %s "
        "AND coalesce(greatest(c.last_opened_at, c.last_clicked_at), '-infinity') < %s "
        "AND EXISTS (SELECT 1 FROM contacts_engagement e WHERE e.contact_id = c.id AND e.mailing_id = ANY(%s) "
        "AND e.sent_at <= %s) "
        "AND NOT EXISTS (SELECT 1 FROM contacts_engagement e WHERE e.contact_id = c.id "
        "AND e.mailing_id = ANY(%s) AND e.opened_at IS NOT NULL) "
        "AND EXISTS (SELECT 1 FROM contacts_subscription s WHERE s.contact_id = c.id AND s.status = %s "
        "AND (%s::bigint[] IS NULL OR s.mailing_list_id = ANY(%s::bigint[])))"
    )
    params: list[Any] = [
        ContactStatus.ACTIVE, cutoff, mailings, now - dt.timedelta(days=grace_days), mailings,
        SubscriptionStatus.CONFIRMED,
    ]  # fmt: skip
    params.extend([lists, lists])
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        ids = [row[0] for row in cursor.fetchall()]
        if dry_run or not ids:
            return len(ids)
        subscriptions = Subscription.objects.filter(contact_id__in=ids, status=SubscriptionStatus.CONFIRMED)
        if lists:
            subscriptions = subscriptions.filter(mailing_list_id__in=lists)
        left = subscriptions.update(
            status=SubscriptionStatus.UNSUBSCRIBED, unsubscribed_at=now, source=SUNSET_SOURCE, updated_at=now
        )
        audit_record(
            by or "sunset policy",
            "contacts.sunset",
            None,
            details={
                "contacts": len(ids),
                "subscriptions": left,
                "months": months,
                "after_mailings": mailings,
            },
        )
    return len(ids)


def sunset_restore(*, contact_ids: Iterable[int] | None = None, by: Any = None) -> int:
    """Undo the sunset: the subscriptions it ended are confirmed again (of these contacts, or all)."""
    subscriptions = Subscription.objects.filter(status=SubscriptionStatus.UNSUBSCRIBED, source=SUNSET_SOURCE)
    if contact_ids is not None:
        subscriptions = subscriptions.filter(contact_id__in=_ids(contact_ids))
    with transaction.atomic():
        restored = subscriptions.update(
            status=SubscriptionStatus.CONFIRMED,
            unsubscribed_at=None,
            source="sunset-restored",
            updated_at=timezone.now(),
        )
        audit_record(
            by or "sunset policy", "contacts.sunset_restored", None, details={"subscriptions": restored}
        )
    return restored
