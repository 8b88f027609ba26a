"""Process one bounce read on stdin: for an MTA's pipe transport (Postfix `pipe`, Exim `pipe`)."""

from __future__ import annotations

import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from delivery.bounces.services import bounce_process

EX_TEMPFAIL = 75  # sysexits.h: the MTA keeps the message and retries


class Command(BaseCommand):
    help = "Read one message on stdin and process it as a bounce, complaint or auto-reply."

    def add_arguments(self, parser):
        parser.add_argument("--sender", default="", help="the envelope sender (Postfix: ${sender})")
        parser.add_argument(
            "--recipient", action="append", default=[], help="the envelope recipient (Postfix: ${recipient})"
        )

    def handle(self, *args, sender: str, recipient: list[str], **options):
        limit = settings.BOUNCE_MAX_MESSAGE_BYTES
        raw = sys.stdin.buffer.read(limit + 1)
        if not raw.strip():
            raise CommandError("no message on stdin")
        if len(raw) > limit:
            # Read on to the end so the MTA's pipe does not break, but keep only the head.
            while sys.stdin.buffer.read(1 << 20):
                pass
            raw = raw[:limit]
        try:
            result = bounce_process(raw, source="pipe", envelope_from=sender, envelope_to=recipient)
        except DatabaseError as exc:
            self.stderr.write(f"database unavailable, try again later: {str(exc).splitlines()[0]}")
            sys.exit(EX_TEMPFAIL)
        summary = ", ".join(result.actions) or "nothing to do"
        self.stdout.write(f"{result.outcome}: {summary}")
