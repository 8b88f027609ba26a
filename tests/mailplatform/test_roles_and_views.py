"""Every dashboard view checks the role; anonymous users are sent to log in."""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from mailplatform.roles import CAPABILITIES, Role, can
from tests.dbstate import changed_tables, db_fingerprint

PUBLIC_PREFIXES = (
    "login",
    "logout",
    "healthz",
    "readyz",
    "admin",
    "static",
    "public",
    "api",
    "t/",
    "u/",
    "track",
)


def _walk(patterns, prefix=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry


def _dashboard_views():
    for route, pattern in _walk(get_resolver().url_patterns):
        if route.startswith(PUBLIC_PREFIXES) or getattr(pattern.callback, "public_endpoint", False):
            continue
        yield route, pattern


def test_every_dashboard_view_declares_a_capability():
    missing = [
        route
        for route, pattern in _dashboard_views()
        if not getattr(pattern.callback, "required_capability", None)
        and not getattr(getattr(pattern.callback, "view_class", None), "capability", None)
    ]
    assert missing == [], f"views without a role check: {missing}"


def test_capabilities_by_role():
    class U:
        is_authenticated = True
        is_active = True

    admin, marketer, developer = U(), U(), U()
    admin.role, marketer.role, developer.role = Role.ADMIN, Role.MARKETER, Role.DEVELOPER
    assert all(can(admin, c) for c in CAPABILITIES)
    assert can(marketer, "manage_campaigns") and not can(marketer, "manage_relays")
    assert not can(marketer, "manage_api_keys")
    assert can(developer, "manage_api_keys") and can(developer, "view_dashboard")
    assert not can(developer, "manage_contacts") and not can(developer, "manage_users")


@pytest.mark.django_db
def test_anonymous_is_sent_to_login(client):
    response = client.get(reverse("home"))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["users", "audit-log"])
def test_admin_pages_refuse_marketers_and_developers(marketer_client, name):
    assert marketer_client.get(reverse(name)).status_code == 403


@pytest.mark.django_db
def test_developer_cannot_manage_users(developer_client, make_user):
    target = make_user("marketer", "target")
    assert developer_client.get(reverse("users")).status_code == 403
    before = db_fingerprint()
    assert (
        developer_client.post(
            reverse("users"), {"username": "x", "email": "x@example.com", "role": "admin"}
        ).status_code
        == 403
    )
    assert (
        developer_client.post(reverse("user-update", args=[target.pk]), {"role": "admin"}).status_code == 403
    )
    assert changed_tables(before) == []  # no user made, no role changed


@pytest.mark.django_db
def test_admin_creates_user_shown_password_once_and_audited(admin_client):
    from mailplatform.models import AuditEntry, User

    response = admin_client.post(
        reverse("users"), {"username": "newbie", "email": "n@example.com", "role": "developer"}
    )
    assert response.status_code == 200
    user = User.objects.get(username="newbie")
    assert user.role == "developer" and not user.is_staff
    password = response.context["new_password"]
    assert user.check_password(password)
    assert AuditEntry.objects.filter(
        action="user.created", target_id=str(user.pk), actor_label="boss"
    ).exists()
    assert password not in admin_client.get(reverse("users")).content.decode()


@pytest.mark.django_db
def test_role_change_controls_django_admin_access(admin_client, make_user):
    user = make_user("marketer", "promote-me")
    admin_client.post(reverse("user-update", args=[user.pk]), {"role": "admin"})
    user.refresh_from_db()
    assert user.role == "admin" and user.is_staff and user.is_superuser


@pytest.mark.django_db
def test_audit_page_lists_entries_for_admin(admin_client, admin_user):
    from mailplatform.services import audit_record

    audit_record(admin_user, "contacts.exported", details={"rows": 3})
    page = admin_client.get(reverse("audit-log") + "?action=contacts").content.decode()
    assert "Contacts exported" in page and "rows: 3" in page and "boss" in page


@pytest.mark.django_db
def test_home_shows_service_state(admin_client):
    page = admin_client.get(reverse("home")).content.decode()
    assert "Database" in page and "Redis" in page and "Worker" in page


@pytest.mark.django_db
def test_logout_needs_post_with_csrf(client, make_user):
    from django.test import Client

    user = make_user("marketer", "csrf-user")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.post(reverse("logout")).status_code == 403
