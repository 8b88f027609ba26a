"""Reads: the audience other apps send to, claim-time checks, merge data, dashboard queries."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import Lower, TruncDate

from contacts.models import (
    UNDELIVERABLE_STATUSES,
    Contact,
    ContactImport,
    ContactStatus,
    CustomField,
    FieldType,
    ImportStatus,
    MailingList,
    Segment,
    Subscription,
    SubscriptionStatus,
    Suppression,
    SuppressionKind,
)
from contacts.segments import compile_rules
from mailplatform.sqlarrays import int_array

_NOT_SUPPRESSED = (
    "NOT EXISTS (SELECT 1 FROM contacts_suppression x WHERE x.kind = 'address' AND x.value = lower(c.email)) "
    "AND NOT EXISTS (SELECT 1 FROM contacts_suppression x WHERE x.kind = 'domain' "
    "AND x.value = split_part(lower(c.email), '@', -1))"
)


def _segment_condition(segment_id: int) -> tuple[str, list]:
    rules = Segment.objects.values_list("rules", flat=True).get(pk=segment_id)
    return compile_rules(rules)


def audience_sql(
    *,
    list_ids: list[int],
    segment_id: int | None = None,
    exclude_list_ids: Sequence[int] = (),
    exclude_segment_ids: Sequence[int] = (),
    rules: Any = None,
) -> tuple[str, list]:
    """`SELECT c.id FROM ...` of sendable contacts, with its parameters.

    `rules` (segment rules, compiled as a saved segment's) narrow it further: a resend's
    "received that mailing and did not open it".

    Sendable: status active, a confirmed subscription on any of `list_ids`, in the segment when one
    is given, no suppression of the address or its domain, and on none of the excluded lists
    (an unconfirmed or confirmed subscription there excludes; an unsubscribed one does not) and in
    none of the excluded segments. The segment's rules are read now, so a plan made later sees
    the segment as it is then.
    """
    params: list[Any] = [ContactStatus.ACTIVE, [int(i) for i in list_ids], SubscriptionStatus.CONFIRMED]
    where = [
        "c.status = %s",
        "EXISTS (SELECT 1 FROM contacts_subscription s WHERE s.contact_id = c.id "
        "AND s.mailing_list_id = ANY(%s) AND s.status = %s)",
        _NOT_SUPPRESSED,
    ]
    if segment_id is not None:
        condition, segment_params = _segment_condition(segment_id)
        where.append(condition)
        params.extend(segment_params)
    if rules:
        condition, rule_params = compile_rules(rules)
        where.append(condition)
        params.extend(rule_params)
    if exclude_list_ids:
        where.append(
            "NOT EXISTS (SELECT 1 FROM contacts_subscription s WHERE s.contact_id = c.id "
            "AND s.mailing_list_id = ANY(%s) AND s.status <> %s)"
        )
        params.extend([[int(i) for i in exclude_list_ids], SubscriptionStatus.UNSUBSCRIBED])
    for excluded in exclude_segment_ids:
        condition, segment_params = _segment_condition(excluded)
        where.append(f"NOT coalesce({condition}, FALSE)")
        params.extend(segment_params)
    # Fixed fragments and compiled segment conditions; every value is a parameter.
    sql = "SELECT c.id FROM contacts_contact c WHERE " + " AND ".join(where)  # noqa: S608
    return sql, params


def audience_count(
    *,
    list_ids: list[int],
    segment_id: int | None = None,
    exclude_list_ids: Sequence[int] = (),
    exclude_segment_ids: Sequence[int] = (),
) -> int:
    sql, params = audience_sql(
        list_ids=list_ids,
        segment_id=segment_id,
        exclude_list_ids=exclude_list_ids,
        exclude_segment_ids=exclude_segment_ids,
    )
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM ({sql}) AS audience", params)  # noqa: S608 -- built from fixed fragments
        return cursor.fetchone()[0]


def unsendable_contact_ids(contact_ids: Iterable[int], *, transactional: bool = False) -> set[int]:
    """Of `contact_ids`, those that must not be mailed now (claim-time recheck).

    Marketing: any status but active. Transactional: only bounced, complained or blocklisted.
    Either way a suppressed address or domain, and an id with no contact (erased) are unsendable.
    """
    ids = sorted({int(i) for i in contact_ids})
    if not ids:
        return set()
    if transactional:
        status_sql, status_param = "c.status = ANY(%s)", [list(UNDELIVERABLE_STATUSES)]
    else:
        status_sql, status_param = "c.status <> %s", [ContactStatus.ACTIVE]
    # One query returning only the unsendable ids (usually none): the ids go as one array literal,
    # and an id with no sendable contact behind it (erased, or failing the checks) comes back.
    sql = f"""
        SELECT i FROM unnest(%s::bigint[]) AS i
        WHERE NOT EXISTS (
            SELECT 1 FROM contacts_contact c
            WHERE c.id = i AND NOT ({status_sql}) AND {_NOT_SUPPRESSED}
        )
    """  # noqa: S608 -- fixed fragments
    with connection.cursor() as cursor:
        cursor.execute(sql, [int_array(ids), *status_param])
        return {row[0] for row in cursor.fetchall()}


def contacts_not_subscribed(contact_ids: Iterable[int], list_ids: Iterable[int]) -> set[int]:
    """Of `contact_ids`, those with no confirmed subscription on any of `list_ids` (claim-time re-check).

    The same rule planning applies (audience_sql): a list-based send goes only to contacts with a
    confirmed subscription on one of its lists, so a one-click unsubscribe from a list stops mail to
    that list already queued, while a contact still confirmed on another of the lists keeps getting it.
    """
    ids = sorted({int(i) for i in contact_ids})
    lists = sorted({int(i) for i in list_ids})
    if not ids or not lists:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT contact_id FROM contacts_subscription "
            "WHERE contact_id = ANY(%s) AND mailing_list_id = ANY(%s) AND status = %s",
            [ids, lists, SubscriptionStatus.CONFIRMED],
        )
        subscribed = {row[0] for row in cursor.fetchall()}
    return set(ids) - subscribed


def normalise_address(email: str) -> str:
    return email.strip().lower()


def address_is_suppressed(email: str) -> bool:
    """The address or its domain is suppressed, or its contact bounced, complained or is blocklisted."""
    address = normalise_address(email)
    domain = address.rsplit("@", 1)[-1] if "@" in address else ""
    if Suppression.objects.filter(
        Q(kind=SuppressionKind.ADDRESS, value=address) | Q(kind=SuppressionKind.DOMAIN, value=domain)
    ).exists():
        return True
    return _by_address(address).filter(status__in=UNDELIVERABLE_STATUSES).exists()


def typed_value(kind: str, value: Any) -> Any:
    """A stored attribute as the Python type its field declares (dates are stored as ISO text)."""
    if value is None:
        return None
    if kind == FieldType.DATE and isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return value
    return value


def contact_merge_data(contact_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Per contact: email, first_name, last_name, language, timezone and every attribute by name, typed.

    Declared custom fields are always present (None when the contact has no value), so a
    template may name them without failing; the built-in names win over attributes. Language and
    time zone are the effective ones (the install's default where the contact has none).
    """
    ids = sorted({int(i) for i in contact_ids})
    kinds = dict(CustomField.objects.values_list("name", "type"))
    result: dict[int, dict[str, Any]] = {}
    # One array parameter and one fetch: a send asks for a batch of hundreds at a time, and an
    # `id IN (%s, %s, ...)` list and a server-side cursor cost more than the rows themselves.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, email, first_name, last_name, language, timezone, attributes "
            "FROM contacts_contact WHERE id = ANY(%s)",
            [ids],
        )
        rows = cursor.fetchall()
    language_default, timezone_default = settings.DEFAULT_LANGUAGE, settings.DEFAULT_TIMEZONE
    for contact_id, email, first_name, last_name, language, zone, attributes in rows:
        if isinstance(attributes, str):  # Django leaves JSONB undecoded on a raw cursor
            attributes = json.loads(attributes)
        data: dict[str, Any] = dict.fromkeys(kinds)
        for name, value in (attributes or {}).items():
            data[name] = typed_value(kinds.get(name, FieldType.TEXT), value)
        data.update(
            email=email,
            first_name=first_name,
            last_name=last_name,
            language=language or language_default,
            timezone=zone or timezone_default,
        )
        result[contact_id] = data
    return result


# --- Dashboard reads ---


def contact_by_email(email: str) -> Contact | None:
    return _by_address(normalise_address(email)).first()


def contact_ids_by_address(addresses: Iterable[str]) -> dict[str, int]:
    """Lower-cased address -> contact id, in one query over the Lower(email) unique index."""
    wanted = sorted({a.lower() for a in addresses if a})
    if not wanted:
        return {}
    rows = (
        Contact.objects.annotate(email_lower=Lower("email"))
        .filter(email_lower__in=wanted)
        .values_list("email_lower", "id")
    )
    return dict(rows)


def _by_address(address: str) -> QuerySet[Contact]:
    # lower(email) = ... uses the unique index; Django's iexact (UPPER) would scan the table.
    return Contact.objects.alias(email_lower=Lower("email")).filter(email_lower=address.lower())


def contacts_page(
    *,
    search: str = "",
    status: str = "",
    list_id: int | None = None,
    segment_id: int | None = None,
    after_id: int | None = None,
    before_id: int | None = None,
    size: int = 50,
) -> tuple[list[Contact], bool, bool]:
    """One page of contacts, newest first, by keyset (id) so page 2,000 costs what page 1 does.

    Returns (contacts, has_newer, has_older). Search is a prefix of the address, or of the domain
    when it starts with "@".
    """
    where: list[str] = []
    params: list[Any] = []
    term = search.strip().lower()
    if term:
        escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        if term.startswith("@"):
            where.append("split_part(lower(c.email), '@', -1) LIKE %s")
            params.append(escaped[1:] + "%")
        else:
            # A prefix of the address: the unique text_pattern_ops index answers it at any size.
            # (Names are not searched: without an index that is a full scan of the table.)
            where.append("lower(c.email) LIKE %s")
            params.append(escaped + "%")
    if status:
        where.append("c.status = %s")
        params.append(status)
    if list_id:
        where.append(
            "EXISTS (SELECT 1 FROM contacts_subscription s WHERE s.contact_id = c.id "
            "AND s.mailing_list_id = %s AND s.status <> %s)"
        )
        params.extend([list_id, SubscriptionStatus.UNSUBSCRIBED])
    if segment_id:
        condition, segment_params = _segment_condition(segment_id)
        where.append(condition)
        params.extend(segment_params)
    ascending = before_id is not None
    if after_id is not None:
        where.append("c.id < %s")
        params.append(after_id)
    elif before_id is not None:
        where.append("c.id > %s")
        params.append(before_id)
    sql = "SELECT c.id FROM contacts_contact c"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY c.id {'ASC' if ascending else 'DESC'} LIMIT %s"
    params.append(size + 1)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        ids = [row[0] for row in cursor.fetchall()]
    more = len(ids) > size
    ids = ids[:size]
    if ascending:
        ids.reverse()
    by_id = Contact.objects.in_bulk(ids)
    contacts = [by_id[i] for i in ids if i in by_id]
    if ascending:
        has_newer, has_older = more, True
    else:
        has_newer, has_older = after_id is not None, more
    return contacts, has_newer, has_older


def segment_count(rules: Any) -> int:
    condition, params = compile_rules(rules)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM contacts_contact c WHERE {condition}", params)  # noqa: S608 -- compiled from checked rules
        return cursor.fetchone()[0]


def segment_contact_ids_sql(segment_id: int) -> tuple[str, list]:
    condition, params = _segment_condition(segment_id)
    return f"SELECT c.id FROM contacts_contact c WHERE {condition}", params  # noqa: S608


def segment_members(segment_id: int, contact_ids: Iterable[int]) -> set[int]:
    """Of `contact_ids`, those in the segment now (a segment that no longer exists has none)."""
    ids = sorted({int(i) for i in contact_ids})
    if not ids or not Segment.objects.filter(pk=segment_id).exists():
        return set()
    condition, params = _segment_condition(segment_id)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT c.id FROM contacts_contact c WHERE c.id = ANY(%s) AND ({condition})",  # noqa: S608
            [ids, *params],
        )
        return {row[0] for row in cursor.fetchall()}


def contacts_with_date_at_local_hour(field: str, hour: int, at: dt.datetime) -> tuple[str, list]:
    """`SELECT c.id ...` of active contacts whose date field `field` has today's month and day, in each
    contact's own time zone (the install's default where they have none), where it is `hour` or later."""
    zone = "coalesce(nullif(c.timezone, ''), %s)"
    sql = (
        "SELECT c.id FROM contacts_contact c WHERE c.status = 'active' "  # noqa: S608 - fixed fragments
        "AND c.attributes ? %s AND (c.attributes->>%s) ~ '^\\d{4}-\\d{2}-\\d{2}' "
        f"AND to_char((%s::timestamptz AT TIME ZONE {zone}), 'MM-DD') = substr(c.attributes->>%s, 6, 5) "
        f"AND extract(hour FROM (%s::timestamptz AT TIME ZONE {zone})) >= %s"
    )
    default = settings.DEFAULT_TIMEZONE
    return sql, [field, field, at, default, field, at, default, hour]


def segment_contact_ids_sql_for_rules(rules: Any) -> tuple[str, list]:
    condition, params = compile_rules(rules)
    return f"SELECT c.id FROM contacts_contact c WHERE {condition}", params  # noqa: S608


def contact_counts() -> dict[str, int]:
    """Contacts by status. An estimate from the planner's statistics is not used: counts are exact."""
    counts = dict.fromkeys(ContactStatus.values, 0)
    for row in Contact.objects.values("status").annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    counts["total"] = sum(counts.values())
    return counts


def mailing_lists_with_counts() -> QuerySet[MailingList]:
    return MailingList.objects.annotate(
        confirmed=Count("subscriptions", filter=Q(subscriptions__status=SubscriptionStatus.CONFIRMED)),
        unconfirmed=Count("subscriptions", filter=Q(subscriptions__status=SubscriptionStatus.UNCONFIRMED)),
        unsubscribed=Count("subscriptions", filter=Q(subscriptions__status=SubscriptionStatus.UNSUBSCRIBED)),
    ).order_by("name")


def _subscriptions_per_day(field: str, since: dt.datetime) -> dict[dt.date, int]:
    return dict(
        Subscription.objects.filter(**{f"{field}__gte": since})
        .annotate(day=TruncDate(field))
        .values_list("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    )


def list_growth(days: int = 30) -> list[dict[str, Any]]:
    """Confirmed subscriptions and unsubscriptions per day over the last `days` days."""
    since = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(
        days=days - 1
    )
    joined = _subscriptions_per_day("confirmed_at", since)
    left = _subscriptions_per_day("unsubscribed_at", since)
    result = []
    for offset in range(days):
        day = (since + dt.timedelta(days=offset)).date()
        result.append({"day": day, "joined": joined.get(day, 0), "left": left.get(day, 0)})
    return result


def subscriptions_of(contact: Contact) -> QuerySet[Subscription]:
    return contact.subscriptions.select_related("mailing_list").order_by("mailing_list__name")


def recent_imports(limit: int = 50) -> QuerySet[ContactImport]:
    return ContactImport.objects.prefetch_related("mailing_lists").order_by("-created_at")[:limit]


def public_lists() -> QuerySet[MailingList]:
    return MailingList.objects.filter(is_public=True).order_by("name")


def contacts_export_rows(id_sql: str, params: list) -> Iterator[tuple]:
    """(email, first_name, last_name, language, timezone, status, created_at, attributes) of the
    contacts `id_sql` selects, in id order, streamed through a server-side cursor (a million rows,
    flat memory). Language and time zone as stored: empty means the install's default."""
    columns = (
        "c.email, c.first_name, c.last_name, c.language, c.timezone, c.status, c.created_at, c.attributes"
    )
    sql = f"SELECT {columns} FROM contacts_contact c WHERE c.id IN ({id_sql}) ORDER BY c.id"  # noqa: S608
    with transaction.atomic(), connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while batch := cursor.fetchmany(2000):
            # Django loads jsonb from raw SQL as text.
            for *row, attributes in batch:
                yield (*row, json.loads(attributes) if isinstance(attributes, str) else attributes)


def import_backlog_metrics():
    """Prometheus: imports waiting or running (the imports table holds one row per upload: small)."""
    from mailplatform.metrics import gauge, single

    backlog = ContactImport.objects.filter(status__in=[ImportStatus.PENDING, ImportStatus.RUNNING]).count()
    return [single(gauge("import_backlog", "Contact imports waiting or running"), backlog)]


def contacts_exist() -> bool:
    """The home checklist's "import your contacts" step."""
    return Contact.objects.exists()


def custom_field_names() -> list[str]:
    """Every custom field's key (what a template writes as contact.<key>)."""
    return list(CustomField.objects.order_by("name").values_list("name", flat=True))


def contact_timezones(contact_ids: Iterable[int]) -> dict[int, str]:
    """Each contact's effective IANA time zone (its own, else settings.DEFAULT_TIMEZONE), by id."""
    ids = sorted({int(i) for i in contact_ids})
    rows = Contact.objects.filter(id__in=ids).values_list("id", "timezone")
    return {pk: zone or settings.DEFAULT_TIMEZONE for pk, zone in rows}
