"""Bulk upsert of contacts given as rows (the API's `POST /contacts/bulk`), through the import.

The rows go as cells straight from memory into the import's COPY (`run_import_rows`: staging
table, one merge in one transaction), no file in between: 10,000 rows cost what an import of them
costs, not 10,000 serializer saves. The import's bad rows come back as indexes into the caller's rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from contacts.imports import STANDARD_TARGETS, ImportFileError, ImportResult, run_import_rows
from mailplatform.services import audit_record


def contacts_bulk_upsert(
    rows: list[dict[str, Any]], *, mode: str, list_ids: list[int], by: Any, via: str = "api"
) -> tuple[ImportResult, list[dict[str, Any]]]:
    """Merge the rows; returns the import's result and its bad rows ({index, email, message}), in order.

    Raises ImportFileError (field `contacts`) when the rows as a whole cannot be imported.
    """
    header, records = _bulk_records(rows)
    mapping = {str(i): target for i, target in enumerate(header)}
    label = f"{via} bulk upsert by {getattr(by, 'username', 'system')}"[:300]
    bad: list[tuple[int, list[str], str]] = []
    try:
        result = run_import_rows(
            header, records, mode=mode, list_ids=list_ids, mapping=mapping, label=label,
            size_hint=100 * len(rows), bad_rows=bad,
        )  # fmt: skip
    except ImportFileError as exc:
        exc.field = "contacts"  # the caller sent rows, not a file
        raise
    # Row 2 is the first (index 0), as in a file; the email is the first cell, as it was sent.
    errors = [
        {"index": row - 2, "email": cells[0] if cells else "", "message": reason}
        for row, cells, reason in bad
    ]
    audit_record(by, "contacts.bulk_upserted", details={**result.counts(), "via": via})
    return result, sorted(errors, key=lambda e: e["index"])


def _bulk_records(rows: list[dict[str, Any]]) -> tuple[list[str], Iterator[list[str]]]:
    """(header, the rows' cells in header order) as a CSV of them would give the import."""
    attribute_names = sorted({name for row in rows for name in (row.get("attributes") or {})})
    for name in attribute_names:
        if not name or len(name) > 64 or not all(ch.isalnum() or ch in "_-" for ch in name):
            raise ImportFileError(
                f"Attribute name {name!r} is not usable: letters, digits, _ and -.", field="contacts"
            )
    # Names always (as before); language and time zone only when a row carries them, so rows
    # without them cost what they did.
    own = [
        "email",
        "first_name",
        "last_name",
        *[n for n in STANDARD_TARGETS if any(n in row for row in rows)],
    ]
    own = list(dict.fromkeys(own))
    header = [*own, *[f"attr:{n}" for n in attribute_names]]

    def records() -> Iterator[list[str]]:
        for row in rows:
            attributes = row.get("attributes") or {}
            yield [
                *[_text(row.get(name, "")) for name in own],
                *[_cell(attributes.get(name)) for name in attribute_names],
            ]

    return header, records()


def _text(value: Any) -> str:
    # What csv.writer then csv.reader made of a cell: None is empty, anything else its str().
    return "" if value is None else str(value)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)
