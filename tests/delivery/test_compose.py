"""Message bytes: every required header, exact content after decoding, DKIM that verifies, no injection."""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib

import dkim as dkimpy
import pytest

from delivery import verp
from delivery.compose import MessageBuilder, Recipient, dot_stuff, qp
from delivery.dkim import DkimSigner, canonical_body, generate_private_key
from delivery.headers import check_extra_headers, check_header_value, encode_unstructured, format_address
from mailplatform.errors import PlatformError as ValidationError

COMPILED = {
    "format": 1,
    "subject": "Hello {{ contact.first_name }}",
    "html": "",
    "text": "",
    "uses_logic": False,
    "fields": ["contact"],
    "segments": {
        "subject": [["Hello ", " – news"], [0]],
        "html": [
            [
                "<p>Hi ",
                "</p>\n" + "<p>.leading dot and   spaces, é and {braces}</p>\n" * 60 + '<a href="',
                '">Unsubscribe</a>\n',
            ],
            [0, 1],
        ],
        "text": [["Hi ", ",\n.dot line\n", "\n"], [0, 1]],
    },
    "slots": [[["contact", "first_name"], "there"], [["unsubscribe_url"], None]],
}


def _builder(signer=None, **overrides):
    fields = dict(
        mailing_id=7,
        from_email="news@example.com",
        from_name="Example News, Inc.",
        reply_to="help@example.com",
        list_ids=[3, 1],
        kind="marketing",
        send_group="campaign:5",
        extra_headers={"X-Campaign": "Spring"},
        compiled=COMPILED,
        signer=signer,
    )
    fields.update(overrides)
    return MessageBuilder(**fields)


def _context(first_name, message_url="https://example.com/u/1/?a=1&b=2"):
    return {"contact": {"first_name": first_name, "email": "ada@example.org"}, "unsubscribe_url": message_url}


def _parse(data: bytes):
    unstuffed = data.replace(b"\r\n..", b"\r\n.")
    return unstuffed, email.message_from_bytes(unstuffed, policy=email.policy.default)


def test_headers_and_parts(settings):
    settings.BOUNCE_DOMAIN = "bounce.example.com"
    settings.SITE_URL = "https://mail.example.com"
    builder = _builder()
    data = builder.build(Recipient(123, "ada@example.org", _context("Ada <b>")))
    assert data.endswith(b"\r\n") and b"\n" not in data.replace(b"\r\n", b"")
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    _, message = _parse(data)
    assert message["Subject"] == "Hello Ada <b> – news"
    assert message["From"] == '"Example News, Inc." <news@example.com>'
    assert message["Reply-To"].addresses[0].addr_spec == "help@example.com"
    assert message["To"].addresses[0].addr_spec == "ada@example.org"
    token = verp.message_token(123, "unsubscribe")
    assert message["List-Unsubscribe"] == (
        f"<https://mail.example.com/delivery/u/{token}/>, "
        f"<mailto:unsubscribe+{token}@bounce.example.com?subject=unsubscribe>"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Id"] == "<list-1-3.bounce.example.com>"
    assert message["Feedback-ID"] == "7:campaign-5:marketing:posthorn"
    assert message["X-Campaign"] == "Spring"
    assert message["Date"]
    assert message["Message-ID"].endswith(".123@example.com>")
    text, html = [part.get_content() for part in message.iter_parts()]
    assert text.replace("\r\n", "\n") == "Hi Ada <b>,\n.dot line\nhttps://example.com/u/1/?a=1&b=2\n"
    # HTML values are escaped like the template's own renderer does; literal text arrives intact.
    assert html.startswith("<p>Hi Ada &lt;b&gt;</p>")
    assert html.count(".leading dot and   spaces, é and {braces}") == 60
    assert 'href="https://example.com/u/1/?a=1&amp;b=2"' in html


def test_default_applies_and_subject_is_encoded_per_recipient():
    builder = _builder()
    _, message = _parse(builder.build(Recipient(5, "x@example.org", _context(""))))
    assert message["Subject"] == "Hello there – news"
    raw = builder.build(Recipient(6, "y@example.org", _context("Zoë")))
    assert b"Subject: =?utf-8?b?" in raw
    assert _parse(raw)[1]["Subject"] == "Hello Zoë – news"


def test_merge_value_cannot_inject_headers():
    builder = _builder()
    raw = builder.build(Recipient(5, "x@example.org", _context("Eve\r\nBcc: victim@example.org")))
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nBcc:" not in head
    # The line break becomes whitespace (how much is the template renderer's business).
    subject = _parse(raw)[1]["Subject"]
    assert "\r" not in subject and "\n" not in subject
    assert " ".join(subject.split()) == "Hello Eve Bcc: victim@example.org – news"


def test_every_line_starting_with_a_dot_is_stuffed():
    assert dot_stuff(b".a\r\nb\r\n.c\r\n") == b"..a\r\nb\r\n..c\r\n"
    raw = _builder().build(Recipient(5, "x@example.org", _context(".Dotty")))
    for line in raw.split(b"\r\n"):
        assert not line.startswith(b".") or line.startswith(b"..")


@pytest.mark.parametrize("tracked", [False, True])
def test_parts_stuffed_piece_by_piece_are_the_whole_message_stuffed(tracked):
    """The literal chunks are dot-stuffed once per mailing and each message's values on their own:
    the bytes are those of stuffing the whole message, and every dot arrives (none doubled)."""
    builder = _builder(track_opens=tracked, track_clicks=tracked)
    for name in [".Dotty", "a\n.b\n..c", ".", "..", "x" * 80 + ".y", "plain", ""]:
        url = "https://example.com/" + "." * 90 + "/?a=1"
        raw = builder.build(Recipient(5, "x@example.org", _context(name, url)))
        unstuffed = raw.replace(b"\r\n..", b"\r\n.")
        assert dot_stuff(unstuffed) == raw, name
        text = list(_parse(raw)[1].iter_parts())[0].get_content().replace("\r\n", "\n")
        assert text.startswith(f"Hi {name or 'there'},\n.dot line\n"), name
        if not tracked:
            assert text.endswith(f"{url}\n")


def test_quoted_printable_segments_round_trip():
    import quopri

    for text in ["plain", "ends with space ", "é\n\nline", "=x=", "a" * 300, ".dot", "tab\tend\t"]:
        assert quopri.decodestring(qp(text).replace(b"\r\n", b"\n")).decode().rstrip("\n") == text.rstrip(
            "\n"
        )


def test_dkim_signature_verifies_and_covers_list_unsubscribe():
    pem, public = generate_private_key()
    signer = DkimSigner("example.com", "s1", pem)
    raw, _ = _parse(_builder(signer=signer).build(Recipient(9, "ada@example.org", _context("Ada"))))
    dns = {b"s1._domainkey.example.com.": f"v=DKIM1; k=rsa; p={public}".encode()}

    def dnsfunc(name, timeout=5):
        return dns.get(name if isinstance(name, bytes) else name.encode())

    assert dkimpy.verify(raw, dnsfunc=dnsfunc)
    signature = raw.split(b"\r\n\r\n")[0].split(b"DKIM-Signature:")[1].split(b"\r\nMessage-ID")[0]
    signed = signature.split(b"h=")[1].split(b";")[0].split(b":")
    assert b"list-unsubscribe" in signed and b"list-unsubscribe-post" in signed
    # A changed List-Unsubscribe no longer verifies.
    tampered = raw.replace(b"List-Unsubscribe: <http", b"List-Unsubscribe: <xttp", 1)
    assert not dkimpy.verify(tampered, dnsfunc=dnsfunc)


@pytest.mark.parametrize("tracked", [False, True])
def test_dkim_of_a_prepared_mailing_verifies_for_every_recipient(tracked):
    """What every message shares is canonicalised and hashed once per mailing (MessageBuilder);
    whitespace in merge values (runs, tabs, trailing) and per-message tracking URLs must still
    give the body hash of the whole message, and the header hash of the headers as sent."""
    pem, public = generate_private_key()
    builder = _builder(signer=DkimSigner("example.com", "s1", pem), track_opens=tracked, track_clicks=tracked)
    assert builder._prepared is not None  # the prepared path, not the general one
    dns = {b"s1._domainkey.example.com.": f"v=DKIM1; k=rsa; p={public}".encode()}

    def dnsfunc(name, timeout=5):
        return dns.get(name if isinstance(name, bytes) else name.encode())

    names = ["Ada", "  Grace\t Hopper  ", "tab\tend\t", "", "Zoë   " * 30, "line\nbreak ", ".dot\n.line"]
    for n, name in enumerate(names):
        raw, _ = _parse(builder.build(Recipient(n + 1, f"r{n}@example.org", _context(name))))
        head, body = raw.split(b"\r\n\r\n", 1)
        body_hash = head.split(b"bh=")[1].split(b";")[0]
        assert body_hash == base64.b64encode(hashlib.sha256(canonical_body(body)).digest())
        assert dkimpy.verify(raw, dnsfunc=dnsfunc), name
        assert not dkimpy.verify(raw.replace(b"To: <r", b"To: <x", 1), dnsfunc=dnsfunc)


def test_relaxed_body_canonicalisation():
    assert canonical_body(b"a  b \t\r\n\r\n\r\n") == b"a b\r\n"
    assert canonical_body(b"") == b""


def test_header_values_with_line_breaks_are_refused():
    for bad in ["a\r\nBcc: x@example.com", "a\nb", "a\rb", "a\u2028b"]:
        with pytest.raises(ValidationError, match="line break"):
            check_header_value(bad, field="subject")
    with pytest.raises(ValidationError, match="set by the platform"):
        check_extra_headers({"Bcc": "x@example.com"})
    with pytest.raises(ValidationError, match="not a valid header name"):
        check_extra_headers({"X Bad": "v"})
    with pytest.raises(ValidationError, match="line break"):
        check_extra_headers({"X-Tag": "v\r\nBcc: x"})
    assert check_extra_headers({"X-Tag": "fine"}) == {"X-Tag": "fine"}


def test_display_names_and_long_subjects():
    assert format_address("a@example.com", "Ada") == "Ada <a@example.com>"
    assert format_address("a@example.com", 'Ada "the" Count') == '"Ada \\"the\\" Count" <a@example.com>'
    assert format_address("a@example.com", "Zoë").startswith("=?utf-8?b?")
    folded = encode_unstructured("word " * 40)
    assert all(len(line) <= 78 for line in folded.split("\r\n"))


def test_short_values_encode_as_binascii_does():
    """qp's shortcut for short printable values gives binascii's bytes exactly: a trailing space,
    a lone dot, "=", tabs, non-ASCII and long lines still go through b2a_qp."""
    import binascii
    import random

    def reference(text: str) -> bytes:
        if not text:
            return b""
        encoded = binascii.b2a_qp(text.replace("\r\n", "\n").encode("utf-8"), istext=True)
        encoded = encoded.replace(b"\n", b"\r\n")
        return encoded if encoded.endswith(b"\r\n") else encoded + b"=\r\n"

    rng = random.Random(11)
    printable = [chr(c) for c in range(32, 127)]
    odd = [*printable, "\t", "\x01", "\x7f", "é", "€", "=", ".", " ", "\r\n", "\n"]
    cases = ["", ".", " ", "a ", ". ", "..", "=", "a=b", "x" * 70, "x" * 71, "x" * 76, "x" * 77, ".a", "a\t"]
    for _ in range(20000):
        alphabet = odd if rng.random() < 0.3 else printable
        cases.append("".join(rng.choice(alphabet) for _ in range(rng.choice([1, 2, 5, 40, 70, 71, 80]))))
    for text in cases:
        assert qp(text) == reference(text), repr(text)
