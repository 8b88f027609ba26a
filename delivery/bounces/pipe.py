"""The MTA's pipe, handing each message to the bounce listener so it is stored in the listener's groups.

    python -m delivery.bounces.pipe --sender "${sender}" --recipient "${recipient}" < message

Postfix (or Exim) runs one pipe process per message. Storing it there meant one Django start
(about a second of CPU) and one transaction per message. This module imports only the standard
library: it reads the message and gives it to the listener (`BOUNCE_SMTP_HOST`:`BOUNCE_SMTP_PORT`)
over loopback SMTP, where it joins the listener's group commit and goes through the same checks
as any message from outside (attribution only by our signed token). The listener answers 250
only once the message is committed, and the pipe exits 0 only on that 250: nothing is lost.

When the listener does not take it (not running, a refusal before or after DATA: a reply
other than 250 means it stored nothing), the message is processed here as before
(`manage.py process_bounce --no-handoff`'s path). When the answer to DATA never comes (the
connection died with the message sent), nobody knows whether it was stored: exit 75, the MTA
keeps the message and retries, as it would with any SMTP server that went silent.

The listener's flood limit counts the MTA as one client: list its address in
BOUNCE_FLOOD_EXEMPT_PEERS (127.0.0.1) so a busy MTA is not refused and sent the slow way.
"""

from __future__ import annotations

import argparse
import enum
import os
import smtplib
import socket
import sys
from collections.abc import Callable
from typing import TextIO

EX_TEMPFAIL = 75  # sysexits.h: the MTA keeps the message and retries
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 2526
DEFAULT_MAX_BYTES = 10 * 1024 * 1024


class Handoff(enum.Enum):
    STORED = "stored"  # the listener answered 250: committed
    REFUSED = "refused"  # not taken (no listener, or a reply other than 250): nothing stored
    UNKNOWN = "unknown"  # the message went out and no answer came back: maybe stored


def handoff(
    raw: bytes, sender: str, recipients: list[str], *, host: str, port: int, timeout: float = 120.0
) -> tuple[Handoff, str]:
    """Give one message to the bounce listener; (what became of it, the last reply)."""
    try:
        session = smtplib.SMTP(host, port, timeout=timeout)
    except (OSError, smtplib.SMTPException) as exc:
        return Handoff.REFUSED, f"listener unreachable: {exc}"
    try:
        with session:
            code, reply = session.ehlo(socket.gethostname())
            if code != 250:
                return Handoff.REFUSED, f"{code} {reply.decode(errors='replace')}"
            code, reply = session.mail(sender)
            if code != 250:
                return Handoff.REFUSED, f"{code} {reply.decode(errors='replace')}"
            for recipient in recipients:
                code, reply = session.rcpt(recipient)
                if code != 250:
                    return Handoff.REFUSED, f"{code} {reply.decode(errors='replace')}"
            try:
                code, reply = session.data(raw)
            except smtplib.SMTPDataError as exc:  # refused DATA itself (not 354): nothing sent
                return Handoff.REFUSED, f"{exc.smtp_code} {exc.smtp_error.decode(errors='replace')}"
            except (OSError, smtplib.SMTPException) as exc:
                return Handoff.UNKNOWN, f"no answer to the message: {exc}"
            text = f"{code} {reply.decode(errors='replace')}"
            return (Handoff.STORED if code == 250 else Handoff.REFUSED), text
    except (OSError, smtplib.SMTPException) as exc:  # before DATA: nothing was sent
        return Handoff.REFUSED, f"listener failed before the message: {exc}"


def handoff_or_process(
    raw: bytes,
    sender: str,
    recipients: list[str],
    *,
    host: str,
    port: int,
    process: Callable[[], int],
    stdout: TextIO,
    stderr: TextIO,
) -> int:
    """Hand the message to the listener, or `process` it here where the listener did not take
    it; the exit status for the MTA (75 when nobody knows whether it was stored)."""
    outcome, reply = handoff(raw, sender, recipients, host=host, port=port)
    if outcome is Handoff.STORED:
        stdout.write(f"stored by the bounce listener: {reply}\n")
        return 0
    if outcome is Handoff.UNKNOWN:
        stderr.write(f"bounce listener did not answer, try again later: {reply}\n")
        return EX_TEMPFAIL
    stderr.write(f"bounce listener did not take it ({reply}): processing here\n")
    return process()


def read_message(stream, limit: int) -> bytes:
    """The message on `stream`, at most `limit` bytes kept; read to the end so the MTA's pipe
    does not break."""
    raw = stream.read(limit + 1)
    if len(raw) > limit:
        while stream.read(1 << 20):
            pass
        raw = raw[:limit]
    return raw


def _process_here(raw: bytes, sender: str, recipients: list[str]) -> int:
    """The slow way, in this process: Django, one transaction (process_bounce's own path)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailplatform.settings")
    import django

    django.setup()
    from delivery.bounces.management.commands.process_bounce import process_here

    return process_here(raw, sender, recipients, sys.stdout, sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sender", default="", help="the envelope sender (Postfix: ${sender})")
    parser.add_argument(
        "--recipient", action="append", default=[], help="the envelope recipient (Postfix: ${recipient})"
    )
    args = parser.parse_args(argv)
    limit = int(os.environ.get("BOUNCE_MAX_MESSAGE_BYTES") or DEFAULT_MAX_BYTES)
    raw = read_message(sys.stdin.buffer, limit)
    if not raw.strip():
        print("no message on stdin", file=sys.stderr)
        return 1
    return handoff_or_process(
        raw,
        args.sender,
        args.recipient,
        host=os.environ.get("BOUNCE_SMTP_HOST") or DEFAULT_HOST,
        port=int(os.environ.get("BOUNCE_SMTP_PORT") or DEFAULT_PORT),
        process=lambda: _process_here(raw, args.sender, args.recipient),
        stdout=sys.stdout,
        stderr=sys.stderr,
    )


if __name__ == "__main__":
    sys.exit(main())
