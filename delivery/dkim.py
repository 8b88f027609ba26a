"""DKIM signing (RFC 6376, rsa-sha256, relaxed/relaxed) with the `cryptography` package.

dkimpy parses every message and does its RSA in Python (~6 ms a message); here the headers
are already known, canonicalisation is a few regex passes, and the RSA runs in OpenSSL.
The signature covers List-Unsubscribe and List-Unsubscribe-Post, as Gmail and Yahoo require
for one-click unsubscribe.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

# Signed when present, in this order. Listing a header once more than it occurs would also
# sign its absence; we sign what we write.
SIGNED_HEADERS = (
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "feedback-id",
    "mime-version",
    "content-type",
)

_WSP_RUN = re.compile(rb"[ \t]+")
_WSP_EOL = re.compile(rb"[ \t]+\r\n")
_FOLD = re.compile(rb"\r\n(?=[ \t])")


def generate_private_key(bits: int = 2048) -> tuple[str, str]:
    """(private key PEM, public key base64 DER for the DNS record)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem, base64.b64encode(public).decode()


def public_key_of(private_pem: str) -> str:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(public).decode()


def canonical_body(body: bytes) -> bytes:
    """Relaxed body canonicalisation."""
    body = canonical_lines(body).rstrip(b"\r\n")
    return body + b"\r\n" if body else b""


def canonical_lines(piece: bytes) -> bytes:
    """Relaxed canonicalisation of whole lines (`piece` starts a line and ends with CRLF or is empty).

    Such pieces canonicalise independently: no whitespace run and no trailing whitespace crosses
    a CRLF, so the canonical body is the join of its pieces' (the end's empty lines aside). Most
    pieces are already canonical, which three substring scans tell without a regex pass.
    """
    if b"  " not in piece and b"\t" not in piece and b" \r\n" not in piece:
        return piece
    piece = _WSP_EOL.sub(b"\r\n", piece)
    return _WSP_RUN.sub(b" ", piece)


def _canonical_header(name: bytes, value: bytes) -> bytes:
    if b"\r\n" not in value and b"  " not in value and b"\t" not in value:
        return name.strip().lower() + b":" + value.strip(b" \t\r\n")
    value = _FOLD.sub(b"", value)
    value = _WSP_RUN.sub(b" ", value).strip(b" \t\r\n")
    return name.strip().lower() + b":" + value


def _split_headers(head: bytes) -> list[tuple[bytes, bytes]]:
    """Header fields of a CRLF-separated block, folded lines joined to their field."""
    fields: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\r\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + b"\r\n" + line)
            continue
        name, _, value = line.partition(b":")
        fields.append((name, value))
    return fields


@dataclass
class DkimSigner:
    domain: str
    selector: str
    private_key_pem: str

    def __post_init__(self) -> None:
        key = serialization.load_pem_private_key(self.private_key_pem.encode(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("DKIM keys must be RSA")
        self._key = key
        self._padding = padding.PKCS1v15()
        self._prehashed = utils.Prehashed(hashes.SHA256())
        self._prefix = f" v=1; a=rsa-sha256; c=relaxed/relaxed; d={self.domain}; s={self.selector}; t="

    def signature_header(self, head: bytes, body: bytes, *, timestamp: int | None = None) -> bytes:
        """The `DKIM-Signature: ...\\r\\n` line to put before `head` (headers, CRLF separated)."""
        body_hash = hashlib.sha256(canonical_body(body)).digest()
        present: dict[bytes, list[bytes]] = {}
        for name, value in _split_headers(head):
            present.setdefault(name.strip().lower(), []).append(value)
        signed: list[str] = []
        canonical: list[bytes] = []
        for name in SIGNED_HEADERS:
            values = present.get(name.encode())
            if not values:
                continue
            # With several instances the last one is signed first (RFC 6376 5.4.2); we write one each.
            signed.append(name)
            canonical.append(_canonical_header(name.encode(), values[-1]) + b"\r\n")
        state = hashlib.sha256(b"".join(canonical))
        return self._finish(":".join(signed), state, body_hash, timestamp)

    def prepare(self, constant_head: bytes, variable_names: tuple[str, ...]) -> PreparedHead | None:
        """Once per mailing: the signed headers every message shares, canonicalised and hashed.

        `variable_names` are the headers each message adds (signed after the constant ones, in
        this order). None when a name is in both: `signature_header` then does the general case.
        """
        constant: dict[bytes, bytes] = {}
        for name, value in _split_headers(constant_head):
            constant[name.strip().lower()] = value
        if any(name.encode() in constant for name in variable_names):
            return None
        names = [name for name in SIGNED_HEADERS if name.encode() in constant]
        state = hashlib.sha256(
            b"".join(_canonical_header(name.encode(), constant[name.encode()]) + b"\r\n" for name in names)
        )
        variable = tuple(name for name in variable_names if name in SIGNED_HEADERS)
        return PreparedHead(":".join(names + list(variable)), state, variable)

    def signature_prepared(
        self,
        prepared: PreparedHead,
        values: tuple[bytes, ...],
        body_hash: bytes,
        *,
        timestamp: int | None = None,
    ) -> bytes:
        """`signature_header` for a message of a prepared mailing: `values` are the values of
        `prepared.variable` in order, `body_hash` the SHA-256 of the canonical body."""
        state = prepared.state.copy()
        lines = []
        for name, value in zip(prepared.variable_names, values, strict=True):
            if b"\r\n" in value or b"  " in value or b"\t" in value:
                lines.append(_canonical_header(name, value))
            else:
                lines.append(name + b":" + value.strip(b" \t\r\n"))
        lines.append(b"")
        state.update(b"\r\n".join(lines))
        return self._finish(prepared.signed, state, body_hash, timestamp)

    def sign_digest(self, digest: bytes) -> bytes:
        """The bare RSA step (PKCS#1 v1.5 over a SHA-256 digest): the reference of bench/dkim_sign.py."""
        return self._key.sign(digest, self._padding, self._prehashed)

    def _finish(self, signed: str, state, body_hash: bytes, timestamp: int | None) -> bytes:
        stamp = int(time.time()) if timestamp is None else timestamp
        value = f"{self._prefix}{stamp}; h={signed}; bh={base64.b64encode(body_hash).decode()}; b="
        # Our own value: single spaces, no folding, so its relaxed form is the name and the value.
        state.update(b"dkim-signature:" + value.strip().encode())
        encoded = base64.b64encode(self.sign_digest(state.digest())).decode()
        # Fold b= so no line passes 78 characters.
        folded = "\r\n\t".join(encoded[i : i + 72] for i in range(0, len(encoded), 72))
        return f"DKIM-Signature:{value}\r\n\t{folded}\r\n".encode()


@dataclass(frozen=True)
class PreparedHead:
    signed: str  # the h= list
    state: object  # hashlib sha256 over the constant headers' canonical lines
    variable: tuple[str, ...]

    @property
    def variable_names(self) -> tuple[bytes, ...]:
        return self._names

    def __post_init__(self) -> None:
        object.__setattr__(self, "_names", tuple(name.encode() for name in self.variable))


class BodyHash:
    """SHA-256 of a relaxed-canonical body whose first `prefix` bytes are the same in every message.

    The prefix is canonicalised and hashed once (`MessageBuilder`, per mailing); each message
    hashes only its canonical rest.
    """

    __slots__ = ("_state",)

    def __init__(self, prefix: bytes) -> None:
        self._state = hashlib.sha256(canonical_lines(prefix))

    def digest(self, canonical_rest: bytes) -> bytes:
        """`canonical_rest`: the canonical pieces after the prefix, joined (ending with CRLF)."""
        if canonical_rest.endswith(b"\r\n\r\n"):
            raise ValueError("the body's trailing empty lines need canonical_body")
        state = self._state.copy()
        state.update(canonical_rest)
        return state.digest()
