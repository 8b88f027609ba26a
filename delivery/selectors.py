"""Reads of the delivery app: progress, relay usage, the ledger, a contact's timeline, report figures."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

from django.db import connection
from django.db.models import Count, Max, Q, QuerySet
from django.db.models.functions import Lower
from django.utils import timezone

from delivery import ratelimit
from delivery.models import HoldReason, Mailing, Message, MessageEvent, MessageState, Relay, SendingIdentity

STATES = [s.value for s in MessageState]


def mailing_progress(mailing_id: int) -> dict[str, Any]:
    """Counts per state, the recent rate and the time left; total counts every Message.

    Held Messages (`deferred`: by the relay, a sending window, a throttle, warm-up) count by
    reason in `held` (the ledger's `Message.hold_reason`); the estimate is never earlier than the
    last hold's not-before time (`next_attempt_at`). A paused Mailing has no rate and no time left;
    `after_pause` counts what was recorded sent after the pause (runners had already handed it to
    the relay when the pause came).
    """
    counts = dict.fromkeys(STATES, 0)
    for row in Message.objects.filter(mailing_id=mailing_id).values("state").annotate(n=Count("id")):
        counts[row["state"]] = row["n"]
    total = sum(counts.values())
    mailing = Mailing.objects.filter(pk=mailing_id).only("state", "paused_at").first()
    paused = mailing is not None and mailing.state == Mailing.State.PAUSED
    rate = 0.0 if paused else ratelimit.recent_rate(mailing_id)
    remaining = counts["queued"] + counts["sending"] + counts["deferred"]
    done = total - remaining
    held: dict[str, int] = {}
    held_until = None
    if counts["deferred"]:
        rows = (
            Message.objects.filter(mailing_id=mailing_id, state=MessageState.DEFERRED)
            .values("hold_reason")
            .annotate(n=Count("id"), until=Max("next_attempt_at"))
        )
        for row in rows:
            held[row["hold_reason"] or HoldReason.RELAY] = row["n"]
            held_until = max(filter(None, [held_until, row["until"]]), default=None)
    eta = int(remaining / rate + 0.5) if rate > 0 and remaining else None
    if held_until is not None and not paused:
        eta = max(eta or 0, int((held_until - timezone.now()).total_seconds())) or eta
    after_pause = 0
    if paused and mailing.paused_at is not None:
        after_pause = Message.objects.filter(
            mailing_id=mailing_id, state=MessageState.SENT, sent_at__gt=mailing.paused_at
        ).count()
    return {
        "total": total,
        **counts,
        "done": done,
        "percent": int(done * 100 / total) if total else 0,
        "rate_per_s": round(rate, 1),
        "eta_s": eta,
        "held": held,
        "held_until": held_until,
        "paused": paused,
        "after_pause": after_pause,
    }


def mailing_states(mailing_ids: Sequence[int]) -> dict[int, str]:
    """Each Mailing's state, by id (absent ids are absent)."""
    return dict(Mailing.objects.filter(pk__in=list(mailing_ids)).values_list("pk", "state"))


def mailings_page(*, limit: int = 50) -> QuerySet[Mailing]:
    # contains, not meta__test=True: a missing key would make the exclusion NULL and drop the row.
    return Mailing.objects.exclude(meta__contains={"test": True}).order_by("-id")[:limit]


def mailing_event_counts(mailing_id: int) -> dict[str, int]:
    """Events by kind, labelled. "Sent" is the ledger's count of sent Messages (the same number as
    the progress's "N sent of N"): a send is recorded on the Message, not as an event row."""
    counts = dict.fromkeys(MessageEvent.Kind.values, 0)
    for row in MessageEvent.objects.filter(mailing_id=mailing_id).values("kind").annotate(n=Count("id")):
        counts[row["kind"]] = row["n"]
    counts[MessageEvent.Kind.SENT] = Message.objects.filter(
        mailing_id=mailing_id, state=MessageState.SENT
    ).count()
    return {str(MessageEvent.Kind(kind).label): n for kind, n in counts.items()}


def relays_with_usage() -> list[dict[str, Any]]:
    """Each relay with its limits and what it used this hour, today and right now."""
    rows = []
    now = timezone.now()
    for relay in Relay.objects.all():
        try:
            usage = ratelimit.usage(relay.pk)
        except Exception:  # Redis down must not take the relays page with it
            usage = {"hour": 0, "day": 0, "connections": 0}
        rows.append(
            {
                "relay": relay,
                "usage": usage,
                "backed_off": bool(relay.backed_off_until and relay.backed_off_until > now),
                "hour_percent": _percent(usage["hour"], relay.per_hour),
                "day_percent": _percent(usage["day"], relay.per_day),
                "connections_percent": _percent(usage["connections"], relay.max_connections),
            }
        )
    return rows


def _percent(used: int, limit: int) -> int:
    return min(100, int(used * 100 / limit)) if limit else 0


def identities() -> QuerySet[SendingIdentity]:
    return SendingIdentity.objects.all()


def ledger_search(*, address: str = "", mailing_id: int | None = None, state: str = "", limit: int = 100):
    """Ledger rows by address (exact, case-insensitive; or a prefix ending in *), newest first."""
    # lower(email) matches the delivery_msg_email_lower index, where iexact's upper() would not.
    query = Message.objects.select_related("mailing", "relay").alias(address=Lower("email")).order_by("-id")
    address = address.strip().lower()
    if address.endswith("*"):
        query = query.filter(address__startswith=address[:-1])
    elif address:
        query = query.filter(address=address)
    if mailing_id:
        query = query.filter(mailing_id=mailing_id)
    if state in STATES:
        query = query.filter(state=state)
    return query[:limit]


def contact_timeline(contact_id: int, *, limit: int = 50) -> list[dict[str, Any]]:
    """A contact's messages and their events, newest first."""
    messages = list(
        Message.objects.filter(contact_id=contact_id).select_related("mailing").order_by("-id")[:limit]
    )
    events: dict[int, list[MessageEvent]] = {}
    for event in MessageEvent.objects.filter(message_id__in=[m.pk for m in messages]).order_by("at"):
        events.setdefault(event.message_id, []).append(event)
    return [{"message": m, "events": events.get(m.pk, [])} for m in messages]


def home_figures() -> dict[str, Any]:
    """Headline figures, cached briefly: the home page and delivery index poll them."""
    from django.core.cache import cache

    return cache.get_or_set("delivery:home-figures", _home_figures, timeout=10)


def _home_figures() -> dict[str, Any]:
    since = timezone.now() - dt.timedelta(days=1)
    recent = Message.objects.filter(created_at__gte=since).aggregate(
        sent=Count("id", filter=Q(state=MessageState.SENT)),
        failed=Count("id", filter=Q(state=MessageState.FAILED)),
        deferred=Count("id", filter=Q(state=MessageState.DEFERRED)),
        queued=Count("id", filter=Q(state__in=[MessageState.QUEUED, MessageState.SENDING])),
    )
    now = timezone.now()
    return {
        **recent,
        "sending": Mailing.objects.filter(state=Mailing.State.SENDING).count(),
        "relays": Relay.objects.filter(enabled=True).count(),
        "relays_failing": Relay.objects.filter(enabled=True, backed_off_until__gt=now).count(),
    }


# --- reports: figures about a set of Mailings (campaigns call these; they hold no SQL of ours) ---

# An open or a click that a machine made (a mail-privacy proxy, a link scanner) has data "machine".
HUMAN_SQL = "coalesce(e.data->>'machine', '') = ''"
# The stored bounce kind (Message.bounce_kind, the bounce classifier's word) as the reports' three
# classes: "unknown" counts as soft, as the bounce policy treats it.
_SOFT = "bounce_kind IN ('soft', 'unknown')"


def _rows(sql: str, params: Sequence[Any]) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))
        return cursor.fetchall()


def rate(part: int, whole: int) -> float:
    """part as a percentage of whole, two decimals; 0 when whole is 0."""
    return round(part * 100 / whole, 2) if whole else 0.0


def guard_stats(mailing_ids: list[int], *, window: int) -> dict[str, int]:
    """Over the first `window` attempted messages: how many, hard bounces and complaints among them."""
    if not mailing_ids:
        return {"attempted": 0, "hard": 0, "complaints": 0}
    row = _rows(
        """
        WITH first AS (
            SELECT id, bounce_kind FROM delivery_message
            WHERE mailing_id = ANY(%s) AND state IN ('sent', 'failed') ORDER BY id LIMIT %s
        )
        SELECT (SELECT count(*) FROM first),
            (SELECT count(*) FROM first WHERE bounce_kind = 'hard'),
            (SELECT count(DISTINCT e.message_id) FROM delivery_messageevent e
             WHERE e.message_id IN (SELECT id FROM first) AND e.kind = 'complained')
        """,
        [mailing_ids, window],
    )[0]
    return {"attempted": row[0], "hard": row[1], "complaints": row[2]}


def mailing_figures(mailing_ids: list[int]) -> dict[str, Any]:
    """Every headline number of a set of Mailings, each with its rate."""
    figures = dict.fromkeys(
        (
            "total", "sent", "failed", "skipped", "queued", "bounced", "hard", "soft", "block",
            "opens", "unique_opens", "human_opens", "machine_opens", "clicks", "unique_clicks",
            "human_clicks", "machine_clicks", "unsubscribed", "complained",
        ),
        0,
    )  # fmt: skip
    if mailing_ids:
        row = _rows(
            f"""
            SELECT count(*), count(*) FILTER (WHERE state = 'sent'), count(*) FILTER (WHERE state = 'failed'),
                count(*) FILTER (WHERE state = 'skipped'),
                count(*) FILTER (WHERE state IN ('queued', 'sending', 'deferred')),
                count(*) FILTER (WHERE bounce_kind <> ''), count(*) FILTER (WHERE bounce_kind = 'hard'),
                count(*) FILTER (WHERE {_SOFT}), count(*) FILTER (WHERE bounce_kind = 'block')
            FROM delivery_message WHERE mailing_id = ANY(%s)
            """,  # noqa: S608 - fixed SQL fragments
            [mailing_ids],
        )[0]
        keys = ("total", "sent", "failed", "skipped", "queued", "bounced", "hard", "soft", "block")
        figures.update(zip(keys, row, strict=True))
        row = _rows(
            f"""
            SELECT
                count(*) FILTER (WHERE e.kind = 'opened'),
                -- A click is proof of an open (its pixel may have been blocked): clickers are openers.
                count(DISTINCT e.message_id) FILTER (WHERE e.kind IN ('opened', 'clicked')),
                count(DISTINCT e.message_id) FILTER (WHERE e.kind IN ('opened', 'clicked') AND {HUMAN_SQL}),
                count(*) FILTER (WHERE e.kind = 'opened' AND NOT {HUMAN_SQL}),
                count(*) FILTER (WHERE e.kind = 'clicked'),
                count(DISTINCT e.message_id) FILTER (WHERE e.kind = 'clicked'),
                count(DISTINCT e.message_id) FILTER (WHERE e.kind = 'clicked' AND {HUMAN_SQL}),
                count(*) FILTER (WHERE e.kind = 'clicked' AND NOT {HUMAN_SQL}),
                count(DISTINCT e.message_id) FILTER (WHERE e.kind = 'unsubscribed'),
                count(DISTINCT e.message_id) FILTER (WHERE e.kind = 'complained')
            FROM delivery_messageevent e WHERE e.mailing_id = ANY(%s)
            """,  # noqa: S608 - fixed SQL fragments
            [mailing_ids],
        )[0]
        keys = (
            "opens", "unique_opens", "human_opens", "machine_opens", "clicks", "unique_clicks",
            "human_clicks", "machine_clicks", "unsubscribed", "complained",
        )  # fmt: skip
        figures.update(zip(keys, row, strict=True))
    attempted = figures["sent"] + figures["failed"]
    # Delivered: accepted by the relay and not bounced later (a 5xx at RCPT is failed and bounced).
    bounced_after_sent = max(0, figures["bounced"] - figures["failed"])
    figures["delivered"] = max(0, figures["sent"] - bounced_after_sent)
    figures["attempted"] = attempted
    rates = {
        "sent": rate(figures["sent"], figures["total"]),
        "failed": rate(figures["failed"], figures["total"]),
        "skipped": rate(figures["skipped"], figures["total"]),
        "delivered": rate(figures["delivered"], attempted),
    }
    for key in ("bounced", "hard", "soft", "block", "complained"):
        rates[key] = rate(figures[key], attempted)
    for key in ("unique_opens", "human_opens", "unique_clicks", "human_clicks", "unsubscribed"):
        rates[key] = rate(figures[key], figures["delivered"])
    figures["rates"] = rates
    return figures


def link_clicks(mailing_ids: list[int]) -> list[dict[str, Any]]:
    """Per link: clicks, unique (per message) and human ones; the 100 most clicked."""
    if not mailing_ids:
        return []
    rows = _rows(
        f"""
        SELECT e.data->>'url', count(*), count(DISTINCT e.message_id),
            count(DISTINCT e.message_id) FILTER (WHERE {HUMAN_SQL})
        FROM delivery_messageevent e WHERE e.mailing_id = ANY(%s) AND e.kind = 'clicked'
        GROUP BY 1 ORDER BY 2 DESC LIMIT 100
        """,  # noqa: S608
        [mailing_ids],
    )
    return [{"url": r[0] or "", "clicks": r[1], "unique": r[2], "human": r[3]} for r in rows]


def engagement_timeline(mailing_ids: list[int]) -> list[dict[str, Any]]:
    """Opens and clicks (human, unique per message and bucket) per hour, or per day after 3 days."""
    if not mailing_ids:
        return []
    span = _rows(
        "SELECT min(at), max(at) FROM delivery_messageevent WHERE mailing_id = ANY(%s) "
        "AND kind IN ('opened', 'clicked')",
        [mailing_ids],
    )[0]
    if span[0] is None:
        return []
    unit = "hour" if span[1] - span[0] <= dt.timedelta(days=3) else "day"
    rows = _rows(
        f"""
        SELECT date_trunc(%s, e.at) AS bucket,
            count(DISTINCT e.message_id) FILTER (WHERE e.kind = 'opened' AND {HUMAN_SQL}),
            count(DISTINCT e.message_id) FILTER (WHERE e.kind = 'clicked' AND {HUMAN_SQL}),
            count(*) FILTER (WHERE e.kind IN ('opened', 'clicked') AND NOT {HUMAN_SQL})
        FROM delivery_messageevent e
        WHERE e.mailing_id = ANY(%s) AND e.kind IN ('opened', 'clicked')
        GROUP BY 1 ORDER BY 1
        """,  # noqa: S608
        [unit, mailing_ids],
    )
    fmt = "%H:%M" if unit == "hour" else "%b %d"
    return [
        {
            "at": r[0],
            "label": timezone.localtime(r[0]).strftime(fmt),
            "opens": r[1],
            "clicks": r[2],
            "machine": r[3],
        }
        for r in rows
    ]


def results_by_domain(mailing_ids: list[int], *, limit: int = 10) -> list[dict[str, Any]]:
    """Per receiving domain (the largest first): sent, bounced, opened and clicked (human)."""
    if not mailing_ids:
        return []
    rows = _rows(
        f"""
        SELECT split_part(lower(m.email), '@', 2) AS domain, count(*),
            count(*) FILTER (WHERE m.state = 'sent'),
            count(*) FILTER (WHERE m.bounce_kind <> ''),
            count(*) FILTER (WHERE EXISTS (SELECT 1 FROM delivery_messageevent e
                WHERE e.message_id = m.id AND e.kind = 'opened' AND {HUMAN_SQL})),
            count(*) FILTER (WHERE EXISTS (SELECT 1 FROM delivery_messageevent e
                WHERE e.message_id = m.id AND e.kind = 'clicked' AND {HUMAN_SQL}))
        FROM delivery_message m WHERE m.mailing_id = ANY(%s)
        GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT %s
        """,  # noqa: S608
        [mailing_ids, limit],
    )
    return [
        {
            "domain": r[0],
            "total": r[1],
            "sent": r[2],
            "bounced": r[3],
            "opened": r[4],
            "clicked": r[5],
            "open_rate": rate(r[4], r[2]),
            "bounce_rate": rate(r[3], r[1]),
        }
        for r in rows
    ]


def _report_class(bounce_kind: str) -> str:
    return "soft" if bounce_kind == "unknown" else bounce_kind


def not_received(mailing_ids: list[int], *, limit: int | None = 200) -> list[dict[str, Any]]:
    """Recipients not reached, and why: skipped, failed, still deferred, or bounced after sending."""
    if not mailing_ids:
        return []
    sql = """
        SELECT m.email, m.state, m.smtp_code, m.smtp_reply, m.bounce_kind,
            (SELECT coalesce(e.data->>'diagnostic', e.data->>'reply') FROM delivery_messageevent e
             WHERE e.message_id = m.id AND e.kind = 'bounced' ORDER BY e.at DESC, e.id DESC LIMIT 1)
        FROM delivery_message m
        WHERE m.mailing_id = ANY(%s) AND (m.state IN ('failed', 'skipped', 'deferred') OR m.bounce_kind <> '')
        ORDER BY m.id
    """
    params: list[Any] = [mailing_ids]
    if limit is not None:
        sql += " LIMIT %s"
        params.append(limit)
    out = []
    for email, state, code, reply, kind, bounce_reply in _rows(sql, params):
        bounce = _report_class(kind)
        if bounce:
            why = f"{bounce} bounce: {bounce_reply or reply}"
        elif state == "skipped":
            why = reply or "skipped (unsubscribed, bounced or suppressed before sending)"
        elif state == "deferred":
            why = f"still retrying: {reply}"
        else:
            why = f"refused{f' ({code})' if code else ''}: {reply}"
        out.append({"email": email, "state": state, "bounce": bounce, "why": why.strip()})
    return out


def recipient_rows(mailing_ids: list[int]) -> Iterator[dict[str, Any]]:
    """Per Message, streamed in id order: who, state, sent at, reply, engagement (a human click counts
    as a human open too), bounce class, opt-outs, the contact's id."""
    if not mailing_ids:
        return
    sql = f"""
        SELECT m.mailing_id, m.email, m.state, m.sent_at, m.smtp_reply, m.bounce_kind,
            coalesce(bool_or(e.kind IN ('opened', 'clicked') AND {HUMAN_SQL}), false),
            coalesce(bool_or(e.kind = 'clicked' AND {HUMAN_SQL}), false),
            coalesce(bool_or(e.kind IN ('opened', 'clicked') AND NOT {HUMAN_SQL}), false),
            coalesce(bool_or(e.kind = 'unsubscribed'), false), coalesce(bool_or(e.kind = 'complained'), false),
            m.contact_id
        FROM delivery_message m LEFT JOIN delivery_messageevent e ON e.message_id = m.id
        WHERE m.mailing_id = ANY(%s)
        GROUP BY m.id ORDER BY m.id
    """  # noqa: S608
    keys = ("mailing_id", "email", "state", "sent_at", "reply", "bounce", "opened", "clicked", "machine")
    with connection.cursor() as cursor:
        cursor.execute(sql, [mailing_ids])
        while chunk := cursor.fetchmany(2000):
            for row in chunk:
                values = dict(zip((*keys, "unsubscribed", "complained", "contact_id"), row, strict=True))
                values["bounce"] = _report_class(values["bounce"])
                yield values


def marketing_health(since: dt.datetime) -> dict[str, int]:
    """Marketing Messages attempted since `since`, and the hard bounces and complaints among them."""
    row = _rows(
        """
        WITH recent AS (SELECT id, bounce_kind FROM delivery_message
            WHERE created_at >= %s AND state IN ('sent', 'failed') AND idempotency_key IS NULL)
        SELECT (SELECT count(*) FROM recent),
            (SELECT count(*) FROM recent WHERE bounce_kind = 'hard'),
            (SELECT count(DISTINCT e.message_id) FROM delivery_messageevent e
             WHERE e.at >= %s AND e.kind = 'complained' AND e.message_id IN (SELECT id FROM recent))
        """,
        [since, since],
    )[0]
    return {"attempted": row[0], "hard": row[1], "complaints": row[2]}


def sending_is_set_up() -> bool:
    """The home checklist's first step: a sending identity and an enabled relay exist."""
    return SendingIdentity.objects.exists() and Relay.objects.filter(enabled=True).exists()


def a_test_was_sent() -> bool:
    """The home checklist's "send yourself a test" step: any test Mailing that sent a message."""
    return Message.objects.filter(mailing__meta__test=True, state=MessageState.SENT).exists()


def mailing_choices(limit: int = 200) -> list[tuple[int, str]]:
    """Mailings that started sending, newest first, as (id, "name: subject (date)") for menus."""
    rows = (
        Mailing.objects.filter(started_at__isnull=False)
        .exclude(state=Mailing.State.STANDING)
        .exclude(meta__contains={"test": True})
        .order_by("-started_at", "-id")
        .values_list("id", "name", "subject", "started_at")[:limit]
    )
    return [
        (
            pk,
            f"{name}: {subject} ({started:%Y-%m-%d})"
            if name != subject
            else f"{subject} ({started:%Y-%m-%d})",
        )
        for pk, name, subject, started in rows
    ]
