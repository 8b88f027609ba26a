"""Cursor pagination: stable under inserts, and a page costs the same at row 10 and row 10 million."""

from __future__ import annotations

import base64

from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination

MAX_PAGE_SIZE = 1000


class IdCursorPagination(CursorPagination):
    ordering = "-id"
    page_size = 100
    page_size_query_param = "limit"
    max_page_size = MAX_PAGE_SIZE
    page_size_query_description = f"Items per page, 1 to {MAX_PAGE_SIZE} (default 100)."
    cursor_query_description = "The `next` or `previous` cursor of the page before."

    def get_page_size(self, request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if not 1 <= value <= self.max_page_size:
            raise ValidationError({"limit": [f"Must be an integer from 1 to {self.max_page_size}."]})
        return value

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except NotFound as exc:
            raise ValidationError(
                {"cursor": ["Invalid cursor: pass a `next` or `previous` value as given."]}
            ) from exc

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": self.max_page_size}
        return parameters


class AscendingIdCursorPagination(IdCursorPagination):
    ordering = "id"


# --- Keyset pages from an app's own selector (e.g. contacts_page(after_id=..., before_id=...)) ---


def encode_keyset_cursor(direction: str, key: int) -> str:
    return base64.urlsafe_b64encode(f"{direction}:{key}".encode()).decode().rstrip("=")


def decode_keyset_cursor(raw: str | None) -> tuple[str, int] | None:
    """("after" | "before", id) from a cursor this API gave out; 400 naming `cursor` otherwise."""
    if not raw:
        return None
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        direction, _, key = text.partition(":")
        if direction in ("after", "before"):
            return direction, int(key)
    except (ValueError, UnicodeDecodeError):
        pass
    raise ValidationError({"cursor": ["Invalid cursor: pass a `next` or `previous` value as given."]})


def keyset_page_size(request) -> int:
    return IdCursorPagination().get_page_size(request)


def keyset_response(
    request, results: list, *, first_id: int | None, last_id: int | None, newer: bool, older: bool
):
    """The same envelope as IdCursorPagination: {"next", "previous", "results"}, newest first."""
    from rest_framework.response import Response
    from rest_framework.utils.urls import replace_query_param

    url = request.build_absolute_uri()

    def link(direction: str, key: int | None) -> str | None:
        if key is None:
            return None
        return replace_query_param(url, "cursor", encode_keyset_cursor(direction, key))

    return Response(
        {
            "next": link("after", last_id) if older else None,
            "previous": link("before", first_id) if newer else None,
            "results": results,
        }
    )
