"""Issue #12, Tests: the code's scopes and capabilities checked against the hand-written truth in
tests/permission_truth.py, statically (every declaration) and through HTTP (every dashboard route,
each role and anonymous). tests/api/test_permission_matrix.py runs every API operation against the
same table."""

from __future__ import annotations

import uuid

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from drf_spectacular.generators import SchemaGenerator

from mailplatform.roles import CAPABILITIES, can
from tests.permission_truth import (
    API_SCOPES,
    CAPABILITY_ROLES,
    DASHBOARD,
    DEFAULT_KEY_SCOPES,
    POST_NEEDS,
    ROLES,
)

METHODS = ("get", "post", "put", "patch", "delete")


def _schema_operations() -> dict[tuple[str, str], str | None]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return {
        (method.upper(), path): item[method].get("x-required-scope")
        for path, item in schema["paths"].items()
        for method in METHODS
        if method in item
    }


def _routes(patterns=None, namespace: str = ""):
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from _routes(entry.url_patterns, inner)
        elif isinstance(entry, URLPattern) and entry.name:
            yield f"{namespace}{entry.name}", entry


def _dashboard_routes() -> dict[str, URLPattern]:
    return {name: p for name, p in _routes() if not name.startswith(("admin:", "api:"))}


def _declared(pattern: URLPattern) -> str | None:
    callback = pattern.callback
    return getattr(callback, "required_capability", None) or getattr(
        getattr(callback, "view_class", None), "capability", None
    )


def test_every_api_operation_needs_the_scope_the_table_names():
    code = _schema_operations()
    assert sorted(set(code) - set(API_SCOPES)) == [], "API operations the truth table does not name"
    assert sorted(set(API_SCOPES) - set(code)) == [], "operations in the table the API no longer has"
    wrong = {op: (code[op], API_SCOPES[op]) for op in code if code[op] != API_SCOPES[op]}
    assert wrong == {}, "operation: (the code's scope, the table's)"


def test_every_dashboard_route_needs_the_capability_the_table_names():
    routes = _dashboard_routes()
    assert sorted(set(routes) - set(DASHBOARD)) == [], "dashboard routes the truth table does not name"
    assert sorted(set(DASHBOARD) - set(routes)) == [], "routes in the table the dashboard no longer has"
    wrong = {
        name: (_declared(p), DASHBOARD[name]) for name, p in routes.items() if _declared(p) != DASHBOARD[name]
    }
    assert wrong == {}, "route: (the code's capability, the table's)"
    assert set(POST_NEEDS) <= set(DASHBOARD)


def test_each_capability_belongs_to_the_roles_the_table_names():
    class Person:
        is_authenticated = True
        is_active = True

        def __init__(self, role):
            self.role = role

    assert set(CAPABILITIES) == set(CAPABILITY_ROLES)
    code = {cap: {role for role in ROLES if can(Person(role), cap)} for cap in CAPABILITIES}
    assert code == CAPABILITY_ROLES


@pytest.mark.django_db
def test_each_roles_keys_may_carry_the_default_scopes_the_table_names():
    from mailplatform.scopes import scope_ceiling

    assert {role: set(scope_ceiling(role)) for role in ROLES} == DEFAULT_KEY_SCOPES


def _url(name: str, pattern: URLPattern) -> str:
    """Arguments that name nothing: the role check must come before any lookup."""
    fill = {"int": 987654321, "uuid": uuid.UUID(int=1), "str": "x", "slug": "x", "path": "x"}
    kwargs = {}
    for arg, converter in pattern.pattern.converters.items():
        kind = type(converter).__name__.replace("Converter", "").lower()
        kwargs[arg] = fill.get(kind, "x")
    return reverse(name, kwargs=kwargs)


GUARDED = sorted(name for name, capability in DASHBOARD.items() if capability is not None)


@pytest.fixture
def visitor(request, client, make_user):
    role = request.param
    if role != "anonymous":
        client.force_login(make_user(role, f"{role}-visitor"))
    client.raise_request_exception = False
    return role, client


@pytest.mark.django_db
@pytest.mark.parametrize("visitor", ["anonymous", *ROLES], indirect=True)
def test_every_guarded_route_lets_in_exactly_the_roles_the_table_names(visitor):
    role, client = visitor
    routes = _dashboard_routes()
    wrong = []
    for name in GUARDED:
        url = _url(name, routes[name])
        response = client.get(url)
        if response.status_code == 405:  # an action: POST only
            response = client.post(url, {})
        status, location = response.status_code, response.get("Location", "")
        if role == "anonymous":
            allowed_here = False
            ok = status == 302 and location.startswith(reverse("login"))
        else:
            allowed_here = role in CAPABILITY_ROLES[DASHBOARD[name]]
            refused = status == 403
            ok = not refused and not location.startswith(reverse("login")) if allowed_here else refused
        if not ok:
            wrong.append((name, status, "should be let in" if allowed_here else "should be refused"))
        needs = POST_NEEDS.get(name)
        if needs and role != "anonymous" and role not in CAPABILITY_ROLES[needs]:
            posted = client.post(url, {}).status_code
            # With an id that names nothing, "not found" refuses as well (tests/security/
            # test_refused_posts.py posts to real objects).
            if posted != 403 and not (posted == 404 and routes[name].pattern.converters):
                wrong.append((name, posted, f"a POST needs {needs}"))
    assert wrong == []
