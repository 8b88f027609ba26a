"""Process one bounce read on stdin: for an MTA's pipe transport (Postfix `pipe`, Exim `pipe`).

It hands the message to the bounce listener first (delivery/bounces/pipe.py: stored in the
listener's group commit, answered once committed); `--no-handoff`, or a listener that does not
take it, processes it here in a transaction of its own. `python -m delivery.bounces.pipe` does
the same without starting Django for each message.
"""

from __future__ import annotations

import sys
from typing import TextIO

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from delivery.bounces.pipe import EX_TEMPFAIL, handoff_or_process, read_message
from delivery.bounces.services import bounce_process


def process_here(raw: bytes, sender: str, recipients: list[str], stdout: TextIO, stderr: TextIO) -> int:
    """Store one message in this process, one transaction; the exit status for the MTA."""
    try:
        result = bounce_process(raw, source="pipe", envelope_from=sender, envelope_to=recipients)
    except DatabaseError as exc:
        stderr.write(f"database unavailable, try again later: {str(exc).splitlines()[0]}\n")
        return EX_TEMPFAIL
    summary = ", ".join(result.actions) or "nothing to do"
    stdout.write(f"{result.outcome}: {summary}\n")
    return 0


class Command(BaseCommand):
    help = "Read one message on stdin and process it as a bounce, complaint or auto-reply."

    def add_arguments(self, parser):
        parser.add_argument("--sender", default="", help="the envelope sender (Postfix: ${sender})")
        parser.add_argument(
            "--recipient", action="append", default=[], help="the envelope recipient (Postfix: ${recipient})"
        )
        parser.add_argument(
            "--no-handoff",
            action="store_true",
            help="process it here instead of handing it to the bounce listener",
        )

    def handle(self, *args, sender: str, recipient: list[str], no_handoff: bool, **options):
        raw = read_message(sys.stdin.buffer, settings.BOUNCE_MAX_MESSAGE_BYTES)
        if not raw.strip():
            raise CommandError("no message on stdin")

        def here() -> int:
            return process_here(raw, sender, recipient, self.stdout, self.stderr)

        if no_handoff:
            status = here()
        else:
            status = handoff_or_process(
                raw,
                sender,
                recipient,
                host=settings.BOUNCE_SMTP_HOST,
                port=settings.BOUNCE_SMTP_PORT,
                process=here,
                stdout=self.stdout,
                stderr=self.stderr,
            )
        if status:
            sys.exit(status)
