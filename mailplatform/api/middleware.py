"""Refuse oversized API bodies by their Content-Length before anything reads them, and tell each
key where it stands against its rate limit (RateLimit-Limit / RateLimit-Remaining headers)."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from mailplatform.api.errors import problem_response

API_PREFIX = "/api/"


class ApiBodyLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(API_PREFIX):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return problem_response(400, "The Content-Length header is not a number.", code="parse_error")
            multipart = request.content_type == "multipart/form-data"
            limit = settings.API_MAX_UPLOAD_BYTES if multipart else settings.API_MAX_BODY_BYTES
            if length > limit:
                return problem_response(
                    413,
                    f"The request body is larger than {limit} bytes.",
                    code="payload_too_large",
                    instance=request.path,
                )
        response = self.get_response(request)
        rate = getattr(request, "api_rate_limit", None)
        if rate is not None:
            response["RateLimit-Limit"] = str(rate[0])
            response["RateLimit-Remaining"] = str(rate[1])
        return response
