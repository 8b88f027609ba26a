"""Probes answered before the rest of the middleware."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse


class ProbeMiddleware:
    """/healthz and /readyz answer whatever the Host header: orchestrators probe by the pod or
    container address, which ALLOWED_HOSTS rightly does not list. Nothing else skips the host check."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path in ("/healthz", "/readyz"):
            from mailplatform import views

            return (views.healthz if request.path == "/healthz" else views.readyz)(request)
        return self.get_response(request)
