"""Subscription changes as `subscribed` and `unsubscribed` webhooks.

A beat task reads subscriptions confirmed (or left) since its cursor, one step behind (the
`horizon` time saved on the previous run), so a change that commits a moment late is still seen.
Every way a person leaves a list (one-click, the preferences page, the API, a complaint) ends in
these rows, so `unsubscribed` comes from here and not from delivery's events, which would tell
it twice. Imports are left out on purpose: a million-row import must not become a million calls.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from celery import shared_task
from django.db.models import Q
from django.utils import timezone

from contacts.models import Subscription, SubscriptionStatus
from mailplatform.services import webhook_cursor_step, webhook_emit_many, webhook_subscribed_event_types

BATCH = 2000
# event type -> (cursor name, subscription status, the time field that moves with it)
STREAMS = {
    "subscribed": ("contacts.subscriptions", SubscriptionStatus.CONFIRMED, "confirmed_at"),
    "unsubscribed": ("contacts.unsubscriptions", SubscriptionStatus.UNSUBSCRIBED, "unsubscribed_at"),
}


def _forward(event: str, batch: int) -> int:
    cursor, status, field = STREAMS[event]

    def step(state: dict[str, Any]) -> tuple[dict[str, Any], int]:
        now = timezone.now()
        if "position" not in state:
            return {"position": now.isoformat(), "last_id": 0, "horizon": now.isoformat()}, 0
        position = dt.datetime.fromisoformat(state["position"])
        last_id = state.get("last_id", 0)
        horizon = dt.datetime.fromisoformat(state["horizon"])
        queued = 0
        rows: list[dict[str, Any]] = []
        # Keyset on (time, id): equal timestamps are neither lost nor repeated.
        if event in webhook_subscribed_event_types() and horizon > position:
            rows = list(
                Subscription.objects.filter(status=status, **{f"{field}__lte": horizon})
                .filter(Q(**{f"{field}__gt": position}) | Q(**{field: position, "id__gt": last_id}))
                .exclude(source="import")
                .order_by(field, "id")
                .values(
                    "id",
                    field,
                    "source",
                    "contact_id",
                    "contact__email",
                    "mailing_list_id",
                    "mailing_list__name",
                )[:batch]
            )
            payloads = [
                {
                    "contact_id": row["contact_id"],
                    "email": row["contact__email"],
                    "list_id": row["mailing_list_id"],
                    "list_name": row["mailing_list__name"],
                    "source": row["source"],
                    "at": row[field].isoformat(),
                }
                for row in rows
            ]
            if payloads:
                queued = webhook_emit_many(event, payloads)
        if len(rows) == batch:
            new_position, last_id = rows[-1][field], rows[-1]["id"]
        else:
            # Everything up to the horizon is done; rows exactly at it are remembered by id.
            new_position = horizon
            last_id = max((r["id"] for r in rows if r[field] == horizon), default=0)
        return {"position": new_position.isoformat(), "last_id": last_id, "horizon": now.isoformat()}, queued

    return webhook_cursor_step(cursor, step)


def forward_subscriptions(batch: int = BATCH) -> int:
    return _forward("subscribed", batch)


def forward_unsubscriptions(batch: int = BATCH) -> int:
    return _forward("unsubscribed", batch)


@shared_task(name="contacts.webhook_tasks.forward_subscriptions", ignore_result=True)
def forward_subscriptions_task() -> int:
    return forward_subscriptions() + forward_unsubscriptions()
