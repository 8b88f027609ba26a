"""Every API error as an RFC 9457 problem details document (application/problem+json).

This is where the platform's own error (mailplatform.errors.PlatformError, raised by services) is
turned into an answer for the API; the dashboard's mapping is in mailplatform/errors.py.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error

from mailplatform.errors import PlatformError

logger = logging.getLogger(__name__)
PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "urn:posthorn:problem:"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state of the resource."
    default_code = "conflict"


def flatten_errors(detail: Any, path: str = "") -> list[dict[str, str]]:
    """DRF's nested error detail as a flat list of {field, message}; `contacts[3].email` style paths."""
    if isinstance(detail, dict):
        items: list[dict[str, str]] = []
        for key, value in detail.items():
            if key in ("non_field_errors", "__all__"):
                name = path
            elif isinstance(key, int):
                name = f"{path}[{key}]"  # ListField errors are keyed by index
            elif str(key).startswith("["):
                name = f"{path}{key}"  # a field that names rows itself, e.g. "[3].email"
            else:
                name = f"{path}.{key}" if path else str(key)
            items.extend(flatten_errors(value, name))
        return items
    if isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            return [{"field": path, "message": str(item)} for item in detail]
        items = []
        for index, item in enumerate(detail):
            if item:
                items.extend(flatten_errors(item, f"{path}[{index}]"))
        return items
    return [{"field": path, "message": str(detail)}]


def problem(status_code: int, detail: str, *, code: str, instance: str = "", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": HTTPStatus(status_code).phrase,
        "status": status_code,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return body


# The problem `type` by status, as DRF's own exceptions name theirs, so a client that matched on
# `urn:posthorn:problem:conflict` before services raised PlatformError still matches.
_TYPE_BY_STATUS = {400: "validation_error", 404: "not_found", 409: "conflict", 503: "unavailable"}


def platform_problem(exc: PlatformError, instance: str = "") -> tuple[dict[str, Any], int]:
    """A service's refusal as a problem document: a 400 in the validation shape (`errors` naming the
    field), any other status with its detail; both carry the error's `code` and `retryable`."""
    if exc.status == 400:
        errors = [{"field": field, "message": message} for field, message in exc.errors]
        shown = "; ".join(f"{e['field'] or 'body'}: {e['message']}" for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        body = problem(
            400, f"Invalid input. {shown}{more}", code="validation_error", instance=instance, errors=errors
        )
    else:
        kind = _TYPE_BY_STATUS.get(exc.status, exc.code)
        body = problem(exc.status, exc.message, code=kind, instance=instance)
        if exc.field:
            body["field"] = exc.field
    # Extension members (RFC 9457 section 3.2): the service's own code, and whether to retry.
    body["code"], body["retryable"] = exc.code, exc.retryable
    return body, exc.status


def _as_api_exception(exc: Exception) -> exceptions.APIException | None:
    if isinstance(exc, exceptions.APIException):
        return exc
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied()
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge()
    if isinstance(exc, DjangoValidationError):
        return exceptions.ValidationError(detail=as_serializer_error(exc))
    return None


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    request = context.get("request")
    instance = request.path if request is not None else ""
    if isinstance(exc, PlatformError):
        body, status_code = platform_problem(exc, instance)
        return Response(body, status=status_code, content_type=PROBLEM_CONTENT_TYPE)
    api_exc = _as_api_exception(exc)
    if api_exc is None:
        logger.exception("Unhandled error in %s", instance, exc_info=exc)
        body = problem(500, "The server failed to handle this request; it was logged.", code="server_error")
        return Response(body, status=500, content_type=PROBLEM_CONTENT_TYPE)
    headers: dict[str, str] = {}
    if isinstance(api_exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        view = context.get("view")
        authenticate = (
            view.get_authenticate_header(request) if view is not None and request is not None else None
        )
        if authenticate:
            headers["WWW-Authenticate"] = authenticate
            api_exc.status_code = status.HTTP_401_UNAUTHORIZED
    wait = getattr(api_exc, "wait", None)
    if isinstance(api_exc, exceptions.Throttled) and wait:
        headers["Retry-After"] = str(int(wait))
    code = api_exc.default_code
    if isinstance(api_exc, exceptions.ValidationError):
        errors = flatten_errors(api_exc.detail)
        shown = "; ".join(f"{e['field'] or 'body'}: {e['message']}" for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        body = problem(
            400, f"Invalid input. {shown}{more}", code="validation_error", instance=instance, errors=errors
        )
    else:
        detail = api_exc.detail
        text = detail if isinstance(detail, str) else "; ".join(e["message"] for e in flatten_errors(detail))
        if isinstance(api_exc, exceptions.Throttled):
            text = f"Rate limit exceeded for this API key. Retry after {headers.get('Retry-After', '1')} seconds."
        body = problem(api_exc.status_code, str(text), code=str(code), instance=instance)
    return Response(body, status=api_exc.status_code, headers=headers, content_type=PROBLEM_CONTENT_TYPE)


def problem_response(status_code: int, detail: str, *, code: str, instance: str = "") -> JsonResponse:
    """For code outside DRF views (middleware, the catch-all)."""
    return JsonResponse(
        problem(status_code, detail, code=code, instance=instance),
        status=status_code,
        content_type=PROBLEM_CONTENT_TYPE,
    )
