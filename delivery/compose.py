"""Build the bytes of each Message: compiled once per Mailing into segments, filled per recipient.

A template whose parts hold only merge fields (templates' "segments and slots") is encoded
once: every literal piece becomes quoted-printable bytes ending at a line boundary (a soft
line break where the text does not end one), so a recipient's message is the join of those
bytes and the few short values encoded for them: microseconds, not the ~1.3 ms the email
package takes. A template with logic renders per recipient through Liquid and is encoded whole.

The result is final SMTP data: CRLF line ends, dot-stuffed, ending in CRLF, DKIM-signed when
the Mailing's sending identity has a key.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import encode_rfc2231, formatdate
from typing import Any

from django.conf import settings

from delivery import tracking, verp
from delivery.dkim import BodyHash, DkimSigner, canonical_lines
from delivery.headers import LINE_BREAKS, encode_unstructured, format_address
from templates.compiler import slot_values

_NO_BREAKS = {ord(ch): " " for ch in LINE_BREAKS}


@dataclass(slots=True)
class Recipient:
    message_id: int
    email: str
    context: Mapping[str, Any]  # the template context (templates.context.recipient_context)
    # verp.message_token(message_id, "unsubscribe"), when the caller already computed it.
    unsubscribe_token: str = ""


def qp(text: str) -> bytes:
    """Quoted-printable bytes of `text` ending at a line boundary (a soft break when the text does not)."""
    if not text:
        return b""
    if len(text) <= 70 and text.isascii() and text.isprintable() and "=" not in text:
        # A short line of printable ASCII (a name, a city: most merge values) is its own encoding,
        # except a space at its end or a lone "." (b2a_qp encodes both): skip binascii's round trip.
        if text[-1] != " " and text != ".":
            return text.encode() + b"=\r\n"
    encoded = binascii.b2a_qp(text.replace("\r\n", "\n").encode("utf-8"), istext=True)
    encoded = encoded.replace(b"\n", b"\r\n")
    if not encoded.endswith(b"\r\n"):
        encoded += b"=\r\n"
    return encoded


def _qp_url(url: str) -> bytes:
    """qp(url) for a tracking URL: printable ASCII without "=", so short ones need no encoding."""
    if len(url) < 76 and "=" not in url and url.isascii():
        return url.encode() + b"=\r\n"
    return qp(url)


def dot_stuff(data: bytes) -> bytes:
    data = data.replace(b"\r\n.", b"\r\n..")
    return b"." + data if data.startswith(b".") else data


def _stuffed(piece: bytes) -> bytes:
    """dot_stuff(piece) for a short piece, which seldom needs it: most come back as they are."""
    if piece[:1] == b"." or b"\r\n." in piece:
        return dot_stuff(piece)
    return piece


def _filename_params(filename: str) -> str:
    """`; filename="..."` for ASCII names, RFC 2231 `filename*=utf-8''...` otherwise."""
    if filename.isascii() and not any(ch in filename for ch in '"\\\r\n'):
        return f'; filename="{filename}"'
    return f"; filename*={encode_rfc2231(filename, 'utf-8')}"


def encode_attachments(attachments: Sequence[Mapping[str, Any]], boundary: str) -> bytes:
    """The attachment parts of a multipart/mixed body, base64 in 76-character lines, and its close.

    Done once per Mailing (MessageBuilder): every message of the mailing reuses the same bytes.
    The content is the stored file itself, checked against its checksum; nothing in it is per
    recipient, so an attachment can never carry a tracking token.
    """
    from templates.attachments import attachment_bytes

    out = []
    for attachment in attachments:
        data = attachment_bytes(attachment)
        encoded = base64.encodebytes(data).replace(b"\n", b"\r\n")
        content_type = str(attachment.get("content_type") or "application/octet-stream")
        params = _filename_params(str(attachment["filename"]))
        out.append(
            (
                f"\r\n--{boundary}\r\nContent-Type: {content_type}\r\n"
                f"Content-Disposition: attachment{params}\r\n"
                "Content-Transfer-Encoding: base64\r\n\r\n"
            ).encode()
            + encoded
        )
    out.append(f"\r\n--{boundary}--\r\n".encode())
    return b"".join(out)


class _Part:
    """One body part (html or text) as pre-encoded literal chunks and slot indexes.

    Every chunk and every encoded value starts and ends at a line boundary (qp ends each with a
    hard or soft line break), so dot-stuffing them one by one gives the bytes dot-stuffing their
    join would: the literal chunks are stuffed here, once per mailing, and a message only scans
    its short values (`fill` and `fill_signed` return SMTP data; DKIM hashes the unstuffed form).
    """

    __slots__ = ("canonical", "chunks", "clean", "indexes", "wire", "wire_is_raw")

    def __init__(self, literals: list[str], indexes: list[int]) -> None:
        self.chunks = [qp(literal) for literal in literals]
        self.wire = [dot_stuff(chunk) for chunk in self.chunks]
        self.wire_is_raw = all(w is c for w, c in zip(self.wire, self.chunks, strict=True))
        # DKIM's relaxed form of each literal chunk, once per mailing (every piece is whole lines).
        self.canonical = [canonical_lines(chunk) for chunk in self.chunks]
        self.clean = all(c is chunk for c, chunk in zip(self.canonical, self.chunks, strict=True))
        self.indexes = indexes

    def _values(self, values: list[str], encoded: Sequence[bytes]) -> list[bytes]:
        # Slots past the template's own are tracking URLs, encoded once per message (`encoded`).
        count = len(values)
        return [qp(values[index]) if index < count else encoded[index - count] for index in self.indexes]

    def _join(self, chunks: list[bytes], values: list[bytes]) -> bytes:
        out: list[bytes] = [b""] * (2 * len(values) + 1)
        out[0::2] = chunks
        out[1::2] = values
        return b"".join(out)

    def fill(self, values: list[str], encoded: Sequence[bytes] = ()) -> bytes:
        """The part's SMTP data (dot-stuffed) for these values."""
        return self._join(self.wire, [_stuffed(piece) for piece in self._values(values, encoded)])

    def fill_signed(
        self, values: list[str], encoded: Sequence[bytes] = (), *, first: bool = True
    ) -> tuple[bytes, bytes]:
        """(fill's bytes, the relaxed canonical form of the unstuffed part) for DKIM; without the
        first chunk's when `first` is false (the caller hashed it already, once per mailing)."""
        pieces = self._values(values, encoded)
        wire_pieces = [_stuffed(piece) for piece in pieces]
        raw = self._join(self.wire, wire_pieces)
        merged = b"".join(pieces)
        if b"  " in merged or b"\t" in merged or b" \r\n" in merged:
            canonical_pieces = [canonical_lines(piece) for piece in pieces]
            canonical = self._join(self.canonical, canonical_pieces)
        elif (
            self.clean and self.wire_is_raw and all(w is p for w, p in zip(wire_pieces, pieces, strict=True))
        ):
            canonical = raw  # nothing to change (no dot to unstuff either): the common case
        else:
            canonical = self._join(self.canonical, pieces)
        return raw, canonical if first else canonical[len(self.canonical[0]) :]


@dataclass
class MessageBuilder:
    """Everything constant about a Mailing's messages, ready to be filled per recipient."""

    mailing_id: int
    from_email: str
    from_name: str
    reply_to: str
    list_ids: list[int]
    kind: str
    send_group: str
    extra_headers: dict[str, str]
    compiled: dict[str, Any]
    signer: DkimSigner | None = None
    # Open pixel and click redirects (delivery.tracking), per the Mailing's switches.
    track_opens: bool = False
    track_clicks: bool = False
    boundary: str = field(default_factory=lambda: "=_posthorn_" + secrets.token_hex(12))

    def __post_init__(self) -> None:
        self.domain = self.from_email.rsplit("@", 1)[-1].lower()
        self.unsubscribe_prefix = f"{settings.SITE_URL}/delivery/u/"
        self._bounce_domain = settings.BOUNCE_DOMAIN.encode()
        # Root names the template reads: per-recipient values nobody reads are not computed.
        self.uses = frozenset(self.compiled.get("fields", ())) if self.compiled.get("fields") else None
        self._fast = not self.compiled.get("uses_logic", True) and bool(self.compiled.get("segments"))
        self._template = None
        self._tracked = self.track_opens or self.track_clicks
        self._links: list[str] = []
        self._pixel = False
        self._mixed_boundary = (
            "=_posthorn_m_" + secrets.token_hex(12) if self.compiled.get("attachments") else ""
        )
        if self._fast:
            segments = self.compiled["segments"]
            self._slots = [(tuple(path), default) for path, default in self.compiled["slots"]]
            subject_literals, subject_indexes = segments["subject"]
            self._subject_literals = subject_literals
            self._subject_indexes = subject_indexes
            self._constant_subject = not subject_indexes
            html_literals, html_indexes = segments["html"]
            if self._tracked:
                # Tracked links and the pixel become extra slots after the template's own.
                html_literals, html_indexes, self._links, self._pixel = tracking.instrument_literals(
                    list(html_literals),
                    list(html_indexes),
                    first_slot=len(self._slots),
                    opens=self.track_opens,
                    clicks=self.track_clicks,
                )
            self._html = _Part(html_literals, html_indexes)
            text_literals, text_indexes = segments["text"]
            if self._links:
                text_literals, text_indexes = tracking.instrument_text(
                    list(text_literals), list(text_indexes), links=self._links, first_slot=len(self._slots)
                )
            self._text = _Part(text_literals, text_indexes)
        else:
            from templates.compiler import CompiledTemplate

            self._template = CompiledTemplate.from_dict(self.compiled)
            self._constant_subject = False
            if self._tracked:
                self._links = tracking.mailing_links(self.compiled, clicks=self.track_clicks)
        self._head = self._constant_head()
        self._body_open = (
            f"--{self.boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        ).encode()
        self._body_middle = (
            f"\r\n--{self.boundary}\r\nContent-Type: text/html; charset=utf-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        ).encode()
        self._body_close = f"\r\n--{self.boundary}--\r\n".encode()
        # Attachments: the alternative body goes inside a multipart/mixed one, the files after it,
        # encoded here once for the whole mailing.
        self._mixed_open = b""
        self._mixed_close = b""
        if self._mixed_boundary:
            self._mixed_open = (
                f"--{self._mixed_boundary}\r\n"
                f'Content-Type: multipart/alternative; boundary="{self.boundary}"\r\n\r\n'
            ).encode()
            self._mixed_close = encode_attachments(self.compiled["attachments"], self._mixed_boundary)
        self._date_second = -1
        self._date = b""
        # DKIM: what every message shares is canonicalised and hashed here, once per mailing.
        self._prepared = None
        if self.signer is not None:
            variable = ("message-id", "date", "to", "list-unsubscribe")
            self._prepared = self.signer.prepare(
                self._head, variable if self._constant_subject else (*variable, "subject")
            )
            prefix = self._mixed_open + self._body_open
            if self._fast:
                prefix += self._text.chunks[0]
            self._body_hash = BodyHash(prefix)
            self._canonical_middle = canonical_lines(self._body_middle)
            self._canonical_tail = canonical_lines(self._body_close + self._mixed_close)

    def _constant_head(self) -> bytes:
        lines = [f"From: {format_address(self.from_email, self.from_name)}"]
        if self.reply_to:
            lines.append(f"Reply-To: {format_address(self.reply_to)}")
        if self._constant_subject:
            lines.append(f"Subject: {encode_unstructured(''.join(self._subject_literals))}")
        lines.append("MIME-Version: 1.0")
        lists = "-".join(str(i) for i in sorted(self.list_ids)) or self.kind
        lines.append(f"List-Id: <list-{lists}.{settings.BOUNCE_DOMAIN}>")
        lines.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click")
        # Gmail's Feedback Loop: identifiers, most specific first, then the sender.
        group = "".join(ch if ch.isalnum() else "-" for ch in self.send_group)[:40]
        lines.append(f"Feedback-ID: {self.mailing_id}:{group}:{self.kind}:posthorn")
        for name, value in self.extra_headers.items():
            lines.append(f"{name}: {encode_unstructured(value)}")
        if self._mixed_boundary:
            lines.append(f'Content-Type: multipart/mixed; boundary="{self._mixed_boundary}"')
        else:
            lines.append(f'Content-Type: multipart/alternative; boundary="{self.boundary}"')
        return ("\r\n".join(lines) + "\r\n").encode()

    def _date_header(self) -> bytes:
        now = int(time.time())
        if now != self._date_second:
            self._date_second = now
            self._date = formatdate(now, localtime=False, usegmt=True).encode()
        return self._date

    def message_id_header(self, message_id: int) -> str:
        return f"<{verp.message_token(message_id, 'message-id')}.{message_id}@{self.domain}>"

    def unsubscribe_url(self, message_id: int, token: str = "") -> str:
        return f"{self.unsubscribe_prefix}{token or verp.message_token(message_id, 'unsubscribe')}/"

    def build(self, recipient: Recipient) -> bytes:
        if self._fast:
            values, escaped = slot_values(recipient.context, self._slots)
            tracked: list[bytes] = []
            if self._tracked:
                tracked = [
                    _qp_url(url)
                    for url in tracking.recipient_values(
                        self.mailing_id, recipient.message_id, len(self._links), self._pixel
                    )
                ]
            if self._prepared is not None:
                text, canonical_text = self._text.fill_signed(values, tracked, first=False)
                html, canonical_html = self._html.fill_signed(escaped, tracked)
            else:
                text = self._text.fill(values, tracked)
                html = self._html.fill(escaped, tracked)
            if self._constant_subject:
                subject = None
            else:
                pieces = [self._subject_literals[0]]
                for index, literal in zip(self._subject_indexes, self._subject_literals[1:], strict=True):
                    pieces.append(values[index])
                    pieces.append(literal)
                subject = "".join(pieces).translate(_NO_BREAKS).strip()
        else:
            assert self._template is not None
            rendered = self._template.render(recipient.context)
            body = rendered.html
            if self._tracked:
                body = tracking.rewrite_html(
                    body,
                    mailing_id=self.mailing_id,
                    message_id=recipient.message_id,
                    links=self._links,
                    opens=self.track_opens,
                )
            plain = rendered.text
            if self._links:
                plain = tracking.rewrite_text(
                    plain, mailing_id=self.mailing_id, message_id=recipient.message_id, links=self._links
                )
            subject, html, text = rendered.subject, qp(body), qp(plain)
            if self._prepared is not None:
                canonical_text, canonical_html = canonical_lines(text), canonical_lines(html)
            text, html = dot_stuff(text), dot_stuff(html)
        message_id = recipient.message_id
        unsubscribe = recipient.unsubscribe_token or verp.message_token(message_id, "unsubscribe")
        message_id_value = self.message_id_header(message_id).encode()
        date = self._date_header()
        to = b"<" + recipient.email.encode() + b">"
        unsubscribe_value = b"".join(
            (
                b"<",
                self.unsubscribe_prefix.encode(),
                unsubscribe.encode(),
                b"/>, <mailto:unsubscribe+",
                unsubscribe.encode(),
                b"@",
                self._bounce_domain,
                b"?subject=unsubscribe>",
            )
        )
        head = [
            b"Message-ID: ",
            message_id_value,
            b"\r\nDate: ",
            date,
            b"\r\nTo: ",
            to,
            b"\r\nList-Unsubscribe: ",
            unsubscribe_value,
            b"\r\n",
        ]
        subject_value = b""
        if subject is not None:
            subject_value = encode_unstructured(subject.translate(_NO_BREAKS)).encode()
            head += [b"Subject: ", subject_value, b"\r\n"]
        head.append(self._head)
        header_block = b"".join(head)
        if self._prepared is not None:
            assert self.signer is not None
            rest = canonical_text + self._canonical_middle + canonical_html + self._canonical_tail
            values = (message_id_value, date, to, unsubscribe_value)
            if subject is not None:
                values = (*values, subject_value)
            header_block = (
                self.signer.signature_prepared(self._prepared, values, self._body_hash.digest(rest))
                + header_block
            )
        # `text` and `html` are dot-stuffed already (_Part). The part headers and boundaries never
        # start a line with "." (they start with "--" or a header name), nor do the attachments'
        # base64 lines: only the header block is scanned here, a line of it could in theory.
        return b"".join(
            (
                dot_stuff(header_block),
                b"\r\n",
                self._mixed_open,
                self._body_open,
                text,
                self._body_middle,
                html,
                self._body_close,
                self._mixed_close,
            )
        )
