"""API key authentication and the scope check every endpoint goes through."""

from __future__ import annotations

from typing import Any

from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from mailplatform import selectors, services
from mailplatform.models import ApiKey
from mailplatform.scopes import role_may_grant


class ApiKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer phk_<prefix>_<secret>`; the request runs as the key's creator."""

    def authenticate(self, request: Request) -> tuple[Any, ApiKey] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != b"bearer":
            return None
        if len(parts) != 2:
            raise AuthenticationFailed("Malformed Authorization header: send `Bearer <API key>`.")
        try:
            raw = parts[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise AuthenticationFailed("Invalid API key.") from exc
        key = selectors.api_key_by_full_key(raw)
        if key is None:
            raise AuthenticationFailed("Invalid API key.")
        problem = selectors.api_key_problem(key)
        if problem:
            raise AuthenticationFailed(problem)
        services.api_key_touch(key)
        return key.created_by, key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="posthorn"'


def required_scope(view: Any, method: str) -> str | None:
    """The scope `view` needs for `method`: per action first, then read or write."""
    action = getattr(view, "action", None)
    action_scopes = getattr(view, "action_scopes", {}) or {}
    if action and action in action_scopes:
        return action_scopes[action]
    if method.upper() in SAFE_METHODS:
        return getattr(view, "read_scope", None)
    return getattr(view, "write_scope", None)


class HasScope(BasePermission):
    """The key must carry the view's scope, and its creator's role must (still) allow that scope.

    Checked before any object is looked up, so a key without the scope learns nothing, not even
    whether an id exists.
    """

    message = "This API key may not do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        key = request.auth
        if not isinstance(key, ApiKey):
            return False
        if getattr(view, "no_scope_required", False):
            return True
        scope = required_scope(view, request.method or "GET")
        if scope is None:
            return False  # a view that forgot to declare its scope is closed, not open
        if scope not in key.scopes:
            self.message = f"This API key lacks the scope `{scope}`."
            return False
        if not role_may_grant(request.user.role, scope):
            self.message = f"The role of this key's owner no longer allows the scope `{scope}`."
            return False
        return True


def require_scope(request: Request, scope: str) -> None:
    """A second scope an operation needs for part of what it does (a preview that reads a contact
    needs `contacts:read` besides `templates:read`): refused with 403 like the view's own scope."""
    from rest_framework.exceptions import PermissionDenied

    key = request.auth
    if key is None or scope not in key.scopes:
        raise PermissionDenied(f"This API key lacks the scope `{scope}`.")
    if not role_may_grant(request.user.role, scope):
        raise PermissionDenied(f"The role of this key's owner no longer allows the scope `{scope}`.")
