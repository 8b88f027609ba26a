"""Bulk upsert of contacts given as rows (the API's `POST /contacts/bulk`), through the CSV import.

The rows are written to a CSV in a temporary folder and merged by `run_import` (COPY into a staging
table, one merge in one transaction): 10,000 rows cost what an import of them costs, not 10,000
serializer saves. The import's bad-row report comes back as indexes into the caller's rows.
"""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path
from typing import Any

from contacts.imports import REPORT_COLUMNS, STANDARD_TARGETS, ImportFileError, ImportResult, run_import
from mailplatform.services import audit_record


def contacts_bulk_upsert(
    rows: list[dict[str, Any]], *, mode: str, list_ids: list[int], by: Any, via: str = "api"
) -> tuple[ImportResult, list[dict[str, Any]]]:
    """Merge the rows; returns the import's result and its bad rows ({index, email, message}), in order.

    Raises ImportFileError (field `contacts`) when the rows as a whole cannot be imported.
    """
    with tempfile.TemporaryDirectory(prefix="posthorn-bulk-") as tmp:
        path, mapping = _write_bulk_csv(Path(tmp) / "contacts.csv", rows)
        report = Path(tmp) / "report.csv"
        label = f"{via} bulk upsert by {getattr(by, 'username', 'system')}"[:300]
        try:
            result = run_import(
                path, mode=mode, list_ids=list_ids, mapping=mapping, report_path=report, label=label
            )
        except ImportFileError as exc:
            exc.field = "contacts"  # the caller sent rows, not a file
            raise
        errors = _report_rows(report)
    audit_record(by, "contacts.bulk_upserted", details={**result.counts(), "via": via})
    return result, sorted(errors, key=lambda e: e["index"])


def _write_bulk_csv(path: Path, rows: list[dict[str, Any]]) -> tuple[Path, dict[str, str]]:
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
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            attributes = row.get("attributes") or {}
            writer.writerow(
                [
                    *[row.get(name, "") for name in own],
                    *[_cell(attributes.get(name)) for name in attribute_names],
                ]
            )
    mapping = {str(i): target for i, target in enumerate(header)}
    return path, mapping


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _report_rows(report: Path) -> list[dict[str, Any]]:
    """The import's bad-row report, as indexes into the request's `contacts` (CSV row 2 is index 0)."""
    if not report.exists():
        return []
    with report.open(encoding="utf-8", newline="") as handle:
        return [
            {
                "index": int(row[REPORT_COLUMNS[0]]) - 2,
                "email": (row.get("email") or "").lstrip("'"),
                "message": row[REPORT_COLUMNS[1]],
            }
            for row in csv.DictReader(handle)
        ]
