"""LOG_FORMAT=json in a real worker: task logs carry the task's ids and the web request that queued it."""

from __future__ import annotations

import json
import time

import pytest

from mailplatform import logs


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_task_logs_carry_the_task_and_the_request_that_queued_it(
    tmp_path, settings, sink, make_relay, make_audience, start_mailing
):
    from delivery.models import Message
    from mailplatform.celery import app
    from tests.conftest import start_celery_worker, stop_processes

    app.control.purge()  # tasks earlier tests queued without a worker must not run here
    make_relay(sink)
    mailing_list, contacts = make_audience(5)
    log_file = tmp_path / "worker.log"
    worker = start_celery_worker(
        queues="sending", env={"LOG_FORMAT": "json"}, label="json", log_file=log_file
    )
    try:
        with logs.bind(request_id="req-from-the-web"):
            mailing = start_mailing(mailing_list)
        deadline = time.monotonic() + 60
        while (
            time.monotonic() < deadline
            and Message.objects.filter(mailing=mailing, state__in=["queued", "sending"]).exists()
        ):
            time.sleep(0.2)
    finally:
        stop_processes([worker])
    records = [json.loads(line) for line in log_file.read_text().splitlines() if line.startswith("{")]
    # Only this mailing's runners: a task an earlier test left in the queue may run here too.
    stopped = [r for r in records if f"mailing {mailing.pk}: runner stopped" in r["message"]]
    assert stopped, log_file.read_text()[-3000:]
    for record in stopped:
        assert record["request_id"] == "req-from-the-web"
        assert record["task"] == "delivery.tasks.send_mailing" and record["task_id"]
        assert record["mailing"] == mailing.pk
