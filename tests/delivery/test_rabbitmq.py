"""A real mailing sent by a real worker whose broker is RabbitMQ (the other worker tests use Redis).

Skips where RabbitMQ does not run on 127.0.0.1:5672 (see tests/conftest.py's rabbitmq_url).
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from delivery.models import Message
from tests.conftest import celery_on_broker, start_celery_worker, stop_processes

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("quorum", [False, True], ids=["classic", "quorum"])
def test_a_mailing_goes_out_once_each_through_a_worker_on_rabbitmq(
    rabbitmq_url, quorum, sink, make_relay, make_audience, start_mailing, settings
):
    settings.DELIVERY_PARALLEL = 2
    make_relay(sink)
    mailing_list, contacts = make_audience(120)
    with celery_on_broker(rabbitmq_url, quorum=quorum) as env:
        worker = start_celery_worker(queues="sending", env={**env, "DELIVERY_PARALLEL": "2"}, label="rabbit")
        try:
            mailing = start_mailing(mailing_list)  # dispatches its runners through RabbitMQ
            unfinished = Message.objects.filter(mailing=mailing, state__in=["queued", "sending"])
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and unfinished.exists():
                time.sleep(0.2)
        finally:
            stop_processes([worker])
    received = Counter(sink.handler.recipients())
    assert set(received) == {c.email for c in contacts}
    assert max(received.values()) == 1
    assert set(Message.objects.filter(mailing=mailing).values_list("state", flat=True)) == {"sent"}
