"""Confirmed subscriptions as `subscribed` webhooks (forms, the dashboard and the API; not imports).

A beat task reads subscriptions confirmed since its cursor, one step behind (the `horizon` time
saved on the previous run), so a confirmation that commits a moment late is still seen. Imports
are left out on purpose: a million-row import must not become a million webhook calls.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from celery import shared_task
from django.db.models import Q
from django.utils import timezone

from contacts.models import Subscription, SubscriptionStatus
from mailplatform.services import webhook_cursor_step, webhook_emit_many, webhook_subscribed_event_types

CURSOR = "contacts.subscriptions"
BATCH = 2000


def forward_subscriptions(batch: int = BATCH) -> int:
    def step(state: dict[str, Any]) -> tuple[dict[str, Any], int]:
        now = timezone.now()
        if "position" not in state:
            return {"position": now.isoformat(), "last_id": 0, "horizon": now.isoformat()}, 0
        position = dt.datetime.fromisoformat(state["position"])
        last_id = state.get("last_id", 0)
        horizon = dt.datetime.fromisoformat(state["horizon"])
        queued = 0
        rows: list[dict[str, Any]] = []
        # Keyset on (confirmed_at, id): equal timestamps are neither lost nor repeated.
        if "subscribed" in webhook_subscribed_event_types() and horizon > position:
            rows = list(
                Subscription.objects.filter(status=SubscriptionStatus.CONFIRMED, confirmed_at__lte=horizon)
                .filter(Q(confirmed_at__gt=position) | Q(confirmed_at=position, id__gt=last_id))
                .exclude(source="import")
                .order_by("confirmed_at", "id")
                .values(
                    "id",
                    "confirmed_at",
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
                    "at": row["confirmed_at"].isoformat(),
                }
                for row in rows
            ]
            if payloads:
                queued = webhook_emit_many("subscribed", payloads)
        if len(rows) == batch:
            new_position, last_id = rows[-1]["confirmed_at"], rows[-1]["id"]
        else:
            # Everything up to the horizon is done; rows exactly at it are remembered by id.
            new_position = horizon
            last_id = max((r["id"] for r in rows if r["confirmed_at"] == horizon), default=0)
        return {"position": new_position.isoformat(), "last_id": last_id, "horizon": now.isoformat()}, queued

    return webhook_cursor_step(CURSOR, step)


@shared_task(name="contacts.webhook_tasks.forward_subscriptions", ignore_result=True)
def forward_subscriptions_task() -> int:
    return forward_subscriptions()
