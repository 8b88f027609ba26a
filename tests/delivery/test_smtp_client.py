"""The SMTP client against real aiosmtpd servers on loopback: pipelined or not, refusals, TLS, AUTH."""

from __future__ import annotations

import datetime as dt
import ssl

import pytest
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from delivery.smtp import DEFERRED, FAILED, SENT, Envelope, RelayConnection, RelayError, test_connection
from tests.delivery.smtp_servers import RecordingHandler, SmtpServer, free_port


def _envelopes(n: int, *, bad: set[int] = frozenset(), size: int = 200) -> list[Envelope]:
    out = []
    for i in range(n):
        rcpt = f"bad{i}@example.org" if i in bad else f"user{i}@example.org"
        body = b"Subject: test %d\r\n\r\n" % i + b"x" * size + b"\r\n"
        out.append(Envelope(i, b"bounces+abc@example.com", rcpt.encode(), body))
    return out


def _refuse_bad(address: str) -> str | None:
    return f"550 5.1.1 <{address}>: no such user" if address.startswith("bad") else None


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "lockstep"])
def test_delivers_and_records_refusals(pipelining):
    handler = RecordingHandler(pipelining=pipelining, rcpt_reply=_refuse_bad)
    with SmtpServer(handler) as server:
        smtp = RelayConnection("127.0.0.1", server.port, security="none")
        info = smtp.open()
        assert info.pipelining is pipelining
        outcomes = list(smtp.send(_envelopes(30, bad={0, 7, 8, 29})))
        smtp.close()
    assert [o.key for o in outcomes] == list(range(30))
    failed = [o for o in outcomes if o.status == FAILED]
    assert [o.key for o in failed] == [0, 7, 8, 29]
    assert all(o.code == 550 and o.stage == "rcpt" and "no such user" in o.reply for o in failed)
    assert sorted(handler.recipients()) == sorted(
        f"user{i}@example.org" for i in range(30) if i not in {0, 7, 8, 29}
    )
    # One session for all of them: the connection is reused.
    assert handler.connections == 1
    # Envelope sender and SIZE parameter went through.
    assert all(m.mail_from == "bounces+abc@example.com" for m in handler.received)


def test_message_bytes_arrive_exactly():
    handler = RecordingHandler()
    with SmtpServer(handler) as server:
        smtp = RelayConnection("127.0.0.1", server.port)
        smtp.open()
        data = b"Subject: dots\r\n\r\n..leading dot (stuffed)\r\nline\r\n"
        [outcome] = list(smtp.send([Envelope(1, b"a@example.com", b"b@example.org", data)]))
        smtp.close()
    assert outcome.status == SENT
    assert handler.received[0].content == b"Subject: dots\r\n\r\n.leading dot (stuffed)\r\nline\r\n"


def test_data_refusal_and_temporary_failure_are_told_apart():
    replies = iter(["554 5.7.1 spam detected", "451 4.3.0 try again later", None])

    handler = RecordingHandler(data_reply=lambda envelope: next(replies))
    with SmtpServer(handler) as server:
        smtp = RelayConnection("127.0.0.1", server.port)
        smtp.open()
        outcomes = list(smtp.send(_envelopes(3)))
        smtp.close()
    assert [(o.status, o.code, o.stage) for o in outcomes] == [
        (FAILED, 554, "data"),
        (DEFERRED, 451, "data"),
        (SENT, 250, "data"),
    ]


@pytest.mark.parametrize("pipelining", [True, False])
def test_421_ends_the_session_and_leaves_the_rest_untaken(pipelining):
    calls = {"n": 0}

    def mail_reply():
        calls["n"] += 1
        return "421 4.7.0 too busy, closing" if calls["n"] == 3 else None

    handler = RecordingHandler(pipelining=pipelining, mail_reply=mail_reply)
    with SmtpServer(handler) as server:
        smtp = RelayConnection("127.0.0.1", server.port)
        smtp.open()
        source = iter(_envelopes(10))
        outcomes = list(smtp.send(source))
        assert not smtp.is_open
    assert [o.status for o in outcomes[:2]] == [SENT, SENT]
    assert outcomes[2].status == DEFERRED and outcomes[2].code == 421
    assert len(handler.received) == 2
    # The envelopes after the 421 were not consumed: the caller gives them to another connection.
    remaining = [e.key for e in source]
    assert remaining and remaining[-1] == 9
    assert {o.key for o in outcomes}.isdisjoint(remaining)


def test_size_limit_fails_the_message_without_submitting_it():
    handler = RecordingHandler()
    with SmtpServer(handler, data_size_limit=2000) as server:
        smtp = RelayConnection("127.0.0.1", server.port)
        info = smtp.open()
        assert info.size_limit == 2000
        big, small = _envelopes(2, size=5000)[0], _envelopes(2)[1]
        outcomes = list(smtp.send([big, small]))
        smtp.close()
    assert outcomes[0].status == FAILED and outcomes[0].stage == "size"
    assert "exceeds the relay's SIZE limit of 2000 bytes" in outcomes[0].reply
    assert outcomes[1].status == SENT and len(handler.received) == 1


def test_refused_connection_is_said_plainly():
    port = free_port()
    with pytest.raises(RelayError, match=rf"connection refused by 127.0.0.1:{port}"):
        test_connection("127.0.0.1", port, security="none", timeout=3)


def test_unresolvable_host_is_said_plainly():
    with pytest.raises(RelayError, match="cannot be resolved"):
        test_connection("no-such-host.invalid", 25, security="none", timeout=3)


def _self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relay.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("relay.test")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


def _authenticator(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == b"mailer" and auth_data.password == b"s3cret"
    return AuthResult(success=ok, handled=False)


def test_starttls_certificate_checked_unless_turned_off_and_auth(tmp_path):
    context = _self_signed(tmp_path)
    handler = RecordingHandler()
    with SmtpServer(
        handler, tls_context=context, authenticator=_authenticator, auth_require_tls=True
    ) as server:
        with pytest.raises(RelayError, match="could not be verified") as info:
            test_connection("127.0.0.1", server.port, security="starttls", timeout=5)
        assert "turn off certificate verification" in str(info.value)

        session = test_connection(
            "127.0.0.1",
            server.port,
            security="starttls",
            verify_certificate=False,
            username="mailer",
            password="s3cret",
            timeout=5,
        )
        assert session.tls and session.authenticated and "auth" in session.esmtp

        with pytest.raises(RelayError, match="refused the username and password"):
            test_connection(
                "127.0.0.1",
                server.port,
                security="starttls",
                verify_certificate=False,
                username="mailer",
                password="wrong",
                timeout=5,
            )


def test_starttls_required_but_not_offered():
    with SmtpServer(RecordingHandler()) as server:
        with pytest.raises(RelayError, match="does not offer STARTTLS"):
            test_connection("127.0.0.1", server.port, security="starttls", timeout=5)
