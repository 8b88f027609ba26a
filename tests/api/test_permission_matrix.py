"""Every API operation x every scope x every role of the key's owner: allowed exactly when the key
carries the operation's scope and the owner's role may hold it; otherwise 403 (401 without a key).

Operations come from the OpenAPI schema, so an endpoint added later is run without editing this;
what each needs, and what each role's keys may carry, comes from the hand-written truth in
tests/permission_truth.py (never from the code's own declarations), where a new operation must be
named before tests/security/test_permission_truth.py passes.
"""

from __future__ import annotations

import re

import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from mailplatform.models import User
from mailplatform.roles import Role
from mailplatform.scopes import SCOPES
from mailplatform.services import api_key_create
from tests.permission_truth import API_SCOPES, DEFAULT_KEY_SCOPES

pytestmark = pytest.mark.django_db
METHODS = ("get", "post", "put", "patch", "delete")


def _operations() -> list[tuple[str, str, str | None, dict]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    operations = []
    for path, item in schema["paths"].items():
        for method in METHODS:
            if method in item:
                op = item[method]
                # The truth table's scope; an operation it does not name needs one nobody holds.
                operations.append((method, path, API_SCOPES.get((method.upper(), path), "(unnamed)"), op))
    return operations


def _concrete(path: str, op: dict) -> str:
    """Fill path parameters with values that name nothing: the check must come before any lookup."""
    kinds = {p["name"]: p.get("schema", {}) for p in op.get("parameters", []) if p.get("in") == "path"}

    def fill(match: re.Match) -> str:
        schema = kinds.get(match.group(1), {})
        if schema.get("type") == "integer":
            return "987654321"
        if schema.get("format") == "uuid":
            return "00000000-0000-4000-8000-000000000000"
        return "no-such-thing"

    return re.sub(r"\{(\w+)\}", fill, path)


def _call(client: APIClient, method: str, url: str):
    if method in ("get", "delete"):
        return getattr(client, method)(url)
    return getattr(client, method)(url, {}, format="json")


OPERATIONS = _operations()


def test_the_matrix_covers_the_api():
    assert len(OPERATIONS) >= 5
    undeclared = [f"{m.upper()} {p}" for m, p, scope, op in OPERATIONS if scope is None and "key" not in p]
    assert undeclared == [], f"operations without a required scope: {undeclared}"
    unnamed = [f"{m.upper()} {p}" for m, p, scope, op in OPERATIONS if scope == "(unnamed)"]
    assert unnamed == [], f"operations tests/permission_truth.py does not name: {unnamed}"
    unknown = {scope for _, _, scope, _ in OPERATIONS if scope and scope not in SCOPES}
    assert not unknown


def test_every_operation_refuses_a_request_without_a_key():
    client = APIClient()
    wrong = []
    for method, path, _scope, op in OPERATIONS:
        status = _call(client, method, _concrete(path, op)).status_code
        if status != 401:
            wrong.append((method.upper(), path, status))
    assert wrong == []


@pytest.mark.parametrize("role", [Role.ADMIN, Role.DEVELOPER, Role.MARKETER])
def test_every_operation_by_scope_for_owners_of_each_role(role, make_user):
    owner = make_user("admin", f"owner-{role}")
    clients = {}
    for scope in SCOPES:
        _, full_key = api_key_create(user=owner, name=scope, scopes=[scope], rate_limit_per_minute=1_000_000)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {full_key}")
        clients[scope] = client
    # The owner's role now decides, as it would after a change of role.
    User.objects.filter(pk=owner.pk).update(role=role)
    wrong = []
    for method, path, required, op in OPERATIONS:
        url = _concrete(path, op)
        for scope, client in clients.items():
            allowed = required is None or (scope == required and scope in DEFAULT_KEY_SCOPES[role])
            status = _call(client, method, url).status_code
            if allowed and status in (401, 403):
                wrong.append((method.upper(), path, scope, status, "should be allowed"))
            elif not allowed and status != 403:
                wrong.append((method.upper(), path, scope, status, "should be 403"))
            elif status >= 500:
                wrong.append((method.upper(), path, scope, status, "server error"))
    assert wrong == []
