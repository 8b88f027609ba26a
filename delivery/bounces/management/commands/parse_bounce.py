"""Explain bounces: one JSON line per failed recipient per file, no database needed."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from delivery.bounces.classifier import classify


class Command(BaseCommand):
    help = "Classify bounce, complaint or auto-reply messages (files) and print one JSON line per recipient."
    # Pure parsing: no checks, so it works while the database is down.
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser) -> None:
        parser.add_argument("files", nargs="+", metavar="FILE", help="raw messages (.eml), one per file")

    def handle(self, *args, files: list[str], **options) -> None:
        unreadable: list[str] = []
        for name in files:
            try:
                raw = Path(name).read_bytes()
            except OSError as exc:
                unreadable.append(name)
                self._emit(name, kind="error", diagnostic=f"cannot read: {exc.strerror or exc}")
                continue
            try:
                report = classify(raw)
            except Exception as exc:  # one broken file must not stop the others
                self._emit(name, kind="error", diagnostic=f"{type(exc).__name__}: {exc}"[:500])
                continue
            if not report.recipients:
                self._emit(name, kind="none")
            for recipient in report.recipients:
                self._emit(
                    name,
                    recipient=recipient.address,
                    kind=recipient.kind,
                    status=recipient.status,
                    reason=recipient.reason,
                    diagnostic=recipient.diagnostic,
                )
        if unreadable:
            raise CommandError(f"could not read {len(unreadable)} file(s): {', '.join(unreadable)}")

    def _emit(
        self,
        name: str,
        *,
        kind: str,
        recipient: str = "",
        status: str = "",
        reason: str = "",
        diagnostic: str = "",
    ) -> None:
        line = {
            "file": name,
            "recipient": recipient,
            "kind": kind,
            "status": status,
            "reason": reason,
            "diagnostic": diagnostic,
        }
        self.stdout.write(json.dumps(line, ensure_ascii=False))
