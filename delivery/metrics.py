"""Delivery's Prometheus metrics (registered with mailplatform.metrics from DeliveryConfig.ready).

Counters are Redis hashes the engine and the bounce pipeline add to (mailplatform.metrics.count):
per relay (sent, failed, deferred, connection errors) and per sending domain (sent, bounces,
complaints), so rates come from PromQL. Gauges are cheap reads: the open ledger states through their
partial indexes with a cap, the oldest due message through the claim and due indexes, the relays
table (a handful of rows) and their Redis limit counters, and the tracking buffer's length.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import connection
from django.utils import timezone

from delivery import ledger
from mailplatform import metrics
from mailplatform.metrics import counter, gauge, single

# A gauge of open messages counts at most this many per state: the cost of a scrape stays bounded
# (an index-only count of 100k entries is a few ms) and an alert only needs to know "a lot".
OPEN_COUNT_CAP = 100_000


def count_outcomes(
    relay_id: int, from_email: str, *, sent: int, failed: int, deferred: int, pipe: Any = None
) -> None:
    """Count a flush's outcomes; on `pipe` (a Redis pipeline the caller executes) when given."""
    domain = from_email.rpartition("@")[2].lower()
    counts = [
        ("relay", str(relay_id), {"sent": sent, "failed": failed, "deferred": deferred}),
        ("domain", domain, {"sent": sent if domain else 0}),
    ]
    if pipe is None:
        metrics.count_each(counts)
    else:
        metrics.count_each_on(pipe, counts)


def count_connection_error(relay_id: int) -> None:
    metrics.count("relay", str(relay_id), {"connection_errors": 1})


def _open_counts() -> dict[str, int]:
    counts = {}
    with connection.cursor() as cursor:
        for state in ("queued", "sending", "deferred"):
            # Queued and deferred have a partial index each (claim, due); sending rows are read per
            # Mailing from delivery_msg_outcome (ledger.SENDING_ROWS). Index-only counts, capped.
            where = ledger.SENDING_ROWS if state == "sending" else "state = %s"
            cursor.execute(
                f"SELECT count(*) FROM (SELECT 1 FROM delivery_message WHERE {where} LIMIT %s) AS open",  # noqa: S608 - constants
                [OPEN_COUNT_CAP] if state == "sending" else [state, OPEN_COUNT_CAP],
            )
            counts[state] = cursor.fetchone()[0]
    return counts


def _oldest_due_age(now) -> float:
    """Seconds the longest-waiting sendable message has waited: the first queued row of each sending
    Mailing (claim index), and the earliest deferred retry whose time has come (due index)."""
    from delivery.models import Mailing, Message

    oldest = []
    for mailing_id in Mailing.objects.filter(state=Mailing.State.SENDING).values_list("pk", flat=True)[:100]:
        first = (
            Message.objects.filter(mailing_id=mailing_id, state="queued")
            .order_by("id")
            .values_list("created_at", flat=True)
            .first()
        )
        if first is not None:
            oldest.append(first)
    due = (
        Message.objects.filter(state="deferred", next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
    )
    if due is not None:
        oldest.append(due)
    return max(0.0, (now - min(oldest)).total_seconds()) if oldest else 0.0


def collect() -> Iterable:
    from delivery import ratelimit
    from delivery.models import Mailing, Relay
    from delivery.tracking import buffer_key
    from mailplatform.redis_cache import redis_client

    now = timezone.now()
    messages = gauge(
        "messages", f"Messages in each open ledger state (counted up to {OPEN_COUNT_CAP})", ["state"]
    )
    for state, n in _open_counts().items():
        messages.add_metric([state], n)
    yield messages
    sending = Mailing.objects.filter(state=Mailing.State.SENDING).count()
    yield single(gauge("mailings_sending", "Mailings in the sending state"), sending)
    yield single(
        gauge("oldest_due_message_age_seconds", "How long the longest-waiting sendable message has waited"),
        _oldest_due_age(now),
    )

    relays = list(Relay.objects.order_by("pk").values(
        "pk", "name", "enabled", "backed_off_until", "consecutive_failures", "per_hour", "per_day", "max_connections"
    ))  # fmt: skip
    names = {str(r["pk"]): r["name"] for r in relays}
    up = gauge("relay_up", "1 when the relay is enabled and not backed off", ["relay"])
    enabled = gauge("relay_enabled", "1 when the relay is enabled", ["relay"])
    backoff = gauge(
        "relay_backoff_seconds", "Seconds left before a backed-off relay is tried again", ["relay"]
    )
    failures = gauge("relay_consecutive_failures", "Failures since the relay's last success", ["relay"])
    usage = gauge(
        "relay_limit_usage_ratio", "Share of the relay's hourly/daily limit used", ["relay", "window"]
    )
    connections = gauge("relay_connections", "Connections held to the relay now, by all workers", ["relay"])
    for relay in relays:
        label = [relay["name"]]
        left = (relay["backed_off_until"] - now).total_seconds() if relay["backed_off_until"] else 0.0
        up.add_metric(label, 1 if relay["enabled"] and left <= 0 else 0)
        enabled.add_metric(label, 1 if relay["enabled"] else 0)
        backoff.add_metric(label, max(0.0, left))
        failures.add_metric(label, relay["consecutive_failures"])
        used = ratelimit.usage(relay["pk"])
        connections.add_metric(label, used["connections"])
        for window, limit in (("hour", relay["per_hour"]), ("day", relay["per_day"])):
            if limit:
                usage.add_metric([relay["name"], window], used[window] / limit)
    yield from (up, enabled, backoff, failures, usage, connections)

    per_relay = {
        field: counter(f"relay_{field}", f"Messages {field} through the relay", ["relay"])
        for field in ("sent", "failed", "deferred")
    }
    conn_errors = counter(
        "relay_connection_errors", "Connection, TLS, AUTH or 421 failures of the relay", ["relay"]
    )
    for key, values in metrics.counted("relay").items():
        label = [names.get(key, f"deleted-{key}")]
        for field, family in per_relay.items():
            family.add_metric(label, values.get(field, 0))
        conn_errors.add_metric(label, values.get("connection_errors", 0))
    yield from per_relay.values()
    yield conn_errors

    per_domain = {
        field: counter(f"domain_{field}", f"Messages {field} per sending domain", ["domain"])
        for field in ("sent", "bounces", "complaints")
    }
    for domain, values in metrics.counted("domain").items():
        for field, family in per_domain.items():
            family.add_metric([domain], values.get(field, 0))
    yield from per_domain.values()

    yield single(
        gauge("tracking_buffer_length", "Open and click hits in Redis waiting for the flush"),
        redis_client().llen(buffer_key()),
    )
