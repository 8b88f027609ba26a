"""Workers on several hosts share one mailing with the guarantees of one: two worker groups, under
different host names and queue sets, send one mailing together; nobody is missed or mailed twice,
and the relay's rate limit (in Redis) holds across both."""

from __future__ import annotations

import re
import time
from collections import Counter

import pytest

from delivery.models import Message
from tests.conftest import start_celery_worker, stop_processes
from tests.delivery.smtp_servers import RecordingHandler, SmtpServer

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

GROUPS = {
    # host name: the queues its workers take (host-b also does the platform's other work)
    "host-a": "sending",
    "host-b": "sending,default,bounces",
}
ENV = {"DELIVERY_PARALLEL": "4", "DELIVERY_TASK_SECONDS": "1", "DELIVERY_BATCH_SIZE": "25"}


def test_two_worker_groups_on_different_hosts_share_one_mailing(
    tmp_path, settings, make_relay, make_audience, start_mailing
):
    from mailplatform.celery import app

    app.control.purge()  # tasks other tests queued without a worker must not run here
    settings.DELIVERY_PARALLEL = 4
    rate = 100
    arrivals: list[float] = []

    def stamp(envelope):
        arrivals.append(time.monotonic())
        return None

    handler = RecordingHandler(data_reply=stamp)
    logs = {host: tmp_path / f"{host}.log" for host in GROUPS}
    with SmtpServer(handler) as server:
        make_relay(server, per_second=rate, burst=10, max_connections=4)
        mailing_list, contacts = make_audience(400)
        workers = [
            start_celery_worker(queues=queues, env=ENV, label="group", host=host, log_file=logs[host])
            for host, queues in GROUPS.items()
        ]
        try:
            mailing = start_mailing(mailing_list)
            unfinished = Message.objects.filter(mailing=mailing, state__in=["queued", "sending"])
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and unfinished.exists():
                time.sleep(0.2)
        finally:
            stop_processes(workers)
        received = Counter(handler.recipients())

    sent_by = {
        host: sum(
            int(n) for n in re.findall(r"runner stopped \([^)]*\) after (\d+) sent", logs[host].read_text())
        )
        for host in GROUPS
    }
    elapsed = arrivals[-1] - arrivals[0]
    print(f"\nmany hosts: sent by group {sent_by}; {len(arrivals)} in {elapsed:.1f} s (limit {rate}/s)")
    assert set(received) == {c.email for c in contacts}, "somebody was missed"
    assert max(received.values()) == 1, "somebody was mailed twice"
    assert set(Message.objects.filter(mailing=mailing).values_list("state", flat=True)) == {"sent"}
    assert all(n > 0 for n in sent_by.values()), f"one group sent nothing: {sent_by}"
    assert sum(sent_by.values()) == len(contacts)
    assert len(arrivals) <= rate * elapsed * 1.05 + 10  # the relay's limit held across the hosts
