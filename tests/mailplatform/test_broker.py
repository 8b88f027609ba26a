"""The broker: CELERY_BROKER_URL apart from REDIS_URL, and RabbitMQ's quorum queues with countdowns."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO_ROOT, celery_on_broker, start_celery_worker, stop_processes


def _settings_with(env: dict[str, str]) -> subprocess.CompletedProcess:
    code = (
        "from django.conf import settings; from mailplatform.celery import app; "
        "print(settings.CELERY_BROKER_URL == settings.REDIS_URL, settings.BROKER_IS_RABBITMQ, "
        "sorted({q.queue_arguments.get('x-queue-type', 'classic') if q.queue_arguments else 'classic' "
        "for q in app.conf.task_queues}), app.conf.broker_transport_options)"
    )
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=REPO_ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "mailplatform.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_broker_defaults_to_the_redis_url_and_may_be_rabbitmq_with_quorum_queues():
    base = {
        "DEBUG": "true",
        "REDIS_URL": "redis://127.0.0.1:6399/0",
        "DATABASE_URL": "postgresql://x@127.0.0.1/x",
    }
    default = _settings_with(base)
    assert default.stdout.split()[:3] == ["True", "False", "['classic']"], default.stderr
    quorum = _settings_with(
        {**base, "CELERY_BROKER_URL": "amqp://u:p@rabbit:5672/vh", "RABBITMQ_QUEUE_TYPE": "quorum"}
    )
    assert quorum.stdout.startswith("False True ['quorum'] {'confirm_publish': True}"), quorum.stderr
    wrong = _settings_with({**base, "CELERY_BROKER_URL": "http://rabbit/"})
    assert wrong.returncode != 0 and "CELERY_BROKER_URL must start with" in wrong.stderr
    wrong_type = _settings_with({**base, "RABBITMQ_QUEUE_TYPE": "lazy"})
    assert wrong_type.returncode != 0 and "RABBITMQ_QUEUE_TYPE" in wrong_type.stderr


def test_send_tasks_are_acknowledged_late():
    from delivery.tasks import send_mailing

    assert send_mailing.acks_late is True


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("quorum", [False, True], ids=["classic", "quorum"])
def test_countdown_tasks_run_on_rabbitmq_queues(rabbitmq_url, quorum):
    """Webhook retries wait with a countdown; on quorum queues that wait must happen in the broker."""
    from mailplatform.celery import app

    vhost_url = rabbitmq_url
    with celery_on_broker(vhost_url, quorum=quorum) as env:
        worker = start_celery_worker(
            queues="default", env=env, label=f"rabbit-{'quorum' if quorum else 'classic'}"
        )
        try:
            started = time.monotonic()
            # celery.accumulate is Celery's own task that returns its argument: no app state involved.
            result = app.send_task("celery.accumulate", args=(42,), countdown=3, queue="default")
            if quorum:
                assert _waiting_in_the_broker(app) == 1, "the countdown task is not waiting in RabbitMQ"
            assert result.get(timeout=30) == [42]
            waited = time.monotonic() - started
        finally:
            stop_processes([worker])
    assert 2.8 <= waited < 25, f"the countdown task ran after {waited:.1f} s"


def _waiting_in_the_broker(app) -> int:
    """Messages in Celery's native delayed delivery queues (celery_delayed_0..27) right now."""
    with app.connection_for_write() as connection:
        channel = connection.channel()
        return sum(
            channel.queue_declare(f"celery_delayed_{level}", passive=True).message_count
            for level in range(28)
        )
