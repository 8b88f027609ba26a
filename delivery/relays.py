"""Relays: the SMTP servers mail leaves through. Their settings, health and which of them a Mailing uses.

Per-relay limits (token bucket, connection slots) are in delivery.ratelimit; the send loop that
uses a relay is delivery.engine.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from delivery import metrics as delivery_metrics
from delivery import ratelimit
from delivery.models import PORT_SECURITY, Relay
from delivery.smtp import RelayConnection, RelayError, SessionInfo, test_connection
from mailplatform import crypto
from mailplatform.errors import model_checked
from mailplatform.services import audit_record

CAPTURE_RELAY_NAME = "Capture relay (local)"


# --- relays ---


def relay_ensure_default() -> Relay | None:
    """On a fresh install (no relay at all) point a relay at the capture relay so mail can go at once."""
    if Relay.objects.exists():
        return None
    relay, _ = Relay.objects.get_or_create(
        name=CAPTURE_RELAY_NAME,
        defaults={
            "host": settings.CAPTURE_SMTP_HOST,
            "port": settings.CAPTURE_SMTP_PORT,
            "security": "none",
            "max_connections": 4,
        },
    )
    return relay


def relay_save(
    relay: Relay | None = None,
    *,
    by: Any = None,
    password: str | None = None,
    **fields: Any,
) -> Relay:
    """Create or update a relay. `password=None` keeps the stored one; "" clears it."""
    relay = relay or Relay()
    creating = relay.pk is None
    for name, value in fields.items():
        setattr(relay, name, value)
    if creating and "security" not in fields and relay.port in PORT_SECURITY:
        relay.security = PORT_SECURITY[relay.port]
    if password is not None:
        relay.password_encrypted = crypto.encrypt(password)
    model_checked(relay)
    with transaction.atomic():
        relay.save()
        changed = sorted(set(fields) | ({"password"} if password is not None else set()))
        audit_record(by, "relay.created" if creating else "relay.updated", relay, details={"fields": changed})
    return relay


def relay_delete(relay: Relay, *, by: Any) -> None:
    with transaction.atomic():
        audit_record(by, "relay.deleted", relay)
        relay.delete()


def relay_password(relay: Relay) -> str:
    return crypto.decrypt(relay.password_encrypted)


def _session_settings(relay: Relay) -> dict[str, Any]:
    """How to open an SMTP session to the relay (the same for a test and for sending)."""
    return {
        "host": relay.host,
        "port": relay.port,
        "security": relay.security,
        "verify_certificate": relay.verify_certificate,
        "username": relay.username,
        "password": relay_password(relay),
        "helo_name": relay.helo_name,
    }


def relay_test(relay: Relay, *, timeout: float = 10.0) -> SessionInfo:
    """Connect, EHLO, STARTTLS and AUTH; records the capabilities or the error on the relay."""
    try:
        info = test_connection(**_session_settings(relay), timeout=timeout)
    except RelayError as exc:
        relay_record_failure(relay.pk, str(exc), back_off=False)
        raise
    Relay.objects.filter(pk=relay.pk).update(
        capabilities=info.esmtp,
        last_success_at=timezone.now(),
        last_error="",
        consecutive_failures=0,
        backed_off_until=None,
    )
    return info


def relay_record_failure(relay_id: int, error: str, *, back_off: bool = True) -> None:
    """The relay failed (connection, TLS, AUTH, 421): back it off so the others take its share."""
    now = timezone.now()
    with transaction.atomic():
        relay = Relay.objects.select_for_update().filter(pk=relay_id).first()
        if relay is None:
            return
        relay.consecutive_failures += 1
        relay.last_error = error[:2000]
        relay.last_error_at = now
        if back_off:
            seconds = min(
                settings.DELIVERY_RELAY_BACKOFF_BASE_SECONDS * 2 ** min(relay.consecutive_failures - 1, 20),
                settings.DELIVERY_RELAY_BACKOFF_MAX_SECONDS,
            )
            relay.backed_off_until = now + dt.timedelta(seconds=seconds)
        relay.save(update_fields=["consecutive_failures", "last_error", "last_error_at", "backed_off_until"])
    delivery_metrics.count_connection_error(relay_id)


def relay_record_success(relay_id: int, capabilities: dict[str, str] | None = None) -> None:
    fields: dict[str, Any] = {
        "last_success_at": timezone.now(),
        "consecutive_failures": 0,
        "backed_off_until": None,
    }
    if capabilities is not None:
        fields["capabilities"] = capabilities
    Relay.objects.filter(pk=relay_id).update(**fields)


# --- the relays one Mailing goes through ---


def pool(mailing_id: int) -> list[Relay]:
    """The enabled relays of the Mailing's pool; every enabled relay when it chose none."""
    mailing_relays = list(Relay.objects.filter(mailings__id=mailing_id, enabled=True))
    if mailing_relays:
        return mailing_relays
    if Relay.objects.filter(mailings__id=mailing_id).exists():
        return []  # a pool was chosen and every relay in it is disabled
    return list(Relay.objects.filter(enabled=True))


def choose_relay(relays: list[Relay], exclude: set[int]) -> Relay | None:
    now = timezone.now()
    usable = [
        r for r in relays if r.pk not in exclude and (r.backed_off_until is None or r.backed_off_until <= now)
    ]
    if not usable:
        return None
    return random.choices(usable, weights=[max(r.weight, 1) for r in usable])[0]


def limits(relay: Relay) -> ratelimit.Limits:
    return ratelimit.Limits(
        per_second=relay.per_second, burst=relay.burst, per_hour=relay.per_hour, per_day=relay.per_day
    )


def open_connection(relay: Relay) -> RelayConnection:
    connection_ = RelayConnection(**_session_settings(relay), timeout=settings.DELIVERY_SMTP_TIMEOUT)
    connection_.open()
    return connection_
