"""The SMTP client: smtplib for the session, RFC 2920 pipelining on top for the transactions.

smtplib does what it does well (connect, EHLO, STARTTLS, AUTH, reading multi-line replies).
Submitting one message at a time through it is round-trip bound: MAIL, RCPT, DATA and the
end of data are four round trips. Where the relay offers PIPELINING we write the end of one
message's data and the next message's MAIL, RCPT and DATA in one write and read the four
replies together: one round trip per message. Where it does not, the same loop reads each
reply before writing the next command.

Message bytes handed to `send` are final: CRLF line ends, dot-stuffed, ending in CRLF.
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any


class RelayError(Exception):
    """The relay could not be used at all (connection, TLS, authentication): said in plain words."""

    def __init__(self, message: str, *, code: int | None = None, temporary: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.temporary = temporary


@dataclass(slots=True)
class Envelope:
    key: Any  # the caller's handle (a Message id)
    mail_from: bytes
    rcpt: bytes
    data: bytes


SENT, DEFERRED, FAILED = "sent", "deferred", "failed"


@dataclass(slots=True)
class Outcome:
    key: Any
    status: str  # sent | deferred | failed
    code: int
    reply: str
    stage: str = ""  # mail | rcpt | data | size | connection
    # True when the server may have accepted the message although we have no reply (lost connection
    # after the data went out): retrying may duplicate.
    uncertain: bool = False
    # True when this outcome says the relay itself is unwell (a 421, a dropped connection): the
    # engine counts it against the relay's health. A recipient's refusal or a per-domain rate
    # limit says nothing about the relay.
    relay_fault: bool = False

    @property
    def domain_throttled(self) -> bool:
        """A 4.7.x rate limit for this recipient's domain: defer the message, keep using the relay."""
        return (
            self.status == DEFERRED
            and self.stage in ("rcpt", "data")
            and domain_rate_limited(self.code, self.reply)
        )


# An enhanced status code (RFC 3463) at the start of a reply's text: "4.7.28 ...".
_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")
# Words receivers use when the 4.7.x refusal is about sending too fast (Gmail's 4.7.28, Microsoft's
# 4.7.500-699 "temporarily rate limited", Yahoo's "TSS04 ... deferred due to user complaints" is not).
_RATE_WORDS = re.compile(r"rate|limit|too many|too fast|throttl|slow down", re.IGNORECASE)


def domain_rate_limited(code: int, reply: str) -> bool:
    """Whether a reply to one recipient is a temporary rate limit of that recipient's domain.

    A 4xx whose enhanced status is 4.7.x and whose text names a rate limit (RFC 3463's class 7 is
    "security or policy"; receivers use it for "you are sending too fast"). Such a refusal defers
    the one message and says nothing about the relay: the relay is not backed off. Per-domain
    slowdown builds on this (see the deliverability issue).
    """
    if not 400 <= code < 500:
        return False
    match = _ENHANCED.match(reply)
    return bool(match and match.group(1) == "4" and match.group(2) == "7" and _RATE_WORDS.search(reply))


@dataclass
class SessionInfo:
    banner: str = ""
    esmtp: dict[str, str] = field(default_factory=dict)
    tls: bool = False
    tls_version: str = ""
    authenticated: bool = False

    @property
    def pipelining(self) -> bool:
        return "pipelining" in self.esmtp

    @property
    def size_limit(self) -> int:
        raw = self.esmtp.get("size", "").strip()
        return int(raw) if raw.isdigit() else 0


def _plain(exc: BaseException, host: str, port: int, timeout: float) -> RelayError:
    """An exception from connecting or greeting, said so an admin knows what to fix."""
    where = f"{host}:{port}"
    if isinstance(exc, RelayError):
        return exc
    if isinstance(exc, ssl.SSLCertVerificationError):
        return RelayError(
            f"the TLS certificate of {where} could not be verified ({exc.verify_message or exc.reason}). "
            "Fix the relay's certificate, or turn off certificate verification for this relay if you trust it.",
            temporary=False,
        )
    if isinstance(exc, ssl.SSLError):
        return RelayError(
            f"TLS with {where} failed: {exc.reason or exc}. Check the port and security setting."
        )
    if isinstance(exc, ConnectionRefusedError):
        return RelayError(f"connection refused by {where}: nothing is listening there, or a firewall says no")
    if isinstance(exc, socket.gaierror):
        return RelayError(f"the host name {host!r} cannot be resolved ({exc.strerror})", temporary=False)
    if isinstance(exc, TimeoutError | socket.timeout):
        return RelayError(f"no answer from {where} within {timeout:g} s")
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        detail = (
            exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
        )
        return RelayError(
            f"{where} refused the username and password: {exc.smtp_code} {detail}",
            code=exc.smtp_code,
            temporary=False,
        )
    if isinstance(exc, smtplib.SMTPConnectError | smtplib.SMTPResponseException):
        detail = (
            exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
        )
        return RelayError(f"{where} answered {exc.smtp_code} {detail}", code=exc.smtp_code)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return RelayError(f"{where} closed the connection: {exc}")
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return RelayError(f"{where}: {exc}", temporary=False)
    if isinstance(exc, OSError):
        return RelayError(f"cannot talk to {where}: {exc.strerror or exc}")
    return RelayError(f"{where}: {exc}")


def tls_context(verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class RelayConnection:
    """One open SMTP session to a relay, reused for many messages."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        security: str = "none",
        verify_certificate: bool = True,
        username: str = "",
        password: str = "",
        helo_name: str = "",
        timeout: float = 30.0,
        allow_pipelining: bool = True,
    ) -> None:
        self.host, self.port = host, port
        self.security = security
        self.verify_certificate = verify_certificate
        self.username, self.password = username, password
        self.helo_name = helo_name or None
        self.timeout = timeout
        self.allow_pipelining = allow_pipelining
        self.smtp: smtplib.SMTP | None = None
        self.info = SessionInfo()
        self.messages_sent = 0

    # --- session ---

    def open(self) -> SessionInfo:
        try:
            self._open()
        except BaseException as exc:
            self.abort()
            raise _plain(exc, self.host, self.port, self.timeout) from exc
        return self.info

    def _open(self) -> None:
        context = tls_context(self.verify_certificate)
        if self.security == "tls":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                local_hostname=self.helo_name, timeout=self.timeout, context=context
            )
        else:
            smtp = smtplib.SMTP(local_hostname=self.helo_name, timeout=self.timeout)
        self.smtp = smtp
        # smtplib takes the TLS server name from the constructor's host, which we could not pass
        # (it would connect before the timeout and context are set up).
        smtp._host = self.host
        code, banner = smtp.connect(self.host, self.port)
        # Without it, Nagle's algorithm and delayed ACKs hold each pipelined write back (~2x slower).
        smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.info.banner = banner.decode(errors="replace")
        if code != 220:
            raise RelayError(
                f"{self.host}:{self.port} refused the session: {code} {self.info.banner}", code=code
            )
        self._ehlo()
        if self.security == "starttls":
            if not smtp.has_extn("starttls"):
                raise RelayError(
                    f"{self.host}:{self.port} does not offer STARTTLS; choose security 'none' only on a trusted network",
                    temporary=False,
                )
            code, reply = smtp.starttls(context=context)
            if code != 220:
                raise RelayError(f"STARTTLS refused: {code} {reply.decode(errors='replace')}", code=code)
            self._ehlo()
        if self.security in ("tls", "starttls"):
            self.info.tls = True
            sock = smtp.sock
            self.info.tls_version = sock.version() if isinstance(sock, ssl.SSLSocket) else ""
        if self.username:
            if not smtp.has_extn("auth"):
                hint = "" if self.info.tls else " (many relays offer AUTH only after STARTTLS)"
                raise RelayError(
                    f"{self.host}:{self.port} does not offer AUTH but a username is set{hint}",
                    temporary=False,
                )
            smtp.login(self.username, self.password)
            self.info.authenticated = True

    def _ehlo(self) -> None:
        assert self.smtp is not None
        code, reply = self.smtp.ehlo()
        if code == 421:
            # The server is closing the session: trying HELO would only report the closed socket.
            raise RelayError(
                f"{self.host}:{self.port} answered {code} {reply.decode(errors='replace')}", code=code
            )
        if code != 250:
            code, reply = self.smtp.helo()
            if code != 250:
                raise RelayError(
                    f"{self.host}:{self.port} refused HELO: {code} {reply.decode(errors='replace')}"
                )
        self.info.esmtp = dict(self.smtp.esmtp_features)

    @property
    def is_open(self) -> bool:
        return self.smtp is not None and self.smtp.sock is not None

    def close(self) -> None:
        if self.smtp is None:
            return
        try:
            self.smtp.quit()
        except (smtplib.SMTPException, OSError):
            pass
        self.abort()

    def abort(self) -> None:
        if self.smtp is not None:
            try:
                self.smtp.close()
            except OSError:
                pass
        self.smtp = None

    def __enter__(self) -> RelayConnection:
        if not self.is_open:
            self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transactions ---

    def send(self, envelopes: Iterable[Envelope]) -> Iterator[Outcome]:
        """Submit each envelope; yields one Outcome per envelope, in order, as replies arrive.

        A dropped connection or a 421 ends the session: the envelopes written but not answered
        come back `deferred` (stage "connection"), the connection is closed, and the rest of
        `envelopes` is left untaken, so the caller can hand those to another connection.
        """
        if not self.is_open:
            raise RelayError(f"the connection to {self.host}:{self.port} is not open")
        if self.allow_pipelining and self.info.pipelining:
            yield from self._send_pipelined(envelopes)
        else:
            yield from self._send_lockstep(envelopes)

    def _mail_command(self, envelope: Envelope) -> bytes:
        params = b""
        if self.info.size_limit or "size" in self.info.esmtp:
            params = b" SIZE=" + str(len(envelope.data)).encode()
        return (
            b"MAIL FROM:<" + envelope.mail_from + b">" + params + b"\r\nRCPT TO:<" + envelope.rcpt + b">\r\n"
        )

    def _too_big(self, envelope: Envelope) -> Outcome | None:
        limit = self.info.size_limit
        if limit and len(envelope.data) > limit:
            return Outcome(
                envelope.key,
                FAILED,
                552,
                f"message of {len(envelope.data)} bytes exceeds the relay's SIZE limit of {limit} bytes",
                "size",
            )
        return None

    def _read(self) -> tuple[int, str]:
        assert self.smtp is not None
        code, message = self.smtp.getreply()
        return code, message.decode("utf-8", errors="replace")

    def _send_pipelined(self, envelopes: Iterable[Envelope]) -> Iterator[Outcome]:
        assert self.smtp is not None
        sock = self.smtp.sock
        pending: Envelope | None = None  # DATA accepted, its content goes out with the next write
        need_rset = False
        source = iter(envelopes)
        # Written but not yet answered, with whether its data went out.
        unanswered: list[tuple[Envelope, bool]] = []
        try:
            while True:
                envelope = next(source, None)
                while envelope is not None and (too_big := self._too_big(envelope)) is not None:
                    yield too_big
                    envelope = next(source, None)
                if pending is None and envelope is None:
                    return
                out = bytearray()
                if pending is not None:
                    out += pending.data
                    out += b".\r\n"
                if envelope is not None:
                    if need_rset:
                        out += b"RSET\r\n"
                    out += self._mail_command(envelope)
                    out += b"DATA\r\n"
                unanswered = [(e, sent) for e, sent in ((pending, True), (envelope, False)) if e is not None]
                sock.sendall(out)
                if pending is not None:
                    code, reply = self._read()
                    unanswered.pop(0)
                    outcome = self._data_outcome(pending, code, reply)
                    yield outcome
                    if code == 421:
                        raise _Closing(code, reply, throttled=outcome.domain_throttled)
                    pending = None
                if envelope is None:
                    continue
                if need_rset:
                    self._read()
                    need_rset = False
                mail, rcpt, data = replies = self._read_replies(3)
                if mail[0] == 250 and rcpt[0] in (250, 251) and data[0] == 354:
                    pending = envelope
                    continue
                unanswered = []
                outcome = self._envelope_refusal(envelope, mail, rcpt, data)
                hung_up = outcome.code == 421 or any(code == 0 for code, _ in replies)
                if hung_up:
                    # The server said why and hung up (a 421, or a 4xx then the end of the connection).
                    outcome.relay_fault = not outcome.domain_throttled
                yield outcome
                if hung_up:
                    raise _Closing(outcome.code, outcome.reply, throttled=outcome.domain_throttled)
                if data[0] == 354:
                    # A server that took DATA without a recipient: end the empty message, then reset.
                    sock.sendall(b".\r\n")
                    self._read()
                need_rset = True
        except _Closing as closing:
            yield from self._lost(unanswered, closing.code, closing.reply, relay_fault=not closing.throttled)
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            yield from self._lost(unanswered, 0, f"connection lost: {exc}")

    def _send_lockstep(self, envelopes: Iterable[Envelope]) -> Iterator[Outcome]:
        assert self.smtp is not None
        sock = self.smtp.sock
        source = iter(envelopes)
        current: list[tuple[Envelope, bool]] = []
        try:
            for envelope in source:
                too_big = self._too_big(envelope)
                if too_big is not None:
                    yield too_big
                    continue
                current = [(envelope, False)]
                mail_line, rcpt_line, _ = self._mail_command(envelope).split(b"\r\n")
                sock.sendall(mail_line + b"\r\n")
                mail = self._read()
                rcpt = data = (0, "")
                if mail[0] == 250:
                    sock.sendall(rcpt_line + b"\r\n")
                    rcpt = self._read()
                    if rcpt[0] in (250, 251):
                        sock.sendall(b"DATA\r\n")
                        data = self._read()
                if mail[0] == 250 and rcpt[0] in (250, 251) and data[0] == 354:
                    current = [(envelope, True)]
                    sock.sendall(envelope.data + b".\r\n")
                    code, reply = self._read()
                    current = []
                    outcome = self._data_outcome(envelope, code, reply)
                    yield outcome
                    if code == 421:
                        raise _Closing(code, reply, throttled=outcome.domain_throttled)
                    continue
                current = []
                outcome = self._envelope_refusal(envelope, mail, rcpt, data)
                yield outcome
                if outcome.code == 421:
                    raise _Closing(421, outcome.reply, throttled=outcome.domain_throttled)
                if mail[0] == 250:
                    sock.sendall(b"RSET\r\n")
                    self._read()
        except _Closing as closing:
            yield from self._lost(current, closing.code, closing.reply, relay_fault=not closing.throttled)
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            yield from self._lost(current, 0, f"connection lost: {exc}")

    def _read_replies(self, count: int) -> list[tuple[int, str]]:
        """Read the replies to `count` pipelined commands; (0, "") for those never answered.

        A server that refuses with a 421 (or a 4xx) and hangs up answers nothing after it: its
        reply is the reason, not the closed connection we would find by reading on.
        """
        replies: list[tuple[int, str]] = []
        while len(replies) < count:
            try:
                reply = self._read()
            except (smtplib.SMTPServerDisconnected, OSError):
                if replies and 400 <= replies[-1][0] < 500:
                    break
                raise
            replies.append(reply)
            if reply[0] == 421:
                break
        return replies + [(0, "")] * (count - len(replies))

    def _data_outcome(self, envelope: Envelope, code: int, reply: str) -> Outcome:
        if 200 <= code < 300:
            self.messages_sent += 1
            return Outcome(envelope.key, SENT, code, reply, "data")
        return self._refusal(envelope, code, reply, "data")

    @staticmethod
    def _refusal(envelope: Envelope, code: int, reply: str, stage: str) -> Outcome:
        status = FAILED if 500 <= code < 600 else DEFERRED
        outcome = Outcome(envelope.key, status, code, reply, stage)
        # A 421 closes the session: the relay is unwell, unless it is one domain's rate limit.
        outcome.relay_fault = code == 421 and not outcome.domain_throttled
        return outcome

    @classmethod
    def _envelope_refusal(
        cls, envelope: Envelope, mail: tuple[int, str], rcpt: tuple[int, str], data: tuple[int, str]
    ) -> Outcome:
        for stage, (code, reply) in (("mail", mail), ("rcpt", rcpt), ("data", data)):
            if code and not (200 <= code < 400):
                return cls._refusal(envelope, code, reply, stage)
        return Outcome(envelope.key, DEFERRED, 0, "no reply from the relay", "data", relay_fault=True)

    def _lost(
        self, unanswered: list[tuple[Envelope, bool]], code: int, reply: str, *, relay_fault: bool = True
    ) -> Iterator[Outcome]:
        self.abort()
        reason = f"{code} {reply}".strip() if code else reply
        for envelope, data_sent in unanswered:
            # Data that went out may have been accepted before the connection went: a retry may duplicate.
            yield Outcome(
                envelope.key,
                DEFERRED,
                code,
                reason,
                "connection",
                uncertain=data_sent,
                relay_fault=relay_fault,
            )


class _Closing(Exception):
    def __init__(self, code: int, reply: str, *, throttled: bool = False) -> None:
        self.code, self.reply, self.throttled = code, reply, throttled


def test_connection(
    host: str,
    port: int,
    *,
    security: str,
    verify_certificate: bool = True,
    username: str = "",
    password: str = "",
    helo_name: str = "",
    timeout: float = 10.0,
) -> SessionInfo:
    """Connect, EHLO, STARTTLS and AUTH as configured; the capabilities, or RelayError in plain words."""
    connection = RelayConnection(
        host,
        port,
        security=security,
        verify_certificate=verify_certificate,
        username=username,
        password=password,
        helo_name=helo_name,
        timeout=timeout,
    )
    info = connection.open()
    connection.close()
    return info


test_connection.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
