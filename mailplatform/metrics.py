"""Prometheus metrics: one registry that each app fills with its collectors from AppConfig.ready.

mailplatform imports no app: delivery, contacts and the rest call `register(name, collect)` with a
function that returns metric families. A scrape calls every function; each reads only cheap things
(Redis counters and gauges, a handful of rows from small tables, counts bounded by an index and a
cap), never a scan of the ledger. One that fails is logged and counted, and the others still answer.

Served at /metrics on the web (METRICS_ENABLED, with `Authorization: Bearer <METRICS_TOKEN>`) and by
`manage.py metrics_server` on a port of its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from mailplatform.redis_cache import redis_client, redis_key

log = logging.getLogger(__name__)

Collect = Callable[[], Iterable[Metric]]
_COLLECTORS: dict[str, Collect] = {}


def register(name: str, collect: Collect) -> None:
    """Add (or replace, by name) a collector: a function returning metric families."""
    _COLLECTORS[name] = collect


def gauge(name: str, documentation: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"posthorn_{name}", documentation, labels=list(labels))


def counter(name: str, documentation: str, labels: Iterable[str] = ()) -> CounterMetricFamily:
    return CounterMetricFamily(f"posthorn_{name}", documentation, labels=list(labels))


class _Registered:
    """prometheus_client's collector interface over the registered functions."""

    def collect(self) -> Iterable[Metric]:
        failed = gauge(
            "metrics_collector_failed", "1 when the collector raised in this scrape", ["collector"]
        )
        seconds = gauge("metrics_collector_seconds", "Time the collector took in this scrape", ["collector"])
        for name, collect in sorted(_COLLECTORS.items()):
            started = time.perf_counter()
            try:
                families = list(collect())
            except Exception:
                log.exception("metrics collector %s failed", name)
                families = []
                failed.add_metric([name], 1)
            else:
                failed.add_metric([name], 0)
            seconds.add_metric([name], time.perf_counter() - started)
            yield from families
        yield failed
        yield seconds


REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(_Registered())


def exposition() -> bytes:
    return generate_latest(REGISTRY)


# --- Redis counters: apps count events here, collectors read them back in one call ---


def count(group: str, key: str, increments: dict[str, int]) -> None:
    """Add to the counters of one labelled thing (e.g. group "relay", key "3") in one round trip.

    Counters live in Redis so every worker on every host adds to the same figure; if Redis is lost
    they restart from zero, which Prometheus reads as a counter reset. Never raises: a metric must
    not fail a send.
    """
    count_each([(group, key, increments)])


def count_each(counts: Iterable[tuple[str, str, dict[str, int]]]) -> None:
    """`count` for several labelled things at once, still one round trip (the engine's hot path)."""
    try:
        pipe = redis_client().pipeline(transaction=False)
        if count_each_on(pipe, counts):
            pipe.execute()
    except Exception as exc:
        log.warning("metrics: could not count %s: %s", counts, exc)


def count_each_on(pipe: Any, counts: Iterable[tuple[str, str, dict[str, int]]]) -> int:
    """Queue `count_each`'s increments on a caller's Redis pipeline (which executes it, with its own
    commands: one round trip for all); returns how many commands were queued."""
    queued = 0
    for group, key, increments in counts:
        increments = {field: value for field, value in increments.items() if value}
        if not increments:
            continue
        hash_key = redis_key("metrics", group, key)
        for field, value in increments.items():
            pipe.hincrby(hash_key, field, value)
        pipe.sadd(redis_key("metrics", group), key)
        queued += len(increments) + 1
    return queued


def counted(group: str) -> dict[str, dict[str, int]]:
    """{key: {field: value}} for every key counted in the group (one SMEMBERS, one pipelined read)."""
    client = redis_client()
    keys = sorted(member.decode() for member in client.smembers(redis_key("metrics", group)))
    if not keys:
        return {}
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hgetall(redis_key("metrics", group, key))
    return {
        key: {field.decode(): int(value) for field, value in values.items()}
        for key, values in zip(keys, pipe.execute(), strict=True)
    }


# --- the platform's own collectors ---


def _workers() -> Iterable[Metric]:
    from mailplatform.workers import last_heartbeats

    family = gauge(
        "worker_last_heartbeat_timestamp_seconds", "Unix time of each worker's last heartbeat", ["worker"]
    )
    for node, at in sorted(last_heartbeats().items()):
        family.add_metric([node], at)
    yield family


def _queue_lengths() -> dict[str, int]:
    """Messages waiting in each Celery queue of the broker (Redis lists or RabbitMQ queues)."""
    from django.conf import settings

    from mailplatform.celery import app

    names = [queue.name for queue in app.conf.task_queues or []]
    if settings.BROKER_IS_RABBITMQ:
        lengths = {}
        with app.connection_for_read() as connection:
            channel = connection.default_channel
            for name in names:
                try:
                    lengths[name] = channel.queue_declare(name, passive=True).message_count
                except Exception:  # not declared yet: no worker has started on it
                    lengths[name] = 0
                    channel = connection.channel()
        return lengths
    from mailplatform.redis_cache import _client_for

    client = _client_for(settings.CELERY_BROKER_URL)
    separator = "\x06\x16"  # kombu's priority queues: name, then name<sep>3, <sep>6, <sep>9
    pipe = client.pipeline(transaction=False)
    for name in names:
        for suffix in ("", f"{separator}3", f"{separator}6", f"{separator}9"):
            pipe.llen(name + suffix)
    results = pipe.execute()
    return {name: sum(results[i * 4 : i * 4 + 4]) for i, name in enumerate(names)}


def _celery() -> Iterable[Metric]:
    family = gauge("celery_queue_length", "Tasks waiting in each Celery queue", ["queue"])
    for name, length in sorted(_queue_lengths().items()):
        family.add_metric([name], length)
    yield family


def _webhooks() -> Iterable[Metric]:
    from mailplatform.models import WebhookDelivery

    backlog = WebhookDelivery.objects.filter(
        status__in=[WebhookDelivery.Status.PENDING, WebhookDelivery.Status.RETRYING]
    ).count()  # the (status, next_attempt_at) index; the backlog is small unless endpoints are down
    yield single(
        gauge("webhook_backlog", "Outbound webhook deliveries not yet succeeded or given up"), backlog
    )


def single(family: Any, value: float) -> Any:
    """A family with one unlabelled sample."""
    family.add_metric([], value)
    return family


register("mailplatform.workers", _workers)
register("mailplatform.celery", _celery)
register("mailplatform.webhooks", _webhooks)
