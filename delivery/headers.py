"""Header values: checked against injection when saved, encoded by hand when a message is built.

Python's email package costs about a millisecond per message; these helpers cost microseconds
and cover exactly what a Mailing's headers need (RFC 5322 atoms, quoted display names and
RFC 2047 encoded words for anything outside ASCII).
"""

from __future__ import annotations

import base64
import re

from mailplatform.errors import Invalid

# Everything that ends a line somewhere: SMTP, the email package, str.splitlines.
LINE_BREAKS = "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_HEADER_NAME = re.compile(r"^[!-9;-~]{1,76}$")  # printable ASCII except ':' (RFC 5322 ftext)
# Headers the engine writes itself; a Mailing may not set or override them.
RESERVED_HEADERS = frozenset(
    name.lower()
    for name in (
        "From",
        "To",
        "Cc",
        "Bcc",
        "Subject",
        "Date",
        "Message-ID",
        "Reply-To",
        "Return-Path",
        "Sender",
        "List-Id",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "Feedback-ID",
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
        "DKIM-Signature",
        "Received",
    )
)
_ATOM_SAFE = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~ .-]*$")


# The request field behind each label check_header_value is given; others are "header".
_FIELD_FOR_LABEL = {
    "from address": "from_email",
    "from name": "from_name",
    "reply-to": "reply_to",
    "reply to": "reply_to",
    "subject": "subject",
    "preheader": "preheader",
    "to": "to",
    "address": "address",
    "host": "host",
}


def check_header_value(value: str, *, field: str) -> str:
    """The value, or Invalid naming the field (`field` is its label in the message) when it could
    start a new header line."""
    key = _FIELD_FOR_LABEL.get(field, "header")
    if any(ch in value for ch in LINE_BREAKS) or "\x00" in value:
        raise Invalid(
            f"{field} contains a line break; header values must be one line", code="invalid_header", field=key
        )
    if len(value) > 998:
        raise Invalid(f"{field} is longer than 998 characters", code="invalid_header", field=key)
    return value


def check_extra_headers(headers: dict[str, str]) -> dict[str, str]:
    clean: dict[str, str] = {}
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise Invalid(
                f"header name {name!r} is not a valid header name", code="invalid_header", field="header"
            )
        if name.lower() in RESERVED_HEADERS:
            raise Invalid(
                f"header {name} is set by the platform and cannot be overridden",
                code="invalid_header",
                field="header",
            )
        if not isinstance(value, str):
            raise Invalid(f"header {name} must be text", code="invalid_header", field="header")
        clean[name] = check_header_value(value, field=f"header {name}")
    return clean


def _encoded_words(text: str) -> str:
    """RFC 2047 base64 words of at most 45 bytes of UTF-8 each, never splitting a character."""
    words, chunk, size = [], [], 0
    for ch in text:
        n = len(ch.encode())
        if size + n > 45:
            words.append("".join(chunk))
            chunk, size = [], 0
        chunk.append(ch)
        size += n
    if chunk:
        words.append("".join(chunk))
    return "\r\n ".join(f"=?utf-8?b?{base64.b64encode(w.encode()).decode()}?=" for w in words)


def encode_unstructured(text: str) -> str:
    """A Subject-like value: as is when plain ASCII, else encoded words."""
    text = text.translate({ord(ch): " " for ch in LINE_BREAKS})
    if text.isascii() and "=?" not in text:
        return _fold(text)
    return _encoded_words(text)


def _fold(text: str) -> str:
    """Fold long ASCII values at spaces so no line passes 78 characters where it can be helped."""
    if len(text) <= 70:
        return text
    lines, current = [], ""
    for word in text.split(" "):
        if current and len(current) + 1 + len(word) > 70:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    lines.append(current)
    return "\r\n ".join(lines)


def format_address(address: str, name: str = "") -> str:
    """`Name <address>` with the display name quoted or encoded as needed."""
    name = name.translate({ord(ch): " " for ch in LINE_BREAKS}).strip()
    if not name:
        return f"<{address}>"
    if name.isascii():
        if _ATOM_SAFE.match(name) and "." not in name:
            return f"{name} <{address}>"
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{quoted}" <{address}>'
    return f"{_encoded_words(name)} <{address}>"
