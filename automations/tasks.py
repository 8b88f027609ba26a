"""Celery tasks: thin, they call the scheduler and the triggers."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="automations.tasks.tick", ignore_result=True)
def tick(now: str | None = None) -> dict[str, int]:
    """Advance every due run. `now` (ISO 8601) moves the scheduler's clock: the benchmark's way to
    let days pass without waiting for them."""
    import datetime as dt
    import secrets

    from automations.scheduler import tick as run_tick
    from mailplatform.redis_cache import redis_client, redis_key

    # One scheduler task at a time: beat and kicks queue more while one runs, and each would hold a
    # worker the sending needs. The lock lives 15 s and is renewed after every batch, so a killed
    # worker's lock lapses quickly; correctness never rests on it (SKIP LOCKED and the ledger keys do).
    client, key, token = redis_client(), redis_key("automations", "tick-lock"), secrets.token_hex(8)
    if not client.set(key, token, nx=True, px=15_000):
        # Another tick runs (or a killed worker's lock has not lapsed yet), and it may have claimed its
        # batch before this run joined: come back a second later rather than wait for beat's next
        # round, or for ever where no beat runs.
        tick_soon(now, at_once=False)
        return {"skipped": 1}

    def renew() -> bool:
        if client.get(key) not in (token, token.encode()):
            return False
        client.pexpire(key, 15_000)
        return True

    try:
        return run_tick(dt.datetime.fromisoformat(now) if now else None, after_batch=renew)
    finally:
        if client.get(key) in (token, token.encode()):
            client.delete(key)


def tick_soon(now: str | None = None, *, at_once: bool = True) -> None:
    """Queue a tick, at most one now and one a second later per second however many ask (a contact
    joining, an automation activated, a tick finding the lock held), and never none: a request that
    finds a tick just queued (Redis keys decide) is covered by the one a second later, which starts
    after it. Dropping it instead left a run that joined within a second of another waiting for ever
    where no beat runs."""
    from mailplatform.redis_cache import redis_client, redis_key

    client, clock = redis_client(), now or "now"  # a moved clock's ticks are counted on their own
    if at_once and client.set(redis_key("automations", "kick", clock), 1, nx=True, px=1000):
        tick.apply_async(kwargs={"now": now})
    # The key lapses before the queued tick is due (900 ms < 1 s), so whoever asks after the key has
    # gone is sure to find that tick still ahead of it or to queue the next.
    elif client.set(redis_key("automations", "tick-later", clock), 1, nx=True, px=900):
        tick.apply_async(kwargs={"now": now}, countdown=1)


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
