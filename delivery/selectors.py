"""Reads of the delivery app: progress, relay usage, the ledger, a contact's timeline."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Count, Max, Q, QuerySet
from django.db.models.functions import Lower
from django.utils import timezone

from delivery import ratelimit
from delivery.models import HoldReason, Mailing, Message, MessageEvent, MessageState, Relay, SendingIdentity

STATES = [s.value for s in MessageState]


def mailing_progress(mailing_id: int) -> dict[str, Any]:
    """Counts per state, the recent rate and the time left; total counts every Message.

    Held Messages (`deferred`: by the relay, a sending window, a throttle, warm-up) count by
    reason in `held`; the estimate is never earlier than the last hold's not-before time.
    """
    counts = dict.fromkeys(STATES, 0)
    for row in Message.objects.filter(mailing_id=mailing_id).values("state").annotate(n=Count("id")):
        counts[row["state"]] = row["n"]
    total = sum(counts.values())
    rate = ratelimit.recent_rate(mailing_id)
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
    eta = int(remaining / rate) if rate > 0 and remaining else None
    if held_until is not None:
        eta = max(eta or 0, int((held_until - timezone.now()).total_seconds())) or eta
    return {
        "total": total,
        **counts,
        "done": done,
        "percent": int(done * 100 / total) if total else 0,
        "rate_per_s": round(rate, 1),
        "eta_s": eta,
        "held": held,
        "held_until": held_until,
    }


def mailings_page(*, limit: int = 50) -> QuerySet[Mailing]:
    # contains, not meta__test=True: a missing key would make the exclusion NULL and drop the row.
    return Mailing.objects.exclude(meta__contains={"test": True}).order_by("-id")[:limit]


def mailing_event_counts(mailing_id: int) -> dict[str, int]:
    counts = dict.fromkeys(MessageEvent.Kind.values, 0)
    for row in MessageEvent.objects.filter(mailing_id=mailing_id).values("kind").annotate(n=Count("id")):
        counts[row["kind"]] = row["n"]
    return counts


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
