"""The Celery queues, for Redis or RabbitMQ (classic or quorum queues).

Named queues so sending never waits behind an import, and bounces never wait behind sending.
"""

from __future__ import annotations

from kombu import Exchange, Queue

QUEUES = ("default", "imports", "sending", "bounces")


def celery_queues(*, quorum: bool) -> list[Queue]:
    if not quorum:
        return [Queue(name) for name in QUEUES]
    # Native delayed delivery (how countdown/ETA tasks work on quorum queues) routes a delayed message
    # back through the queue's exchange by a topic binding; a direct exchange would hold it in a worker.
    return [
        Queue(
            name, Exchange(name, type="topic"), routing_key=name, queue_arguments={"x-queue-type": "quorum"}
        )
        for name in QUEUES
    ]
