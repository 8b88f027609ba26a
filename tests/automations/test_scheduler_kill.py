"""The scheduler's worker is killed with SIGKILL in the middle of a tick: its open batch rolls back,
a new worker takes over, and the ledger holds exactly one row per run and send step (no step
enqueued twice); every contact gets each mail once at the sink (the killed worker sent nothing,
so delivery's duplicate window is not even used)."""

from __future__ import annotations

import collections
import os
import signal
import time

import pytest

from tests.conftest import start_celery_worker, stop_processes
from tests.delivery.smtp_servers import RecordingHandler, SmtpServer

pytestmark = pytest.mark.slow

RUNS = 3000


def _ledger(automation_id: int) -> tuple[int, int]:
    from automations.selectors import ledger_rows_per_run_and_step

    return ledger_rows_per_run_and_step(automation_id)


def test_sigkill_during_a_tick_enqueues_no_step_twice(transactional_db, make_template):
    from automations.models import Run
    from automations.services import automation_create, automation_set_status, enrol, step_add
    from contacts.models import Contact
    from delivery.relays import relay_save

    handler = RecordingHandler()
    with SmtpServer(handler) as server:
        relay_save(name="sink", host="127.0.0.1", port=server.port, security="none", max_connections=2)
        automation = automation_create(name="Two mails", trigger="manual")
        step_add(
            automation.pk, kind="send", template_id=make_template("A", "A for {{ contact.first_name }}").pk
        )
        step_add(
            automation.pk, kind="send", template_id=make_template("B", "B for {{ contact.first_name }}").pk
        )
        automation_set_status(automation.pk, "active")
        Contact.objects.bulk_create(
            Contact(email=f"k{i}@example.org", first_name=f"K{i}") for i in range(RUNS)
        )
        enrol(automation.pk, Contact.objects.values_list("id", flat=True))

        # A worker that only schedules (batches of 2: a tick is thousands of transactions), killed mid-tick.
        queue = f"automations-kill-test-{os.getpid()}-{time.monotonic_ns()}"  # no task of an earlier run
        env = {"AUTOMATIONS_QUEUE": queue, "AUTOMATIONS_BATCH_SIZE": "2"}
        scheduler = start_celery_worker(queues=queue, env=env, label="scheduler")
        try:
            from mailplatform.celery import app

            app.send_task("automations.tasks.tick", queue=queue)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                rows, _ = _ledger(automation.pk)
                if rows >= 1:
                    break
                time.sleep(0.05)
            scheduler.send_signal(signal.SIGKILL)
            scheduler.wait(10)
        finally:
            stop_processes([scheduler])
        rows_at_kill, keys_at_kill = _ledger(automation.pk)
        assert 0 < rows_at_kill < 2 * RUNS, "the kill did not land in the middle of the tick"
        assert rows_at_kill == keys_at_kill

        # A fresh worker schedules and sends the rest (and whatever the dead one had queued).
        worker = start_celery_worker(queues=f"{queue},sending", env={**env, "AUTOMATIONS_BATCH_SIZE": "500"})
        try:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                if not Run.objects.filter(automation=automation, status="active").exists():
                    sent = len(handler.recipients())
                    if sent >= 2 * RUNS:
                        break
                app.send_task("automations.tasks.tick", queue=queue)  # as beat would, every few seconds
                time.sleep(2)
        finally:
            stop_processes([worker])
        rows, keys = _ledger(automation.pk)
        assert rows == keys == 2 * RUNS  # one ledger row per run and step
        assert set(Run.objects.filter(automation=automation).values_list("status", flat=True)) == {"done"}
        from delivery.models import Message

        recovered = Message.objects.filter(
            idempotency_key__startswith="automation:", recovered_at__isnull=False
        ).count()
        per_address = collections.Counter(handler.recipients())
        assert len(per_address) == RUNS and all(count >= 2 for count in per_address.values())
        duplicates = sum(count - 2 for count in per_address.values())
        assert duplicates <= recovered  # within delivery's documented window (recovered leases)
