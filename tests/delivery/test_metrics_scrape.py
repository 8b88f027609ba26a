"""Done-when of the metrics: a scrape during a real send (a real worker, SMTP on loopback) sees the
send counter rise and the queue drain."""

from __future__ import annotations

import time

import pytest

from delivery.models import Message
from tests.conftest import start_celery_worker, stop_processes
from tests.mailplatform.test_metrics import TOKEN, exposed

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_scrape_during_a_real_send_sees_the_counter_rise_and_the_queue_drain(
    client, settings, sink, make_relay, make_audience, start_mailing
):
    settings.METRICS_ENABLED, settings.METRICS_TOKEN = True, TOKEN
    settings.DELIVERY_PARALLEL = 1
    relay = make_relay(sink, name="loopback", per_second=60, burst=5)  # ~2.5 s for 150: several scrapes
    mailing_list, contacts = make_audience(150)

    def scrape() -> tuple[float, float]:
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        metrics = exposed(response.content.decode())
        sent = metrics["posthorn_relay_sent_total"].get((("relay", relay.name),), 0.0)
        queued = metrics["posthorn_messages"][(("state", "queued"),)]
        return sent, queued

    from mailplatform.celery import app

    app.control.purge()  # tasks earlier tests queued without a worker must not run here
    sent_before, _ = scrape()
    worker = start_celery_worker(
        queues="sending", env={"DELIVERY_PARALLEL": "1", "DELIVERY_BATCH_SIZE": "20"}, label="metrics"
    )
    try:
        mailing = start_mailing(mailing_list)
        seen = [scrape()]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            seen.append(scrape())
            if not Message.objects.filter(mailing=mailing, state__in=["queued", "sending"]).exists():
                break
            time.sleep(0.25)
        seen.append(scrape())
    finally:
        stop_processes([worker])
    sent = [s - sent_before for s, _ in seen]
    queued = [q for _, q in seen]
    print(f"\nmetrics: {len(seen)} scrapes; sent {[int(s) for s in sent]}; queued {[int(q) for q in queued]}")
    assert sent == sorted(sent), "the send counter went down"
    assert sent[-1] == len(contacts)
    assert any(0 < s < len(contacts) for s in sent), "no scrape saw the send under way"
    assert queued[0] == len(contacts) and queued[-1] == 0
    assert any(0 < q < len(contacts) for q in queued), "no scrape saw the queue draining"
    assert queued == sorted(queued, reverse=True)
    assert len(sink.handler.recipients()) == len(contacts)
