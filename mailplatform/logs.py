"""Structured logs: LOG_FORMAT=json writes one JSON object per line, with the ids in scope.

Ids are bound in a context variable (`bind(mailing=..., relay=...)`) and every record logged while
they are bound carries them: the web's RequestIdMiddleware binds `request_id` and `user`; a task
published during a request carries the request id in a message header and the worker binds it with
`task_id` and `task` (mailplatform/celery.py connects the signals); delivery binds `mailing` and
`relay`. The formatter scrubs credentials from the text (URL passwords, bearer tokens, API keys):
nothing secret reaches the log even when an exception message quotes a URL.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "posthorn_log_context", default=None
)

FIELDS = ("request_id", "user", "task_id", "task", "mailing", "message_id", "relay")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
_SCRUB = [
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@", re.I), r"\1***@"),  # scheme://user:pass@
    (re.compile(r"(\bBearer\s+)\S+", re.I), r"\1***"),
    (re.compile(r"\bphk_[A-Za-z0-9]+_[A-Za-z0-9_-]+"), "phk_***"),
    (re.compile(r"((?:password|passwd|secret|token)\s*[=:]\s*)\S+", re.I), r"\1***"),
]


def scrub(text: str) -> str:
    for pattern, replacement in _SCRUB:
        text = pattern.sub(replacement, text)
    return text


def current() -> dict[str, Any]:
    return dict(_context.get() or {})


@contextmanager
def bind(**ids: Any) -> Iterator[None]:
    """Add ids to every log record inside the block (None values are left out)."""
    token = _context.set({**(_context.get() or {}), **{k: v for k, v in ids.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        context = _context.get() or {}
        for field in FIELDS:
            value = getattr(record, field, None)
            if value is None:
                value = context.get(field)
            if callable(value):  # resolved only when a record is written (see LogUserMiddleware)
                value = value()
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["exc"] = scrub(self.formatException(record.exc_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


def new_request_id(offered: str | None) -> str:
    """The caller's X-Request-ID when it looks like one (a proxy's), else a fresh one."""
    if offered and _REQUEST_ID.match(offered):
        return offered
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Binds a request id (echoed as X-Request-ID) for the request's logs; first in MIDDLEWARE."""

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response

    def __call__(self, request):
        request_id = new_request_id(request.headers.get("X-Request-ID"))
        request.request_id = request_id
        with bind(request_id=request_id):
            response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


class LogUserMiddleware:
    """After AuthenticationMiddleware: logs name the user's id. Lazily: a request that never looked
    at its user (tracking pixels, static files) does not load the session just for its log lines."""

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response

    def __call__(self, request):
        def user_id() -> int | None:
            from django.utils.functional import empty

            user = request.__dict__.get("user")
            wrapped = getattr(user, "_wrapped", user)
            if wrapped is None or wrapped is empty:  # never looked at: leave it unloaded
                return None
            return wrapped.pk if getattr(wrapped, "is_authenticated", False) else None

        with bind(user=user_id):
            return self.get_response(request)


# --- Celery: the request id travels in a header; task logs carry it with the task's own ids ---


def task_headers(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """before_task_publish: put the current request id into the task message's headers."""
    request_id = (_context.get() or {}).get("request_id")
    if headers is not None and request_id and "request_id" not in headers:
        headers["request_id"] = request_id


_task_tokens: dict[str, contextvars.Token] = {}


def task_started(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    """task_prerun: bind the task's ids (and the request id it was published under)."""
    request_id = getattr(getattr(task, "request", None), "request_id", None)
    ids = {"task_id": task_id, "task": getattr(task, "name", None), "request_id": request_id}
    _task_tokens[task_id or ""] = _context.set({k: v for k, v in ids.items() if v is not None})


def task_finished(task_id: str | None = None, **_: Any) -> None:
    token = _task_tokens.pop(task_id or "", None)
    if token is not None:
        _context.reset(token)


def use_json_on_handlers(logger: logging.Logger | None = None, **_: Any) -> None:
    """after_setup_logger / after_setup_task_logger: Celery's own handlers write JSON too."""
    if logger is None:
        return
    for handler in logger.handlers:
        handler.setFormatter(JsonFormatter())
