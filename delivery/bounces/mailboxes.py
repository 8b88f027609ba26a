"""The IMAP/POP3 poller: fetch what a bounce mailbox holds, process it, then delete or mark it.

A message is deleted (or flagged seen) only after `bounces_process` committed its batch, so a crash
between the two re-reads the message next time; the evidence hash makes that visible.
"""

from __future__ import annotations

import imaplib
import logging
import poplib
import ssl
from collections.abc import Callable, Iterator

from django.utils import timezone

from delivery.bounces.models import BounceMailbox
from delivery.bounces.services import Inbound, bounces_process
from mailplatform import crypto

log = logging.getLogger(__name__)
TIMEOUT_S = 30
POLL_BATCH = 100  # messages per transaction (bounces_process): set-based work, bounded memory


def mailbox_set_password(mailbox: BounceMailbox, password: str) -> None:
    """Encrypted with ENCRYPTION_KEYS, like every secret (mailplatform.crypto)."""
    mailbox.password_encrypted = crypto.encrypt(password)


def mailbox_password(mailbox: BounceMailbox) -> str:
    return crypto.decrypt(mailbox.password_encrypted)


def _tls_context(mailbox: BounceMailbox) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not mailbox.verify_certificate:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


# A fetched message and what marks it processed on the server (run once its batch is committed).
Item = tuple[bytes, Callable[[], None]]
Batch = list[Item]


def _in_batches(items: Iterator[Item]) -> Iterator[Batch]:
    """POLL_BATCH at a time. The caller's code after `yield from` (IMAP's expunge) runs only once
    the last batch has been processed and marked."""
    batch: Batch = []
    for item in items:
        batch.append(item)
        if len(batch) >= POLL_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _imap_messages(mailbox: BounceMailbox) -> Iterator[Batch]:
    if mailbox.security == BounceMailbox.Security.TLS:
        client = imaplib.IMAP4_SSL(
            mailbox.host, mailbox.port, ssl_context=_tls_context(mailbox), timeout=TIMEOUT_S
        )
    else:
        client = imaplib.IMAP4(mailbox.host, mailbox.port, timeout=TIMEOUT_S)
        if mailbox.security == BounceMailbox.Security.STARTTLS:
            client.starttls(ssl_context=_tls_context(mailbox))
    try:
        client.login(mailbox.username, mailbox_password(mailbox))
        status, _ = client.select(mailbox.folder)
        if status != "OK":
            raise ValueError(f"folder {mailbox.folder!r} cannot be opened")
        status, data = client.uid("search", None, "UNSEEN" if not mailbox.delete_processed else "ALL")
        uids = (data[0] or b"").split()[: mailbox.max_per_poll]

        def fetched() -> Iterator[Item]:
            for uid in uids:
                status, parts = client.uid("fetch", uid, "(BODY.PEEK[])")
                raw = next((part[1] for part in parts if isinstance(part, tuple)), None)
                if status != "OK" or raw is None:
                    continue

                def done(uid: bytes = uid) -> None:
                    flag = "(\\Deleted)" if mailbox.delete_processed else "(\\Seen)"
                    client.uid("store", uid, "+FLAGS", flag)

                yield raw, done

        yield from _in_batches(fetched())
        if mailbox.delete_processed:
            client.expunge()
    finally:
        try:
            client.logout()
        except (imaplib.IMAP4.error, OSError):
            pass


def _pop3_messages(mailbox: BounceMailbox) -> Iterator[Batch]:
    if mailbox.security == BounceMailbox.Security.TLS:
        client = poplib.POP3_SSL(mailbox.host, mailbox.port, context=_tls_context(mailbox), timeout=TIMEOUT_S)
    else:
        client = poplib.POP3(mailbox.host, mailbox.port, timeout=TIMEOUT_S)
        if mailbox.security == BounceMailbox.Security.STARTTLS:
            client.stls(context=_tls_context(mailbox))
    try:
        client.user(mailbox.username)
        client.pass_(mailbox_password(mailbox))
        count, _size = client.stat()

        def retrieved() -> Iterator[Item]:
            for number in range(1, min(count, mailbox.max_per_poll) + 1):
                _resp, lines, _octets = client.retr(number)

                def done(number: int = number) -> None:
                    client.dele(number)  # POP3 has no "seen": processed mail is always removed

                yield b"\r\n".join(lines), done

        yield from _in_batches(retrieved())
    finally:
        try:
            client.quit()  # commits the deletions
        except (poplib.error_proto, OSError):
            pass


def mailbox_poll(mailbox: BounceMailbox) -> int:
    """Process what the mailbox holds; returns how many messages were processed."""
    fetch = _imap_messages if mailbox.protocol == BounceMailbox.Protocol.IMAP else _pop3_messages
    processed = 0
    try:
        for batch in fetch(mailbox):
            # Deleted (or flagged seen) only once the batch is committed: a crash re-reads it.
            results = bounces_process([Inbound(raw=raw, source="mailbox") for raw, _done in batch])
            for (_raw, done), result in zip(batch, results, strict=True):
                if result.outcome != "error":  # a message that failed stays for the next poll
                    done()
                    processed += 1
        mailbox.last_error = ""
    except (
        OSError,
        imaplib.IMAP4.error,
        poplib.error_proto,
        ValueError,
        ssl.SSLError,
        crypto.SecretUnreadable,
    ) as exc:
        mailbox.last_error = f"{type(exc).__name__}: {exc}"[:1000]
        log.warning("bounce mailbox %s: %s", mailbox.name, mailbox.last_error)
    mailbox.last_polled_at = timezone.now()
    mailbox.processed_total += processed
    mailbox.save(update_fields=["last_error", "last_polled_at", "processed_total"])
    return processed
