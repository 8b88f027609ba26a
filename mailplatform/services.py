"""Writes that belong to the platform itself: the audit log, users, captured mail, login throttling."""

from __future__ import annotations

import email
import email.policy
import secrets
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import models, transaction

from mailplatform.models import AuditEntry, CapturedMessage, User
from mailplatform.roles import Role


def audit_record(
    actor: Any,
    action: str,
    target: models.Model | None = None,
    *,
    details: dict[str, Any] | None = None,
    ip_address: str | None = None,
) -> AuditEntry:
    """Record that `actor` (a user, or None for the system) did `action` to `target`."""
    is_user = isinstance(actor, User)
    return AuditEntry.objects.create(
        actor=actor if is_user else None,
        actor_label=actor.get_username() if is_user else str(actor or "system"),
        action=action,
        target_type=target._meta.label if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_label=str(target)[:300] if target is not None else "",
        details=details or {},
        ip_address=ip_address,
    )


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
    )


# --- Login throttling: failures counted per username and per client address in Redis ---


def _throttle_keys(username: str, ip_address: str | None) -> list[str]:
    keys = [f"login-failures:user:{username.strip().lower()}"]
    if ip_address:
        keys.append(f"login-failures:ip:{ip_address}")
    return keys


def login_is_locked(username: str, ip_address: str | None) -> bool:
    limit = settings.LOGIN_MAX_FAILURES
    # The per-address limit is wider: an office shares one address.
    counts = cache.get_many(_throttle_keys(username, ip_address))
    user_count = counts.get(_throttle_keys(username, None)[0], 0)
    ip_count = sum(v for k, v in counts.items() if k.startswith("login-failures:ip:"))
    return user_count >= limit or ip_count >= limit * 4


def login_failed(username: str, ip_address: str | None) -> None:
    for key in _throttle_keys(username, ip_address):
        cache.add(key, 0, timeout=settings.LOGIN_LOCKOUT_SECONDS)
        cache.incr(key)


def login_succeeded(username: str) -> None:
    cache.delete(_throttle_keys(username, None)[0])
