"""API key scopes, each tied to the role capability a person needs to grant it.

A key never does more than its scopes, and its scopes never exceed what its creator's role allows:
checked when the key is created and again on every request (a demoted creator's keys shrink with them).
Developers integrate the platform on behalf of the team, so they may grant any scope except the
admin-only ones (relays, users, bounce policy, audit log), even those their own dashboard role lacks.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailplatform.roles import CAPABILITIES, Role


@dataclass(frozen=True)
class Scope:
    name: str
    capability: str
    description: str


SCOPES: dict[str, Scope] = {
    scope.name: scope
    for scope in [
        Scope("contacts:read", "view_dashboard", "Read contacts, lists, segments, suppressions and imports"),
        Scope("contacts:write", "manage_contacts", "Create, change, import, unsubscribe and erase contacts"),
        Scope("templates:read", "view_dashboard", "Read templates and render previews"),
        Scope("templates:write", "manage_templates", "Create, change and delete templates"),
        Scope("campaigns:read", "view_dashboard", "Read campaigns and their reports"),
        Scope("campaigns:write", "manage_campaigns", "Create, schedule, send, pause and cancel campaigns"),
        Scope("automations:read", "view_dashboard", "Read automations, their steps, counts and runs"),
        Scope(
            "automations:write",
            "manage_campaigns",
            "Activate, pause and archive automations; add contacts to them and take them out",
        ),
        Scope("events:write", "manage_contacts", "Post application events (they start automations)"),
        Scope("send", "send_mail", "Send transactional mail"),
        Scope("events:read", "view_dashboard", "Read bounces and message events"),
        Scope("webhooks:manage", "manage_webhooks", "Manage webhook subscriptions and read their deliveries"),
        Scope("relays:admin", "manage_relays", "Read and change SMTP relays (admin only)"),
    ]
}
SCOPE_CHOICES = [(scope.name, f"{scope.name}: {scope.description}") for scope in SCOPES.values()]


def is_admin_only(scope: str) -> bool:
    return CAPABILITIES[SCOPES[scope].capability] == frozenset({Role.ADMIN})


def role_may_grant(role: str, scope: str) -> bool:
    """May a user of `role` hold (and so give a key) `scope`?"""
    if scope not in SCOPES:
        return False
    if role in CAPABILITIES[SCOPES[scope].capability]:
        return True
    return role == Role.DEVELOPER and not is_admin_only(scope)


def grantable_scopes(role: str) -> list[str]:
    return [name for name in SCOPES if role_may_grant(role, name)]
