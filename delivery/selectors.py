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
from mailplatform.sqlarrays import text_array

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
    warmup_estimate = None
    if held.get(HoldReason.WARMUP) and mailing is not None:
        # Held by a warm-up cap: the schedule says on which day the last of it should go.
        from delivery import warmup

        warmup_estimate = warmup.estimate(mailing, remaining)
        eta = None
    elif held_until is not None and not paused:
        eta = max(eta or 0, int((held_until - timezone.now()).total_seconds())) or eta
    window = None
    if mailing is not None:
        from delivery import windows

        send_window = windows.of(Mailing.objects.filter(pk=mailing_id).values_list("meta", flat=True).first())
        if send_window is not None:
            next_at = None
            if held.get(HoldReason.WINDOW):
                next_at = (
                    Message.objects.filter(
                        mailing_id=mailing_id, state=MessageState.DEFERRED, hold_reason=HoldReason.WINDOW
                    )
                    .order_by("next_attempt_at")
                    .values_list("next_attempt_at", flat=True)
                    .first()
                )
            window = {
                "describe": send_window.describe(),
                "held": held.get(HoldReason.WINDOW, 0),
                "next_at": next_at,
            }
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
        "window": window,
        "held": held,
        "held_until": held_until,
        "paused": paused,
        "after_pause": after_pause,
        "warmup": warmup_estimate,
        "group_pauses": group_pauses([mailing_id]),
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
_REPORT_CLASS = {"hard": "hard", "soft": "soft", "unknown": "soft", "block": "block"}


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


def guard_stats_by_group(mailing_ids: list[int]) -> dict[str, dict[str, int]]:
    """Per receiving domain group (delivery.domains): attempted messages, hard bounces and
    complaints among them, over everything these Mailings attempted so far."""
    from delivery import domains

    if not mailing_ids:
        return {}
    rows = _rows(
        """
        SELECT split_part(lower(m.email), '@', 2), count(*), count(*) FILTER (WHERE m.bounce_kind = 'hard'),
            count(*) FILTER (WHERE EXISTS (SELECT 1 FROM delivery_messageevent e
                WHERE e.message_id = m.id AND e.kind = 'complained'))
        FROM delivery_message m
        WHERE m.mailing_id = ANY(%s) AND m.state IN ('sent', 'failed')
        GROUP BY 1
        """,
        [mailing_ids],
    )
    out: dict[str, dict[str, int]] = {}
    for domain, attempted, hard, complaints in rows:
        figures = out.setdefault(
            domains.group_of(f"x@{domain}"), {"attempted": 0, "hard": 0, "complaints": 0}
        )
        figures["attempted"] += attempted
        figures["hard"] += hard
        figures["complaints"] += complaints
    return out


def group_pauses(mailing_ids: list[int]) -> list[dict[str, Any]]:
    """Receiving domain groups the guard paused for these Mailings: still paused first."""
    from delivery.models import GroupPause

    rows = GroupPause.objects.filter(mailing_id__in=list(mailing_ids)).order_by("resumed_at", "group")
    out: dict[str, dict[str, Any]] = {}
    for pause in rows:
        entry = out.setdefault(
            pause.group,
            {"group": pause.group, "reason": pause.reason, "paused_at": pause.paused_at, "resumed_at": None,
             "mailing_ids": [], "paused": False},
        )  # fmt: skip
        entry["mailing_ids"].append(pause.mailing_id)
        if pause.resumed_at is None:
            entry["paused"] = True
        else:
            entry["resumed_at"] = pause.resumed_at
    return list(out.values())


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
        figures.update(_message_figures(mailing_ids))
        # Only the kinds counted here, through the report index (mailing, kind): a campaign's
        # 'sent' events (one per Message, most of its events) are not read.
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
            FROM delivery_messageevent e
            WHERE e.mailing_id = ANY(%s) AND e.kind IN ('opened', 'clicked', 'unsubscribed', 'complained')
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


def _message_figures(mailing_ids: list[int]) -> dict[str, int]:
    """The Messages' counts by state and bounce kind: one group per pair, summed here. The groups
    come from delivery_msg_outcome (mailing, state) INCLUDE (bounce_kind) alone once a finished
    mailing's rows are all-visible, and nine FILTERed counts per row cost more than the grouping."""
    counts = dict.fromkeys(
        ("total", "sent", "failed", "skipped", "queued", "bounced", "hard", "soft", "block"), 0
    )
    rows = _rows(
        "SELECT state, bounce_kind, count(*) FROM delivery_message WHERE mailing_id = ANY(%s) GROUP BY 1, 2",
        [mailing_ids],
    )
    for state, bounce_kind, count in rows:
        counts["total"] += count
        if state in ("sent", "failed", "skipped"):
            counts[state] += count
        elif state in ("queued", "sending", "deferred"):
            counts["queued"] += count
        if bounce_kind:
            counts["bounced"] += count
            if bounce_kind in _REPORT_CLASS:
                counts[_REPORT_CLASS[bounce_kind]] += count
    return counts


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


# The timeline's resolution by time since the send began: minute by minute for the first hours
# (a short campaign's opens come then), hourly for the next days, daily after.
TIMELINE_MINUTES_FOR = dt.timedelta(hours=2)
TIMELINE_HOURS_FOR = dt.timedelta(days=3)


def engagement_timeline(mailing_ids: list[int]) -> list[dict[str, Any]]:
    """Opens and clicks (human, unique per message and bucket) over time: per minute for the first
    two hours after the send began, then per hour up to three days, then per day. Each point says
    its `unit`, and its label is what a person reads (14:05, Dec 06 15:00, Dec 09)."""
    if not mailing_ids:
        return []
    # First and last hit per (mailing, kind) from the report index's ends: a plain min(at) let the
    # planner walk the whole `at` index from the oldest event of any mailing (0.5 s at a million).
    span = _rows(
        """
        SELECT least((SELECT min(started_at) FROM delivery_mailing WHERE id = ANY(%s)), min(s.first)),
            max(s.last)
        FROM unnest(%s::bigint[]) AS g(id) CROSS JOIN unnest(ARRAY['opened', 'clicked']) AS k(kind)
        CROSS JOIN LATERAL (
            SELECT (SELECT e.at FROM delivery_messageevent e WHERE e.mailing_id = g.id AND e.kind = k.kind
                    ORDER BY e.at LIMIT 1) AS first,
                (SELECT e.at FROM delivery_messageevent e WHERE e.mailing_id = g.id AND e.kind = k.kind
                 ORDER BY e.at DESC LIMIT 1) AS last
        ) s
        """,
        [mailing_ids, mailing_ids],
    )[0]
    if span[0] is None:
        return []
    start = span[0]
    minutes_until, hours_until = start + TIMELINE_MINUTES_FOR, start + TIMELINE_HOURS_FOR
    rows = _rows(
        f"""
        SELECT CASE WHEN e.at < %s THEN date_trunc('minute', e.at)
                    WHEN e.at < %s THEN date_trunc('hour', e.at)
                    ELSE date_trunc('day', e.at) END AS bucket,
            count(DISTINCT e.message_id) FILTER (WHERE e.kind = 'opened' AND {HUMAN_SQL}),
            count(DISTINCT e.message_id) FILTER (WHERE e.kind = 'clicked' AND {HUMAN_SQL}),
            count(*) FILTER (WHERE e.kind IN ('opened', 'clicked') AND NOT {HUMAN_SQL})
        FROM delivery_messageevent e
        WHERE e.mailing_id = ANY(%s) AND e.kind IN ('opened', 'clicked')
        GROUP BY 1 ORDER BY 1
        """,  # noqa: S608
        [minutes_until, hours_until, mailing_ids],
    )
    several_days = timezone.localtime(span[1]).date() != timezone.localtime(start).date()
    points = []
    for at, opens, clicks, machine in rows:
        unit = "minute" if at < minutes_until else "hour" if at < hours_until else "day"
        local = timezone.localtime(at)
        if unit == "day":
            label = local.strftime("%b %d")
        elif several_days:
            label = local.strftime("%b %d %H:%M")
        else:
            label = local.strftime("%H:%M")
        points.append(
            {"at": at, "unit": unit, "label": label, "opens": opens, "clicks": clicks, "machine": machine}
        )
    return points


def results_by_domain(mailing_ids: list[int], *, limit: int = 10) -> list[dict[str, Any]]:
    """Per receiving domain (the largest first): sent, bounced, opened and clicked (human)."""
    if not mailing_ids:
        return []
    # The Mailings' own human opens and clicks, one row per Message, read through the report index
    # (mailing, kind): as EXISTS per Message the planner hashed every opened event of every mailing
    # (1.4 s at a million Messages, growing with the table, not the campaign).
    rows = _rows(
        f"""
        WITH hits AS (
            SELECT e.message_id, bool_or(e.kind = 'opened') AS opened, bool_or(e.kind = 'clicked') AS clicked
            FROM delivery_messageevent e
            WHERE e.mailing_id = ANY(%s) AND e.kind IN ('opened', 'clicked') AND {HUMAN_SQL}
            GROUP BY e.message_id
        ), by_domain AS (
            -- Grouped by the domain as written first, lowered once per distinct spelling after:
            -- lower() per Message was a fifth of the query (a locale-aware conversion per row).
            SELECT split_part(m.email, '@', 2) AS domain, count(*) AS total,
                count(*) FILTER (WHERE m.state = 'sent') AS sent,
                count(*) FILTER (WHERE m.bounce_kind <> '') AS bounced,
                count(*) FILTER (WHERE h.opened) AS opened,
                count(*) FILTER (WHERE h.clicked) AS clicked
            FROM delivery_message m LEFT JOIN hits h ON h.message_id = m.id
            WHERE m.mailing_id = ANY(%s)
            GROUP BY 1
        )
        SELECT lower(domain), sum(total)::bigint, sum(sent)::bigint, sum(bounced)::bigint,
            sum(opened)::bigint, sum(clicked)::bigint
        FROM by_domain GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT %s
        """,  # noqa: S608
        [mailing_ids, mailing_ids, limit],
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
            m.contact_id,
            coalesce(bool_or(e.kind IN ('opened', 'clicked')), false), coalesce(bool_or(e.kind = 'clicked'), false),
            coalesce(bool_or(e.kind = 'opened' AND NOT {HUMAN_SQL}), false),
            coalesce(bool_or(e.kind = 'clicked' AND NOT {HUMAN_SQL}), false)
        FROM delivery_message m LEFT JOIN delivery_messageevent e ON e.message_id = m.id
        WHERE m.mailing_id = ANY(%s)
        GROUP BY m.id ORDER BY m.id
    """  # noqa: S608
    keys = ("mailing_id", "email", "state", "sent_at", "reply", "bounce", "opened", "clicked", "machine")
    with connection.cursor() as cursor:
        cursor.execute(sql, [mailing_ids])
        while chunk := cursor.fetchmany(2000):
            for row in chunk:
                more = (
                    "unsubscribed",
                    "complained",
                    "contact_id",
                    "any_open",
                    "any_click",
                    "machine_open",
                    "machine_click",
                )
                values = dict(zip((*keys, *more), row, strict=True))
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


# --- what contacts did with a send group's mail, for segment rules (offered through lookups) ---

_ACTIVITY_TESTS = {
    "received": ("m.state = 'sent'", ""),
    "delivered": ("m.state = 'sent' AND m.bounce_kind = ''", ""),
    "opened": ("", f"e.kind IN ('opened', 'clicked') AND {HUMAN_SQL}"),
    "clicked": ("", f"e.kind = 'clicked' AND {HUMAN_SQL}"),
    "bounced": ("m.bounce_kind <> ''", ""),
    "unsubscribed": ("", "e.kind = 'unsubscribed'"),
    "complained": ("", "e.kind = 'complained'"),
}


def mailing_activity_sql(op: str, send_group: str) -> tuple[str, list]:
    """A condition over contacts (alias c): the contact did `op` with the send group's mail.

    Every test is an EXISTS over the ledger by (mailing, contact); `not_opened` is "was sent and
    did not open" (what a resend to non-openers wants)."""
    if op == "not_opened":
        sent, _ = mailing_activity_sql("received", send_group)
        opened, _ = mailing_activity_sql("opened", send_group)
        return f"({sent} AND NOT {opened})", [send_group, send_group]
    message_test, event_test = _ACTIVITY_TESTS[op]
    # Fixed SQL fragments from _ACTIVITY_TESTS; the send group is a parameter.
    join = " JOIN delivery_messageevent e ON e.message_id = m.id" if event_test else ""
    tests = "".join(f" AND {test}" for test in (message_test, event_test) if test)
    sql = (
        "EXISTS (SELECT 1 FROM delivery_message m JOIN delivery_mailing g ON g.id = m.mailing_id"  # noqa: S608
        f"{join} WHERE m.contact_id = c.id AND g.send_group = %s{tests})"
    )
    return sql, [send_group]


def mailing_groups(limit: int = 100) -> list[tuple[str, str]]:
    """Recent send groups (a campaign's Mailings share one) with a name, newest first."""
    seen: dict[str, str] = {}
    rows = (
        Mailing.objects.exclude(meta__contains={"test": True})
        .exclude(state=Mailing.State.STANDING)
        .order_by("-id")
        .values_list("send_group", "name")[: limit * 3]
    )
    for group, name in rows:
        if group and group not in seen:
            seen[group] = name
    return list(seen.items())[:limit]


def keys_engaged(keys: Sequence[str], *, clicked: bool) -> set[str]:
    """Of these idempotency keys, those whose Message a person opened (or clicked, which proves an
    open) or, with `clicked`, clicked; machine hits (privacy proxies, link scanners) do not count."""
    if not keys:
        return set()
    kinds = ["clicked"] if clicked else ["opened", "clicked"]
    rows = _rows(
        f"""
        SELECT m.idempotency_key FROM delivery_message m
        WHERE m.idempotency_key = ANY(%s::text[]) AND EXISTS (
            SELECT 1 FROM delivery_messageevent e
            WHERE e.message_id = m.id AND e.kind = ANY(%s) AND {HUMAN_SQL}
        )
        """,  # noqa: S608 - fixed SQL fragments
        [text_array(keys), kinds],  # thousands of keys: one array literal (mailplatform.sqlarrays)
    )
    return {row[0] for row in rows}


def human_engagement_since(
    after_id: int, *, meta_key: str, meta_value: int, clicked: bool, limit: int = 5000
) -> list[tuple[int, int]]:
    """(event id, contact id) of human opens (or clicks) after event `after_id` on Mailings whose
    meta names `meta_key` = `meta_value` (e.g. campaign_id = 3), oldest first: a watermark reader."""
    kinds = ["clicked"] if clicked else ["opened", "clicked"]
    return _rows(
        f"""
        SELECT e.id, m.contact_id FROM delivery_messageevent e
        JOIN delivery_message m ON m.id = e.message_id
        WHERE e.id > %s AND e.kind = ANY(%s) AND {HUMAN_SQL} AND m.contact_id IS NOT NULL
          AND e.mailing_id IN (SELECT g.id FROM delivery_mailing g WHERE g.meta->>%s = %s)
        ORDER BY e.id LIMIT %s
        """,  # noqa: S608 - fixed SQL fragments
        [after_id, kinds, meta_key, str(meta_value), limit],
    )


def ledger_key_counts(mailing_ids: Sequence[int]) -> tuple[int, int]:
    """(Messages of these Mailings, distinct idempotency keys among them): equal when no key was
    queued twice."""
    if not mailing_ids:
        return 0, 0
    row = _rows(
        "SELECT count(*), count(DISTINCT idempotency_key) FROM delivery_message WHERE mailing_id = ANY(%s)",
        [list(mailing_ids)],
    )[0]
    return int(row[0]), int(row[1])
