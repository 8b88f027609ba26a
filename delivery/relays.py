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
from delivery import ratelimit, relayhealth
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
    endpoint = (relay.host, relay.port)
    for name, value in fields.items():
        setattr(relay, name, value)
    if creating and "security" not in fields and relay.port in PORT_SECURITY:
        relay.security = PORT_SECURITY[relay.port]
    if password is not None:
        relay.password_encrypted = crypto.encrypt(password)
    elif not creating and (relay.host, relay.port) != endpoint and relay.password_encrypted:
        # The stored password was given for the old server: never send it to a new one (a hijacked
        # session could otherwise point the relay at itself and read the password off the wire).
        relay.password_encrypted = ""
        password = ""
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


def relay_record_failure(relay_id: int, error: str, *, back_off: bool = True, probe: bool = False) -> None:
    """The relay failed (connection, TLS, AUTH, 421): back it off so the others take its share.

    Its health is counted in Redis per relay (delivery.relayhealth: once per outage however many
    runners saw it, a capped jittered wait, then one probe); the row mirrors it for the admin, and
    always gets the error text. `probe`: the failing attempt was the half-open probe (choose_relay).
    `back_off=False` (an admin's Test connection) only records the error.
    """
    now = timezone.now()
    fields: dict[str, Any] = {"last_error": error[:2000], "last_error_at": now}
    if back_off:
        health = relayhealth.failure(relay_id, probe=probe)
        fields["consecutive_failures"] = health.failures
        fields["backed_off_until"] = now + dt.timedelta(seconds=health.seconds)
        if not health.counted:
            # Another runner already counted this outage and set the wait: keep its figures.
            fields = {"last_error": error[:2000], "last_error_at": now}
    Relay.objects.filter(pk=relay_id).update(**fields)
    delivery_metrics.count_connection_error(relay_id)


def relay_note_error(relay_id: int, error: str) -> None:
    """A temporary refusal worth showing on the relay (a 4xx at MAIL, RCPT or DATA) that is no failure of it."""
    Relay.objects.filter(pk=relay_id).update(last_error=error[:2000], last_error_at=timezone.now())


def relay_record_success(relay_id: int, capabilities: dict[str, str] | None = None) -> None:
    """A session opened: the relay is healthy again at once, for every runner."""
    was_failing = relayhealth.success(relay_id)
    fields: dict[str, Any] = {
        "last_success_at": timezone.now(),
        "consecutive_failures": 0,
        "backed_off_until": None,
    }
    if capabilities is not None:
        fields["capabilities"] = capabilities
    query = Relay.objects.filter(pk=relay_id)
    if not was_failing and capabilities is None:
        # Nothing to tell the admin unless the row still shows a failure (one another runner wrote).
        query = query.filter(consecutive_failures__gt=0)
    query.update(**fields)


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
    """A relay to use now, by weight among the healthy ones; a backed-off one whose wait has passed
    is chosen first when this runner got to probe it (relayhealth), and only by this runner."""
    usable = []
    for relay in relays:
        if relay.pk in exclude:
            continue
        state, _ = relayhealth.check(relay.pk)
        if state == relayhealth.PROBE:
            # The probe is ours: try it now (the others wait for its verdict).
            relay.probing = True
            return relay
        if state == relayhealth.USABLE:
            usable.append(relay)
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
