"""Celery tasks: thin, take ids, call the engine, the runners or the ledger. Routed by name
(settings.CELERY_TASK_ROUTES): send_* go to the `sending` queue."""

from __future__ import annotations

import logging

from celery import shared_task

log = logging.getLogger(__name__)


# Acknowledged when done, not when received: a worker lost mid-run leaves the task to the broker for
# another worker (the ledger's leases make a second run send nothing twice).
@shared_task(name="delivery.tasks.send_mailing", ignore_result=True, acks_late=True, bind=True)
def send_mailing(self, mailing_id: int, token: str) -> str:
    from delivery import engine, runners
    from mailplatform import logs

    with logs.bind(mailing=mailing_id):
        result = engine.run(mailing_id, token, hostname=self.request.hostname)
        if result.reason in ("time", engine.STOPPING):
            # Hand over to a fresh task: other mailings queued behind this one get a turn, and a worker
            # that is stopping (SIGTERM) leaves the rest of the mailing to another worker.
            runners.handover(mailing_id, token)
        log.info("mailing %s: runner stopped (%s) after %d sent", mailing_id, result.reason, result.sent)
    return result.reason


@shared_task(name="delivery.tasks.send_watchdog", ignore_result=True)
def send_watchdog() -> dict[str, int]:
    from delivery import engine

    return engine.watchdog()


@shared_task(name="delivery.tasks.ledger_prune", ignore_result=True)
def ledger_prune() -> int:
    from delivery import ledger

    return ledger.prune()


@shared_task(name="delivery.tasks.tracking_flush", ignore_result=True)
def tracking_flush() -> int:
    from delivery.tracking import tracking_flush as flush

    return flush()
