"""The platform's one error type: what a service raises when it refuses (docs/architecture.md).

A service says what went wrong once, in a `PlatformError`: a stable `code` for programs, a
`message` for people, the `field` (or location) it is about, whether trying again later can help
(`retryable`) and the HTTP `status` it means. Two places turn it into an answer, and only these:
- the API: mailplatform.api.errors.problem_exception_handler, as an RFC 9457 problem document;
- the dashboard: `form_error` puts it on the form field it names, `message_error` into the page's
  messages.
Views, API views and tasks do not translate errors themselves.

It is a ValueError, so code that guards a call with `except ValueError` (a command, a parser)
still catches every refusal. Each app's own error classes (EmailError, TemplateError, ...) derive
from the classes here and keep their names.
"""

from __future__ import annotations

from typing import Any


class PlatformError(ValueError):
    """A refusal: `code`, `message`, `field`, `retryable`, `status` (see the module docstring)."""

    default_code = "invalid"
    default_status = 400
    default_field = ""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        field: str = "",
        status: int | None = None,
        retryable: bool = False,
        messages: list[str] | None = None,
        errors: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.field = field or self.default_field
        self.status = status or self.default_status
        self.retryable = retryable
        # Several problems found at once (a campaign's review); `message` joins them.
        self.messages = list(messages) if messages else [message]
        # Each problem with its field, when they are about different fields (a model's checks).
        self.errors = list(errors) if errors else [(self.field, m) for m in self.messages]

    def __str__(self) -> str:
        return self.message

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "field": self.field,
            "retryable": self.retryable,
            "status": self.status,
        }


class Invalid(PlatformError):
    """What was asked for is malformed or not allowed (400), usually naming the field."""


class Conflict(PlatformError):
    """The object's current state forbids it (409): a campaign already sending, a name taken."""

    default_code = "conflict"
    default_status = 409


class NotFound(PlatformError):
    """Something the request names does not exist (404)."""

    default_code = "not_found"
    default_status = 404


class Unavailable(PlatformError):
    """A service the platform needs did not answer (503); the same request may work later."""

    default_code = "unavailable"
    default_status = 503

    def __init__(self, message: str, **kwargs: Any) -> None:
        kwargs.setdefault("retryable", True)
        super().__init__(message, **kwargs)


def model_checked(instance: Any) -> None:
    """Run the model's own checks (full_clean); a refusal is an Invalid naming each bad field."""
    from django.core.exceptions import ValidationError

    try:
        instance.full_clean()
    except ValidationError as exc:
        errors = [
            ("" if field == "__all__" else field, message)
            for field, messages in exc.message_dict.items()
            for message in messages
        ]
        raise Invalid(
            "; ".join(m for _, m in errors),
            field=errors[0][0],
            messages=[m for _, m in errors],
            errors=errors,
        ) from None


# --- the dashboard's mapping (the API's is in mailplatform/api/errors.py) ---


def form_error(form: Any, error: PlatformError) -> None:
    """Put each of the error's problems on the form field it names, or on the form as a whole."""
    for field, message in error.errors:
        form.add_error(field if field in form.fields else None, message)


def message_error(request: Any, error: PlatformError, prefix: str = "") -> None:
    """The error as a message on the next page (for actions without a form)."""
    from django.contrib import messages

    messages.error(request, f"{prefix}{' '.join(error.messages)}")
