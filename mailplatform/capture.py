"""The capture relay: an SMTP server on loopback that stores every message it is given.

It is the embedded default's outbox, so a newcomer sees what the platform sent without
any real mail leaving the machine. It accepts any recipient but only on loopback.
"""

from __future__ import annotations

import asyncio
import logging

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from django.db import connection

from mailplatform.services import captured_message_store

log = logging.getLogger(__name__)


class CaptureHandler:
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        await asyncio.to_thread(self._store, envelope.mail_from or "", list(envelope.rcpt_tos), raw)
        return "250 2.0.0 Captured"

    @staticmethod
    def _store(mail_from: str, recipients: list[str], raw: bytes) -> None:
        try:
            captured_message_store(mail_from, recipients, raw)
        finally:
            # The executor's threads outlive the message; an idle connection per thread would
            # linger (and keep a test database from being dropped).
            connection.close()
        log.info("captured %d bytes from %s for %s", len(raw), mail_from, ", ".join(recipients))


def capture_controller(host: str, port: int, max_bytes: int) -> Controller:
    return Controller(
        CaptureHandler(),
        hostname=host,
        port=port,
        data_size_limit=max_bytes,
        decode_data=False,
        server_hostname="capture.posthorn.local",
        ident="Posthorn capture relay",
    )
