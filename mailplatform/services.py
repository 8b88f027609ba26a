"""Writes that belong to the platform itself: the audit log, users, captured mail, login throttling."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import hashlib
import json
import math
import secrets
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.utils import timezone

from mailplatform import crypto, webhooks
from mailplatform.errors import Invalid
from mailplatform.models import (
    ApiKey,
    AuditEntry,
    CapturedMessage,
    ScopeCeiling,
    User,
    WebhookCursor,
    WebhookDelivery,
    WebhookEndpoint,
)
from mailplatform.roles import Role, can
from mailplatform.scopes import SCOPES, ceiling_choices, role_may_grant, scope_ceiling


def acting_user(by: Any) -> User | None:
    """The user who acts, for `created_by` and the audit log; None for the system.

    Services take `by` from wherever the call came from: a dashboard request's user, an API key's
    owner, a command's or worker's label (a string), or nothing.
    """
    return by if isinstance(by, User) else None


def audit_record(
    actor: Any,
    action: str,
    target: models.Model | None = None,
    *,
    details: dict[str, Any] | None = None,
    ip_address: str | None = None,
) -> AuditEntry:
    """Record that `actor` (a user, or None for the system) did `action` to `target`."""
    user = acting_user(actor)
    return AuditEntry.objects.create(
        actor=user,
        actor_label=user.get_username() if user is not None else str(actor or "system"),
        action=action,
        target_type=target._meta.label if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_label=str(target)[:300] if target is not None else "",
        details=details or {},
        ip_address=ip_address,
    )


def audit_changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    """{field: [old, new]} for the fields that changed: what the audit log shows as "field: old → new"."""
    return {key: [before.get(key), value] for key, value in after.items() if before.get(key) != value}


def user_create(
    *, username: str, email: str, role: str, password: str | None = None, by: Any = None
) -> tuple[User, str]:
    """Create a user; returns it with the password (generated when none is given) to show once."""
    if role not in Role.values:
        raise ValueError(f"role must be one of {', '.join(Role.values)}")
    password = password or secrets.token_urlsafe(12)
    with transaction.atomic():
        user = User(username=username, email=email, role=role)
        user.set_password(password)
        user.save()
        audit_record(by, "user.created", user, details={"role": role})
    return user, password


def user_set_role(user: User, role: str, *, by: Any) -> User:
    if role not in Role.values:
        raise ValueError(f"role must be one of {', '.join(Role.values)}")
    with transaction.atomic():
        old = user.role
        user.role = role
        user.save()
        audit_record(by, "user.role_changed", user, details={"from": old, "to": role})
    return user


def user_set_active(user: User, active: bool, *, by: Any) -> User:
    with transaction.atomic():
        user.is_active = active
        user.save()
        audit_record(by, "user.activated" if active else "user.deactivated", user)
    return user


def ensure_first_admin() -> tuple[User, str] | None:
    """On a fresh install create `admin` with a random password; None when any user exists."""
    with transaction.atomic():
        # Locks the table so two starting processes cannot both create the first admin.
        User.objects.select_for_update().all().exists()
        if User.objects.exists():
            return None
        return user_create(username="admin", email="admin@localhost", role=Role.ADMIN)


def captured_message_store(mail_from: str, recipients: list[str], raw: bytes) -> CapturedMessage:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    try:
        subject = str(parsed.get("Subject", ""))
    except Exception:  # a hostile header must not lose the message
        subject = ""
    return CapturedMessage.objects.create(
        mail_from=mail_from[:998],
        recipients=recipients,
        subject=subject.replace("\r", " ").replace("\n", " ")[:998],
        message_id=str(parsed.get("Message-ID", ""))[:998],
        size=len(raw),
        raw=raw,
        # Spelled here, not imported: mailplatform imports no app (delivery.transactional.TEST_HEADER).
        is_test=str(parsed.get("X-Posthorn-Test", "")).strip().lower() == "yes",
    )


# --- Login throttling: one throttle for every form that checks a password (see settings) ---


def _throttle_counters(username: str, ip_address: str | None) -> list[tuple[str, int]]:
    """(cache key, failures allowed before delays start) for each counter a login attempt touches."""
    user = username.strip().lower()[:150]
    base = settings.LOGIN_MAX_FAILURES
    counters = [(f"login-failures:user:{user}", base * 10)]
    if ip_address:
        counters += [
            (f"login-failures:pair:{user}:{ip_address}", base),
            (f"login-failures:ip:{ip_address}", base * 4),
        ]
    return counters


def _delay_after(failures: int, allowed: int) -> int:
    if failures < allowed:
        return 0
    return min(
        settings.LOGIN_DELAY_SECONDS * 2 ** min(failures - allowed, 30), settings.LOGIN_LOCKOUT_SECONDS
    )


def login_wait_seconds(username: str, ip_address: str | None) -> int:
    """How long this account, from this address, must wait before its password is checked again (0: now)."""
    counters = _throttle_counters(username, ip_address)
    state = cache.get_many([key for key, _ in counters])
    now = time.time()
    wait = 0.0
    for key, allowed in counters:
        failures, last_at = state.get(key, (0, 0.0))
        wait = max(wait, last_at + _delay_after(failures, allowed) - now)
    return max(0, math.ceil(wait))


def login_failed(username: str, ip_address: str | None) -> None:
    counters = _throttle_counters(username, ip_address)
    state = cache.get_many([key for key, _ in counters])
    now = time.time()
    cache.set_many(
        {key: (state.get(key, (0, 0.0))[0] + 1, now) for key, _ in counters},
        timeout=settings.LOGIN_FAILURE_WINDOW_SECONDS,
    )


def login_succeeded(username: str, ip_address: str | None) -> None:
    """The right password: this account's failures from this address are forgotten (not the others')."""
    user = username.strip().lower()[:150]
    cache.delete_many([f"login-failures:pair:{user}:{ip_address}"] if ip_address else [])


def password_reset_allowed(email: str, ip_address: str | None) -> bool:
    """Reset mails per address and per client per hour: nobody can mail-bomb an inbox through us."""
    allowed = True
    for key in (
        f"password-reset:email:{email.strip().lower()[:254]}",
        f"password-reset:ip:{ip_address or '-'}",
    ):
        cache.add(key, 0, timeout=3600)
        allowed = cache.incr(key) <= settings.PASSWORD_RESET_REQUESTS_PER_HOUR and allowed
    return allowed


# --- API keys ---

API_KEY_PREFIX = "phk_"


class ApiKeyError(Invalid):
    """A key request the creator's role does not allow, or that makes no sense."""


def api_key_hash(full_key: str) -> str:
    # Keys carry 256 bits of randomness, so a fast hash is safe and keeps every request cheap.
    return hashlib.sha256(full_key.encode()).hexdigest()


def api_key_create(
    *,
    user: User,
    name: str,
    scopes: Iterable[str],
    expires_at: dt.datetime | None = None,
    rate_limit_per_minute: int | None = None,
) -> tuple[ApiKey, str]:
    """Create a key for `user`; returns it with the full key, which is never stored and shown once."""
    if not can(user, "manage_api_keys"):
        raise ApiKeyError("Your role may not create API keys.")
    scopes = sorted(set(scopes))
    if not scopes:
        raise ApiKeyError("Choose at least one scope.")
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise ApiKeyError(f"Unknown scope {unknown[0]!r}.")
    refused = [s for s in scopes if not role_may_grant(user.role, s)]
    if refused:
        raise ApiKeyError(
            f"Your role may not grant the scope {refused[0]!r}: it is above what an admin lets "
            f"{user.get_role_display().lower()}s' keys do (Settings > API key limits).",
            field="scopes",
        )
    if expires_at is not None and expires_at <= timezone.now():
        raise ApiKeyError("The expiry must be in the future.")
    name = name.strip()
    if not name:
        raise ApiKeyError("Give the key a name.")
    with transaction.atomic():
        prefix = secrets.token_hex(4)
        while ApiKey.objects.filter(prefix=prefix).exists():
            prefix = secrets.token_hex(4)
        full_key = f"{API_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
        key = ApiKey.objects.create(
            name=name[:100],
            prefix=prefix,
            secret_hash=api_key_hash(full_key),
            scopes=scopes,
            created_by=user,
            expires_at=expires_at,
            rate_limit_per_minute=rate_limit_per_minute,
        )
        audit_record(user, "api_key.created", key, details={"scopes": scopes})
    return key, full_key


def scope_ceiling_set(role: str, scopes: Iterable[str], *, by: Any) -> ScopeCeiling:
    """An admin decides the most the API keys of a non-admin role may do; audited with before/after.

    Keys already made keep their scopes but are checked against the ceiling on every request, so a
    lowered ceiling takes effect at once.
    """
    if not can(acting_user(by), "manage_users"):
        raise Invalid("Only an admin may change what API keys may do.", code="forbidden", status=403)
    if role not in Role.values or role == Role.ADMIN:
        raise Invalid("Choose a non-admin role: admins' keys may carry every scope.", field="role")
    chosen = sorted(set(scopes))
    allowed = set(ceiling_choices())
    refused = [name for name in chosen if name not in allowed]
    if refused:
        raise Invalid(f"{refused[0]!r} cannot be given to a non-admin role's keys.", field="scopes")
    with transaction.atomic():
        before = sorted(scope_ceiling(role))
        ceiling, _ = ScopeCeiling.objects.select_for_update().get_or_create(role=role)
        ceiling.scopes = chosen
        ceiling.updated_by = acting_user(by)
        ceiling.save()
        audit_record(
            by, "api_key.ceiling_changed", ceiling, details={"role": role, "from": before, "to": chosen}
        )
    return ceiling


def api_key_revoke(key: ApiKey, *, by: Any) -> ApiKey:
    with transaction.atomic():
        if key.revoked_at is None:
            key.revoked_at = timezone.now()
            key.save(update_fields=["revoked_at"])
            audit_record(by, "api_key.revoked", key)
    return key


def api_key_touch(key: ApiKey) -> None:
    """Record use, at most once a minute per key: a busy key must not write on every request."""
    now = timezone.now()
    resolution = dt.timedelta(seconds=settings.API_KEY_LAST_USED_RESOLUTION)
    if key.last_used_at is None or now - key.last_used_at >= resolution:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now


# --- Outbound webhooks ---


class WebhookError(Invalid):
    """A webhook endpoint that cannot be saved (its URL, its events)."""


def _check_event_types(event_types: Iterable[str]) -> list[str]:
    chosen = sorted(set(event_types))
    if not chosen:
        raise WebhookError("Choose at least one event type.")
    unknown = [e for e in chosen if e not in webhooks.EVENT_TYPES]
    if unknown:
        raise WebhookError(f"Unknown event type {unknown[0]!r}; known: {', '.join(webhooks.EVENT_TYPES)}.")
    return chosen


def webhook_endpoint_create(
    *, url: str, event_types: Iterable[str], description: str = "", by: Any
) -> tuple[WebhookEndpoint, str]:
    """Subscribe `url`; returns the endpoint and its signing secret (shown once)."""
    try:
        webhooks.check_url(url)
    except webhooks.UnresolvableHost:
        pass  # checked again at every delivery
    except webhooks.UnsafeURL as exc:
        raise WebhookError(f"Cannot deliver to this URL: {exc}.") from exc
    secret = "whsec_" + secrets.token_urlsafe(32)
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.create(
            url=url,
            description=description[:200],
            event_types=_check_event_types(event_types),
            secret_encrypted=crypto.encrypt(secret),
            created_by=by if isinstance(by, User) else None,
        )
        audit_record(by, "webhook.created", endpoint, details={"event_types": endpoint.event_types})
    return endpoint, secret


def webhook_endpoint_update(
    endpoint: WebhookEndpoint,
    *,
    by: Any,
    event_types: Iterable[str] | None = None,
    active: bool | None = None,
    description: str | None = None,
) -> WebhookEndpoint:
    if event_types is not None:
        endpoint.event_types = _check_event_types(event_types)
    if active is not None:
        endpoint.active = active
    if description is not None:
        endpoint.description = description[:200]
    with transaction.atomic():
        endpoint.save()
        audit_record(by, "webhook.updated", endpoint, details={"active": endpoint.active})
    return endpoint


def webhook_endpoint_delete(endpoint: WebhookEndpoint, *, by: Any) -> None:
    with transaction.atomic():
        audit_record(by, "webhook.deleted", endpoint)
        endpoint.delete()


def webhook_emit(event_type: str, payload: dict[str, Any]) -> int:
    """Queue `event_type` for every active endpoint subscribed to it; returns how many deliveries.

    Apps call this inside their own transaction: the deliveries commit with the change that caused
    them and are posted after the commit, never for a change that rolled back.
    """
    return webhook_emit_many(event_type, [payload])


def webhook_emit_many(event_type: str, payloads: list[dict[str, Any]]) -> int:
    if event_type not in webhooks.EVENT_TYPES:
        raise WebhookError(f"Unknown event type {event_type!r}.")
    endpoints = [
        e.pk
        for e in WebhookEndpoint.objects.filter(active=True).only("pk", "event_types")
        if event_type in e.event_types
    ]
    if not endpoints or not payloads:
        return 0
    # Round-trip through JSON now: a payload that cannot be serialised fails in the caller, not the task.
    payloads = [json.loads(json.dumps(p, cls=DjangoJSONEncoder)) for p in payloads]
    deliveries = WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(endpoint_id=endpoint_id, event_id=uuid.uuid4(), event_type=event_type, payload=p)
            for p in payloads
            for endpoint_id in endpoints
        ]
    )
    ids = [d.pk for d in deliveries]

    def enqueue() -> None:
        from mailplatform.tasks import webhook_deliver

        for delivery_id in ids:
            webhook_deliver.delay(delivery_id)

    transaction.on_commit(enqueue)
    return len(ids)


def webhook_body(delivery: WebhookDelivery) -> bytes:
    envelope = {
        "id": str(delivery.event_id),
        "type": delivery.event_type,
        "created_at": delivery.created_at.isoformat(),
        "data": delivery.payload,
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


def webhook_retry_delay(attempts: int) -> int:
    """Seconds before the next try after `attempts` failures: exponential, capped at six hours."""
    return min(settings.WEBHOOK_RETRY_BASE_SECONDS * 4 ** (attempts - 1), 6 * 3600)


def webhook_attempt(delivery_id: int) -> int | None:
    """Post one delivery once. Returns seconds until it should be tried again, or None when done."""
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(skip_locked=True)
            .select_related("endpoint")
            .filter(
                pk=delivery_id, status__in=[WebhookDelivery.Status.PENDING, WebhookDelivery.Status.RETRYING]
            )
            .first()
        )
        if delivery is None:
            return None  # done already, or another worker holds it
        endpoint = delivery.endpoint
        if not endpoint.active:
            delivery.status = WebhookDelivery.Status.FAILED
            delivery.last_error = "The endpoint was disabled before delivery."
            delivery.save(update_fields=["status", "last_error"])
            return None
        body = webhook_body(delivery)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Posthorn-Webhooks/1",
            "Posthorn-Event": delivery.event_type,
            "Posthorn-Delivery": str(delivery.event_id),
            webhooks.SIGNATURE_HEADER: webhooks.sign(
                crypto.decrypt(endpoint.secret_encrypted), body, int(timezone.now().timestamp())
            ),
        }
        result = webhooks.post(endpoint.url, body, headers, timeout=settings.WEBHOOK_TIMEOUT_SECONDS)
        delivery.attempts += 1
        delivery.last_status_code = result.status_code
        delivery.last_error = (
            result.error[:500] if result.error else ("" if result.ok else f"HTTP {result.status_code}")
        )
        delivery.last_response = result.body[:1000]
        delay = None
        if result.ok:
            delivery.status = WebhookDelivery.Status.SUCCEEDED
            delivery.delivered_at = timezone.now()
            delivery.next_attempt_at = None
        elif delivery.attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
            delivery.status = WebhookDelivery.Status.FAILED
            delivery.next_attempt_at = None
        else:
            delay = webhook_retry_delay(delivery.attempts)
            delivery.status = WebhookDelivery.Status.RETRYING
            delivery.next_attempt_at = timezone.now() + dt.timedelta(seconds=delay)
        delivery.save()
    return delay


def webhook_redeliver(delivery: WebhookDelivery, *, by: Any) -> WebhookDelivery:
    """Send a delivery again from the log (after the receiver was fixed)."""
    with transaction.atomic():
        delivery.status = WebhookDelivery.Status.PENDING
        delivery.next_attempt_at = None
        delivery.save(update_fields=["status", "next_attempt_at"])
        audit_record(by, "webhook.redelivered", delivery.endpoint, details={"delivery": delivery.pk})

        def enqueue() -> None:
            from mailplatform.tasks import webhook_deliver

            webhook_deliver.delay(delivery.pk)

        transaction.on_commit(enqueue)
    return delivery


def webhook_send_test(endpoint: WebhookEndpoint, *, by: Any) -> WebhookDelivery:
    """Queue a sample event to one endpoint, whatever it subscribes to, so a developer can check it."""
    with transaction.atomic():
        delivery = WebhookDelivery.objects.create(
            endpoint=endpoint,
            event_id=uuid.uuid4(),
            event_type=endpoint.event_types[0] if endpoint.event_types else "delivered",
            payload={"test": True, "email": "someone@example.com"},
        )
        audit_record(by, "webhook.tested", endpoint)

        def enqueue() -> None:
            from mailplatform.tasks import webhook_deliver

            webhook_deliver.delay(delivery.pk)

        transaction.on_commit(enqueue)
    return delivery


def webhook_requeue_due(grace_seconds: int = 300) -> int:
    """Enqueue deliveries overdue by more than `grace_seconds`: their Celery wake-up was lost."""
    cutoff = timezone.now() - dt.timedelta(seconds=grace_seconds)
    due = list(
        WebhookDelivery.objects.filter(
            models.Q(status=WebhookDelivery.Status.RETRYING, next_attempt_at__lt=cutoff)
            | models.Q(status=WebhookDelivery.Status.PENDING, created_at__lt=cutoff)
        ).values_list("pk", flat=True)[:1000]
    )
    from mailplatform.tasks import webhook_deliver

    for delivery_id in due:
        webhook_deliver.delay(delivery_id)
    return len(due)


def webhook_subscribed_event_types() -> set[str]:
    """Event types at least one active endpoint wants: forwarders skip the rest cheaply."""
    wanted: set[str] = set()
    for types in WebhookEndpoint.objects.filter(active=True).values_list("event_types", flat=True):
        wanted.update(types)
    return wanted


def webhook_cursor_step(name: str, step: Callable[[dict[str, Any]], tuple[dict[str, Any], int]]) -> int:
    """Run one forwarder step under its cursor's row lock: two workers never forward the same rows.

    `step` gets the saved state and returns the new state and how many deliveries it queued; both
    commit together with those deliveries, so a crash replays nothing and loses nothing.
    """
    with transaction.atomic():
        cursor, _ = WebhookCursor.objects.select_for_update().get_or_create(name=name)
        state, queued = step(dict(cursor.state))
        cursor.state = state
        cursor.save(update_fields=["state", "updated_at"])
    return queued


def organisation_save(*, by: Any, **fields: Any) -> Any:
    """Save the organisation's details (one row), audited; templates see them at once."""
    from mailplatform.models import Organisation
    from mailplatform.selectors import _ORG_CACHE_KEY

    with transaction.atomic():
        org = Organisation.objects.select_for_update().order_by("pk").first() or Organisation()
        for name, value in fields.items():
            setattr(org, name, value.strip() if isinstance(value, str) else value)
        org.full_clean()
        org.save()
        audit_record(by, "organisation.updated", org, details={"fields": sorted(fields)})
    transaction.on_commit(lambda: cache.delete(_ORG_CACHE_KEY))
    cache.delete(_ORG_CACHE_KEY)
    return org
