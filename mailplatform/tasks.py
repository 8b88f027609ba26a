"""The platform's own Celery tasks. Thin: they take ids and call services."""

from __future__ import annotations

from celery import shared_task

from mailplatform import services


@shared_task(name="mailplatform.tasks.webhook_deliver", ignore_result=True)
def webhook_deliver(delivery_id: int) -> None:
    delay = services.webhook_attempt(delivery_id)
    if delay is not None:
        # The retry state lives on the row (attempts, next_attempt_at); Celery only carries the wake-up.
        webhook_deliver.apply_async((delivery_id,), countdown=delay)


@shared_task(name="mailplatform.tasks.webhook_sweep", ignore_result=True)
def webhook_sweep() -> int:
    """Re-enqueue deliveries whose wake-up was lost (a worker or broker restart); beat runs it."""
    return services.webhook_requeue_due()
