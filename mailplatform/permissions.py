"""Access checks for views: log in first, then the role's capability, else 403."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.mixins import AccessMixin
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from mailplatform.roles import CAPABILITIES, can


def public(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Mark a view anyone may open without logging in (the login's own pages, password reset)."""
    view.public_endpoint = True  # type: ignore[attr-defined]
    return view


def requires(capability: str) -> Callable:
    if capability not in CAPABILITIES:
        raise KeyError(f"unknown capability {capability!r}")

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not can(request.user, capability):
                raise PermissionDenied(f"Your role may not {capability.replace('_', ' ')}.")
            return view(request, *args, **kwargs)

        wrapped.required_capability = capability  # type: ignore[attr-defined]
        return wrapped

    return decorator


class CapabilityRequiredMixin(AccessMixin):
    """For class-based views: set `capability`."""

    capability: str = "view_dashboard"

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        if not can(request.user, self.capability):
            raise PermissionDenied(f"Your role may not {self.capability.replace('_', ' ')}.")
        return super().dispatch(request, *args, **kwargs)
