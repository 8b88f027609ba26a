"""A tick that finds another tick's lock (or a killed worker's, not yet lapsed) comes back a second
later instead of dropping the kick: where no beat runs, a dropped kick left a new run waiting for ever."""

from __future__ import annotations

import os
import time

import pytest

from tests.conftest import start_celery_worker, stop_processes

pytestmark = pytest.mark.slow


def test_a_tick_that_finds_the_lock_held_comes_back_and_advances_the_run(transactional_db, make_template):
    from automations.selectors import ledger_rows_per_run_and_step
    from automations.services import automation_create, automation_set_status, enrol, step_add
    from contacts.models import Contact
    from mailplatform.celery import app
    from mailplatform.redis_cache import redis_client, redis_key

    automation = automation_create(name="One mail", trigger="manual")
    step_add(automation.pk, kind="send", template_id=make_template().pk)
    automation_set_status(automation.pk, "active")
    contact = Contact.objects.create(email="late@example.org")
    enrol(automation.pk, [contact.pk])

    queue = f"automations-lock-test-{os.getpid()}-{time.monotonic_ns()}"
    worker = start_celery_worker(queues=queue, env={"AUTOMATIONS_QUEUE": queue}, label="ticker")
    try:
        # A worker killed mid-tick left its lock behind for two more seconds.
        redis_client().set(redis_key("automations", "tick-lock"), "a-killed-worker", px=2000)
        app.send_task("automations.tasks.tick", queue=queue)  # the kick that finds it held
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and ledger_rows_per_run_and_step(automation.pk)[0] < 1:
            time.sleep(0.1)
    finally:
        stop_processes([worker])
    assert ledger_rows_per_run_and_step(automation.pk) == (1, 1)


def test_a_kick_within_a_second_of_another_still_brings_a_tick(
    transactional_db, make_template, monkeypatch, celery_worker_process
):
    """The journey's lost run: activating kicked a tick (which found nobody), and the confirmation
    enrolled the visitor less than a second later, when the kick throttle dropped kicks."""
    from automations.selectors import ledger_rows_per_run_and_step
    from automations.services import automation_create, automation_set_status, enrol, step_add
    from contacts.models import Contact
    from mailplatform.redis_cache import redis_client, redis_key

    automation = automation_create(name="One mail", trigger="manual")
    step_add(automation.pk, kind="send", template_id=make_template().pk)
    automation_set_status(automation.pk, "active")
    contact = Contact.objects.create(email="quick@example.org")

    redis_client().set(redis_key("automations", "kick", "now"), 1, px=1000)  # the activation's kick, just now
    monkeypatch.undo()  # this test is about the real kick (the directory's autouse fixture stubs it)
    enrol(automation.pk, [contact.pk])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and ledger_rows_per_run_and_step(automation.pk)[0] < 1:
        time.sleep(0.1)
    assert ledger_rows_per_run_and_step(automation.pk) == (1, 1)
