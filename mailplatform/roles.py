"""Roles and what each may do. Every view and endpoint asks `can(user, capability)`."""

from __future__ import annotations

from typing import Any

from django.db import models


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    MARKETER = "marketer", "Marketer"
    DEVELOPER = "developer", "Developer"


ALL = frozenset(Role)
EDITORS = frozenset({Role.ADMIN, Role.MARKETER})

# Developers read the whole dashboard but change only API keys and webhooks.
CAPABILITIES: dict[str, frozenset[Role]] = {
    "view_dashboard": ALL,
    "manage_contacts": EDITORS,
    "manage_templates": EDITORS,
    "manage_campaigns": EDITORS,
    "send_mail": EDITORS,
    "manage_api_keys": frozenset({Role.ADMIN, Role.DEVELOPER}),
    "manage_webhooks": frozenset({Role.ADMIN, Role.DEVELOPER}),
    "manage_relays": frozenset({Role.ADMIN}),
    "manage_bounce_policy": frozenset({Role.ADMIN}),
    "manage_users": frozenset({Role.ADMIN}),
    "view_audit_log": frozenset({Role.ADMIN}),
}


def can(user: Any, capability: str) -> bool:
    if capability not in CAPABILITIES:
        raise KeyError(f"unknown capability {capability!r}")
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    return user.role in CAPABILITIES[capability]
