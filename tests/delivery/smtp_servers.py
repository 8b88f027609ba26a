"""aiosmtpd servers on loopback that count what they receive and misbehave on purpose."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes


@dataclass
class RecordingHandler:
    """Keeps every accepted message. Hooks return a reply string to refuse, or None to accept."""

    pipelining: bool = True
    rcpt_reply: Callable[[str], str | None] = lambda address: None
    mail_reply: Callable[[], str | None] = lambda: None
    data_reply: Callable[[Envelope], str | None] = lambda envelope: None
    received: list[Received] = field(default_factory=list)
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses):
        session.host_name = hostname
        with self.lock:
            self.connections += 1
        if self.pipelining:
            responses.insert(1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str, options):
        reply = self.mail_reply()
        if reply:
            return await _refuse(server, reply)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, options):
        reply = self.rcpt_reply(address)
        if reply:
            return await _refuse(server, reply)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope):
        reply = self.data_reply(envelope)
        if reply:
            return await _refuse(server, reply)
        with self.lock:
            self.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content or b"")
            )
        return "250 2.0.0 OK queued"

    def recipients(self) -> list[str]:
        with self.lock:
            return [rcpt for message in self.received for rcpt in message.rcpt_tos]


async def _refuse(server: SMTP, reply: str) -> str:
    """Refuse with `reply`; a 421 hangs up at once, as Postfix does, answering nothing pipelined after it."""
    if reply.startswith("421"):
        await server.push(reply)
        server.transport.close()
    return reply


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SmtpServer:
    """A started aiosmtpd server; `with SmtpServer(handler) as server:` then server.port."""

    def __init__(self, handler: RecordingHandler, *, data_size_limit: int = 33554432, **kwargs) -> None:
        self.handler = handler
        self.port = free_port()
        self.controller = Controller(
            handler,
            hostname="127.0.0.1",
            port=self.port,
            data_size_limit=data_size_limit,
            decode_data=False,
            ready_timeout=10,
            **kwargs,
        )

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


class GreetingRefuser:
    """A listener that answers every connection with one line (a 421 banner, say) and hangs up."""

    def __init__(self, banner: bytes = b"421 4.3.2 Service not available, closing transmission channel\r\n"):
        self.banner = banner
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with client:
                client.sendall(self.banner)

    def __enter__(self) -> GreetingRefuser:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # shutdown wakes the thread blocked in accept(); close alone would not on Linux.
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)
