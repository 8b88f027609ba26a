"""Reads for the bounce path (the Messages a bounce names) and for the Bounces pages."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from delivery.bounces import bulk, rules
from delivery.bounces.models import BounceEvent, BouncePolicy
from delivery.models import Mailing, Message


@dataclass(frozen=True)
class MessageInfo:
    """What attribution and the policy need of a Message a bounce names."""

    id: int
    email: str
    contact_id: int | None
    mailing_id: int | None
    relay_id: int | None
    sending_domain: str


def messages_info(message_ids: Iterable[int]) -> dict[int, MessageInfo]:
    """The Messages these ids name, in one query; absent ids are absent from the answer."""
    return messages_info_later(message_ids)()


def messages_info_later(message_ids: Iterable[int]) -> Callable[[], dict[int, MessageInfo]]:
    """messages_info, its query sent now and its answer read when called (bulk.fetch_later)."""
    ids = sorted({int(i) for i in message_ids})
    if not ids:
        return dict
    # SQL of our own: compiling the ORM's query cost more CPU than PostgreSQL spent running it.
    rows = bulk.fetch_later(
        f"SELECT m.id, m.email, m.contact_id, m.mailing_id, m.relay_id, g.from_email FROM {Message._meta.db_table} m "  # noqa: S608
        f"LEFT JOIN {Mailing._meta.db_table} g ON g.id = m.mailing_id WHERE m.id = ANY(%s)",
        [ids],
    )
    return lambda: {
        message_id: MessageInfo(
            id=message_id,
            email=(email or "").lower(),
            contact_id=contact_id,
            mailing_id=mailing_id,
            relay_id=relay_id,
            sending_domain=(from_email or "").rpartition("@")[2].lower(),
        )
        for message_id, email, contact_id, mailing_id, relay_id, from_email in rows()
    }


def bounce_policy_later() -> Callable[[], BouncePolicy]:
    """BouncePolicy.current(), its row asked for now and read when called (bulk.fetch_later)."""
    fields = [field.attname for field in BouncePolicy._meta.concrete_fields]
    rows = bulk.fetch_later(
        f"SELECT {', '.join(fields)} FROM {BouncePolicy._meta.db_table} WHERE id = 1",  # noqa: S608
        [],
    )

    def policy() -> BouncePolicy:
        found = rows()
        return BouncePolicy.from_db("default", fields, found[0]) if found else BouncePolicy.current()

    return policy


SoftHistory = dict[int, list[tuple[object, dt.datetime]]]


def _history(rows: Iterable[tuple[int, int | None, int, dt.datetime]]) -> SoftHistory:
    history: SoftHistory = defaultdict(list)
    for contact_id, mailing_id, event_id, at in rows:
        history[contact_id].append((mailing_id if mailing_id is not None else ("event", event_id), at))
    return history


def soft_history(contact_ids: set[int], since: dt.datetime) -> SoftHistory:
    """Earlier soft bounces of these contacts: (mailing key, at); an event without a mailing is a
    key of its own."""
    if not contact_ids:
        return defaultdict(list)
    with connection.cursor() as cursor:
        cursor.execute(
            _soft_events_sql("SELECT DISTINCT unnest(%s::bigint[])", "%s"),
            [sorted(contact_ids), [rules.SOFT, rules.UNKNOWN], since],
        )
        return _history(cursor.fetchall())


def _soft_events_sql(contacts: str, since: str) -> str:
    """The soft bounces since `since` (SQL) of the contacts `contacts` (a query of contact ids)
    returns, each contact's own through the (contact_id, kind, at) index, one descent per contact.

    The planner chose a scan of every soft event in the window filtered by contact
    (bounces_kind_at) whenever its statistics were taken while soft bounces were rare, that is at
    the start of a wave of them: a listener's group spent 2 ms on it at a few thousand events in
    the window, growing with the wave. So the kind is tested as `(...) IS TRUE`, which no index
    answers (the embedded server's PostgreSQL took bounces_kind_at even inside the lateral
    subquery), and the lateral subquery is kept apart by OFFSET 0 (else it is pulled up into a
    plain join).

    One row per key the threshold counts (a mailing, or an event that names none) with its latest
    time: a key counts when any of its events is in the window, so its latest says it; a contact's
    retried bounces of one mailing are not each read and parsed."""
    return (
        f"SELECT e.contact_id, e.mailing_id, e.id, e.at FROM ({contacts}) AS c(contact_id), LATERAL ("  # noqa: S608
        f"SELECT e.contact_id, e.mailing_id, max(e.id) AS id, max(e.at) AS at FROM {BounceEvent._meta.db_table} e "
        f"WHERE e.contact_id = c.contact_id AND (e.kind = ANY(%s)) IS TRUE AND e.at >= {since} "
        "GROUP BY e.contact_id, e.mailing_id, CASE WHEN e.mailing_id IS NULL THEN e.id END OFFSET 0) AS e"
    )


def soft_history_of_messages_later(message_ids: Iterable[int], now: dt.datetime) -> Callable[[], SoftHistory]:
    """soft_history of the contacts these Messages went to, over the policy's window back from
    `now`, sent now and read when called: one query whose contacts and window come from the
    database, so it shares a round trip with messages_info_later and the policy's read."""
    ids = sorted({int(i) for i in message_ids})
    if not ids:
        return lambda: defaultdict(list)
    rows = bulk.fetch_later(*soft_history_query(ids, now))
    return lambda: _history(rows())


def soft_history_query(message_ids: list[int], now: dt.datetime) -> tuple[str, list]:
    """The SQL and parameters of soft_history_of_messages_later: the contacts and the policy's
    window come from the database."""
    window = BouncePolicy._meta.get_field("soft_bounce_window_days")
    return (
        _soft_events_sql(
            f"SELECT DISTINCT m.contact_id FROM {Message._meta.db_table} m "  # noqa: S608
            "WHERE m.id = ANY(%s) AND m.contact_id IS NOT NULL",
            "%s - make_interval(days => COALESCE("  # noqa: S608
            f"(SELECT p.{window.column} FROM {BouncePolicy._meta.db_table} p WHERE p.id = 1), %s))",
        ),
        [message_ids, [rules.SOFT, rules.UNKNOWN], now, window.default],
    )


def bounce_events(
    *, kind: str = "", source: str = "", q: str = "", days: int | None = None
) -> QuerySet[BounceEvent]:
    events = BounceEvent.objects.all()
    if kind in rules.KINDS:
        events = events.filter(kind=kind)
    if source:
        events = events.filter(source=source)
    if q:
        events = events.filter(Q(recipient__icontains=q) | Q(diagnostic__icontains=q) | Q(reason=q.lower()))
    if days:
        events = events.filter(at__gte=timezone.now() - dt.timedelta(days=days))
    return events.order_by("-at", "-id")


def contact_unlinked_bounces(contact_id: int, *, limit: int = 20) -> QuerySet[BounceEvent]:
    """A contact's bounce events that name no Message (matched by recipient, ESP events): the
    contact's timeline lists its Messages' events, these would be missing from it."""
    return BounceEvent.objects.filter(contact_id=contact_id, message_id=None).order_by("-at", "-id")[:limit]


def kind_totals(days: int = 30) -> dict[str, int]:
    since = timezone.now() - dt.timedelta(days=days)
    totals = dict(
        BounceEvent.objects.filter(at__gte=since).values_list("kind").annotate(n=Count("id")).order_by()
    )
    return {kind: totals.get(kind, 0) for kind in rules.KINDS}


@dataclass
class DayBar:
    day: dt.date
    bounces: int
    complaints: int


def daily_series(days: int = 30) -> list[DayBar]:
    """Bounces (hard, soft, block, unknown) and complaints per day, gaps filled with zero."""
    today = timezone.localdate()
    since = today - dt.timedelta(days=days - 1)
    rows = (
        BounceEvent.objects.filter(at__date__gte=since)
        .annotate(day=TruncDate("at"))
        .values("day")
        .annotate(
            bounces=Count("id", filter=Q(kind__in=[rules.HARD, rules.SOFT, rules.BLOCK, rules.UNKNOWN])),
            complaints=Count("id", filter=Q(kind=rules.COMPLAINT)),
        )
        .order_by()
    )
    by_day = {row["day"]: row for row in rows}
    series = []
    for offset in range(days):
        day = since + dt.timedelta(days=offset)
        row = by_day.get(day, {})
        series.append(DayBar(day, row.get("bounces", 0), row.get("complaints", 0)))
    return series


@dataclass
class BlockAlert:
    what: str
    name: str
    count: int


def block_alerts(hours: int = 24) -> list[BlockAlert]:
    """Relays and sending domains that collected blocks at or over the policy's threshold."""
    threshold = BouncePolicy.current().block_alert_threshold
    since = timezone.now() - dt.timedelta(hours=hours)
    blocks = BounceEvent.objects.filter(kind=rules.BLOCK, at__gte=since)
    alerts = []
    for row in (
        blocks.exclude(sending_domain="").values("sending_domain").annotate(n=Count("id")).order_by("-n")
    ):
        if row["n"] >= threshold:
            alerts.append(BlockAlert("sending domain", row["sending_domain"], row["n"]))
    for row in blocks.exclude(relay_id=None).values("relay_id").annotate(n=Count("id")).order_by("-n"):
        if row["n"] >= threshold:
            alerts.append(BlockAlert("relay", f"#{row['relay_id']}", row["n"]))
    unattributed = blocks.filter(sending_domain="", relay_id=None).count()
    if unattributed >= threshold:
        alerts.append(BlockAlert("unattributed", "blocks without a token", unattributed))
    return alerts
