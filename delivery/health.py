"""Sender health: per sending domain (the From's) and per receiving domain group, over time, the
delivered, deferred, bounced, complained and unsubscribed rates, read from the ledger and its events.

Reads only (the sender health page); SQL on delivery's own tables. Buckets are UTC days over the
last `days` days and UTC hours over the last `hours` hours.

- A message counts as *attempted* in the bucket of its attempt (`sent_at`, or its creation for one
  that failed without being sent); *delivered* is sent and not bounced since, *bounced* has a bounce
  kind (refused at RCPT or reported later).
- *Deferred*, *complained* and *unsubscribed* count distinct messages with such an event in the
  bucket of the event, against the bucket's attempted messages: a complaint rate is "complaints
  reported that day / mail attempted that day", as mailbox providers' postmaster tools show it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import connection
from django.utils import timezone

from delivery import domains

KINDS = ("attempted", "delivered", "bounced", "deferred", "complained", "unsubscribed")
RATES = ("delivered", "deferred", "bounced", "complained", "unsubscribed")

# What mailbox providers ask of bulk senders (Gmail's and Yahoo's 2024 rules): spam complaints
# below 0.3 % at all times, and below 0.1 % to be safe; bounces kept low (2 % is a common line).
THRESHOLDS = {
    "complained": [(0.3, "Gmail/Yahoo limit 0.3 %"), (0.1, "recommended 0.1 %")],
    "bounced": [(2.0, "bounces 2 %")],
}


def _known() -> tuple[list[str], list[str]]:
    domain_group = domains._tables(domains._settings_key())[0]
    return list(domain_group), list(domain_group.values())


def _message_rows(unit: str, since: dt.datetime) -> list[tuple]:
    known_domains, known_groups = _known()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH known(domain, grp) AS (SELECT * FROM unnest(%s::text[], %s::text[]))
            SELECT date_trunc(%s, coalesce(m.sent_at, m.created_at)) AS bucket,
                split_part(lower(g.from_email), '@', 2),
                coalesce(k.grp, split_part(lower(m.email), '@', 2)),
                count(*),
                count(*) FILTER (WHERE m.state = 'sent' AND m.bounce_kind = ''),
                count(*) FILTER (WHERE m.bounce_kind <> '')
            FROM delivery_message m
            JOIN delivery_mailing g ON g.id = m.mailing_id
            LEFT JOIN known k ON k.domain = split_part(lower(m.email), '@', 2)
            WHERE m.state IN ('sent', 'failed') AND m.created_at >= %s - interval '7 days'
              AND coalesce(m.sent_at, m.created_at) >= %s
            GROUP BY 1, 2, 3
            """,
            [known_domains, known_groups, unit, since, since],
        )
        return cursor.fetchall()


def _event_rows(unit: str, since: dt.datetime) -> list[tuple]:
    known_domains, known_groups = _known()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH known(domain, grp) AS (SELECT * FROM unnest(%s::text[], %s::text[]))
            SELECT date_trunc(%s, e.at),
                split_part(lower(g.from_email), '@', 2),
                coalesce(k.grp, split_part(lower(m.email), '@', 2)),
                count(DISTINCT e.message_id) FILTER (WHERE e.kind = 'deferred'),
                count(DISTINCT e.message_id) FILTER (WHERE e.kind = 'complained'),
                count(DISTINCT e.message_id) FILTER (WHERE e.kind = 'unsubscribed')
            FROM delivery_messageevent e
            JOIN delivery_message m ON m.id = e.message_id
            JOIN delivery_mailing g ON g.id = e.mailing_id
            LEFT JOIN known k ON k.domain = split_part(lower(m.email), '@', 2)
            WHERE e.at >= %s AND e.kind IN ('deferred', 'complained', 'unsubscribed')
            GROUP BY 1, 2, 3
            """,
            [known_domains, known_groups, unit, since],
        )
        return cursor.fetchall()


def _cells(unit: str, since: dt.datetime) -> dict[tuple, dict[str, int]]:
    """(bucket, sending domain, receiving group) -> counts of each KIND."""
    cells: dict[tuple, dict[str, int]] = {}
    for bucket, sending, receiving, attempted, delivered, bounced in _message_rows(unit, since):
        cell = cells.setdefault((bucket, sending, receiving), dict.fromkeys(KINDS, 0))
        cell.update(attempted=attempted, delivered=delivered, bounced=bounced)
    for bucket, sending, receiving, deferred, complained, unsubscribed in _event_rows(unit, since):
        cell = cells.setdefault((bucket, sending, receiving), dict.fromkeys(KINDS, 0))
        cell.update(deferred=deferred, complained=complained, unsubscribed=unsubscribed)
    return cells


def _with_rates(counts: dict[str, int]) -> dict[str, Any]:
    attempted = counts["attempted"]
    rates = {kind: round(counts[kind] * 100 / attempted, 3) if attempted else None for kind in RATES}
    over = [
        label
        for kind, lines in THRESHOLDS.items()
        for limit, label in lines[:1]
        if rates[kind] is not None and rates[kind] > limit
    ]
    return {**counts, "rates": rates, "over": over}


def _series(
    cells: dict[tuple, dict[str, int]],
    unit: str,
    since: dt.datetime,
    steps: int,
    sending: str,
    receiving: str,
) -> list[dict[str, Any]]:
    step = dt.timedelta(days=1) if unit == "day" else dt.timedelta(hours=1)
    start = since.replace(minute=0, second=0, microsecond=0)
    if unit == "day":
        start = start.replace(hour=0)
    buckets = {start + i * step: dict.fromkeys(KINDS, 0) for i in range(steps)}
    for (bucket, from_domain, group), counts in cells.items():
        if (sending and from_domain != sending) or (receiving and group != receiving):
            continue
        target = buckets.get(bucket)
        if target is None:
            continue
        for kind in KINDS:
            target[kind] += counts[kind]
    fmt = "%b %d" if unit == "day" else "%H:00"
    return [
        {"at": at, "label": at.strftime(fmt), **_with_rates(counts)} for at, counts in sorted(buckets.items())
    ]


def _totals(
    cells: dict[tuple, dict[str, int]], index: int, *, limit: int | None = None
) -> list[dict[str, Any]]:
    totals: dict[str, dict[str, int]] = {}
    for key, counts in cells.items():
        row = totals.setdefault(key[index], dict.fromkeys(KINDS, 0))
        for kind in KINDS:
            row[kind] += counts[kind]
    rows = sorted(totals.items(), key=lambda item: (-item[1]["attempted"], item[0]))
    if limit is not None:
        rows = rows[:limit]
    return [{"name": name, **_with_rates(counts)} for name, counts in rows]


def sender_health(
    *, sending: str = "", receiving: str = "", days: int = 30, hours: int = 48, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Totals per sending domain and per receiving group over `days`; and for the chosen ones (or all),
    the rates per UTC day over `days` and per hour over the last `hours`."""
    now = now or timezone.now()
    day_since = (
        (now - dt.timedelta(days=days - 1))
        .astimezone(dt.UTC)
        .replace(hour=0, minute=0, second=0, microsecond=0)
    )
    hour_since = (
        (now - dt.timedelta(hours=hours - 1)).astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    )
    daily = _cells("day", day_since)
    hourly = _cells("hour", hour_since)
    return {
        "sending": _totals(daily, 1),
        "receiving": _totals(daily, 2, limit=20),
        "daily": _series(daily, "day", day_since, days, sending, receiving),
        "hourly": _series(hourly, "hour", hour_since, hours, sending, receiving),
        "thresholds": THRESHOLDS,
    }
