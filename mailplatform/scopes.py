"""API key scopes, each tied to the role capability a person needs to grant it.

A key never does more than its scopes, and its scopes never exceed its creator's ceiling: checked
when the key is created and again on every request (a demoted creator's keys, or those of a role
whose ceiling an admin lowered, shrink with them).

Admins may grant every scope. Every other role has a ceiling an admin decides (Settings > API key
limits, the ScopeCeiling table, audited): by default the scopes matching what the role may do in
the dashboard, so a developer who cannot edit contacts cannot mint a `contacts:write` key until an
admin allows it. Admin-only scopes (relays) are never in a non-admin's ceiling.
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


def default_ceiling(role: str) -> list[str]:
    """A non-admin role's ceiling until an admin sets one: what the role may do in the dashboard."""
    return [name for name, scope in SCOPES.items() if role in CAPABILITIES[scope.capability]]


def ceiling_choices() -> list[str]:
    """The scopes an admin may put in a non-admin role's ceiling: every one but the admin-only."""
    return [name for name in SCOPES if not is_admin_only(name)]


def scope_ceiling(role: str) -> frozenset[str]:
    """The scopes a user of `role` may hold (and so give a key): one small read per call."""
    if role == Role.ADMIN:
        return frozenset(SCOPES)
    if role not in Role.values:
        return frozenset()
    from mailplatform.models import ScopeCeiling

    stored = ScopeCeiling.objects.filter(role=role).values_list("scopes", flat=True).first()
    chosen = default_ceiling(role) if stored is None else stored
    allowed = set(ceiling_choices())
    return frozenset(name for name in chosen if name in allowed)


def role_may_grant(role: str, scope: str) -> bool:
    """May a user of `role` hold (and so give a key) `scope`?"""
    return scope in SCOPES and scope in scope_ceiling(role)


def grantable_scopes(role: str) -> list[str]:
    ceiling = scope_ceiling(role)
    return [name for name in SCOPES if name in ceiling]
