"""Celery tasks: thin, they call the scheduler and the triggers."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="automations.tasks.tick", ignore_result=True)
def tick(now: str | None = None) -> dict[str, int]:
    """Advance every due run. `now` (ISO 8601) moves the scheduler's clock: the benchmark's way to
    let days pass without waiting for them."""
    import datetime as dt

    from automations.scheduler import tick as run_tick

    return run_tick(dt.datetime.fromisoformat(now) if now else None)


@shared_task(name="automations.tasks.triggers", ignore_result=True)
def triggers() -> dict[str, int]:
    from automations.triggers import scheduled_triggers

    return scheduled_triggers()


@shared_task(
    name="automations.tasks.call_webhook",
    ignore_result=True,
    autoretry_for=(OSError,),
    retry_backoff=30,
    max_retries=5,
)
def call_webhook(run_id: int, step_id: int) -> None:
    from automations.services import webhook_call

    webhook_call(run_id, step_id)
