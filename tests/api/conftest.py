"""API test helpers: keys per role and scope, and clients that send them."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from rest_framework.test import APIClient


@pytest.fixture
def make_key(make_user) -> Callable[..., tuple[object, str]]:
    """make_key(role, scopes, **kwargs) -> (ApiKey, full key); the owner is a fresh user of `role`."""
    from mailplatform.scopes import role_may_grant
    from mailplatform.services import api_key_create

    def make(role: str = "developer", scopes: list[str] | None = None, user=None, **kwargs):
        owner = user or make_user(role)
        chosen = scopes if scopes is not None else [s for s in _all_scopes() if role_may_grant(owner.role, s)]
        return api_key_create(user=owner, name=kwargs.pop("name", "test key"), scopes=chosen, **kwargs)

    return make


def _all_scopes() -> list[str]:
    from mailplatform.scopes import SCOPES

    return list(SCOPES)


@pytest.fixture
def api_client_for(make_key) -> Callable[..., APIClient]:
    """api_client_for(role, scopes) -> an APIClient sending that key."""

    def make(role: str = "admin", scopes: list[str] | None = None, **kwargs) -> APIClient:
        _, full_key = make_key(role, scopes, **kwargs)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {full_key}")
        return client

    return make


@pytest.fixture
def api(api_client_for) -> APIClient:
    """An admin's key with every scope."""
    return api_client_for("admin")
