"""Message events (sent, bounced, complained, opened, clicked) as outbound webhooks.

A beat task reads the event table after a cursor, so every way an event is written (the engine's
batches, the bounce classifier, tracking endpoints) is forwarded without each caller knowing about
webhooks. It works one step behind the newest id (the `horizon` saved on the previous run): an
event whose transaction commits a few seconds after a later id is still forwarded.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from delivery.models import MessageEvent
from mailplatform.services import webhook_cursor_step, webhook_emit_many, webhook_subscribed_event_types

CURSOR = "delivery.message_events"
BATCH = 2000
# Message event kind -> webhook event type ("sent" means the relay accepted it: delivered to the relay).
KIND_TO_EVENT = {
    MessageEvent.Kind.SENT: "delivered",
    MessageEvent.Kind.BOUNCED: "bounced",
    MessageEvent.Kind.COMPLAINED: "complained",
    MessageEvent.Kind.OPENED: "opened",
    MessageEvent.Kind.CLICKED: "clicked",
    # Not UNSUBSCRIBED: contacts.webhook_tasks reports every unsubscribe, one-click ones included.
}


def _payload(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "message_id": row["message_id"],
        "mailing_id": row["mailing_id"],
        "contact_id": row["message__contact_id"],
        "email": row["message__email"],
        "at": row["at"].isoformat(),
        "details": row["data"],
    }


def forward_message_events(batch: int = BATCH) -> int:
    """Queue webhook deliveries for the next events; returns how many deliveries were queued."""

    def step(state: dict[str, Any]) -> tuple[dict[str, Any], int]:
        newest = MessageEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
        if "position" not in state:
            return {"position": newest, "horizon": newest}, 0  # start now; history is not replayed
        position, horizon = state["position"], state["horizon"]
        wanted = webhook_subscribed_event_types()
        kinds = [kind for kind, event in KIND_TO_EVENT.items() if event in wanted]
        queued = 0
        if kinds and horizon > position:
            rows = list(
                MessageEvent.objects.filter(id__gt=position, id__lte=horizon, kind__in=kinds)
                .order_by("id")
                .values(
                    "id",
                    "kind",
                    "at",
                    "data",
                    "message_id",
                    "mailing_id",
                    "message__contact_id",
                    "message__email",
                )[:batch]
            )
            by_kind: dict[str, list[dict[str, Any]]] = {}
            for row in rows:
                by_kind.setdefault(KIND_TO_EVENT[row["kind"]], []).append(_payload(row))
            for event, payloads in by_kind.items():
                queued += webhook_emit_many(event, payloads)
            position = rows[-1]["id"] if len(rows) == batch else horizon
        else:
            position = horizon
        return {"position": position, "horizon": newest if position >= horizon else horizon}, queued

    return webhook_cursor_step(CURSOR, step)


@shared_task(name="delivery.webhook_tasks.forward_message_events", ignore_result=True)
def forward_message_events_task() -> int:
    return forward_message_events()
