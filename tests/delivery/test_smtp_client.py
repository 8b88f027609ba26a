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


# --- 4xx replies read as such (issue #20, item 3) ---


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "lockstep"])
@pytest.mark.parametrize("stage", ["mail", "rcpt", "data"])
def test_a_421_that_hangs_up_is_recorded_with_its_text_at_its_stage(pipelining, stage):
    """The server answers 421 and closes at once (as Postfix does): the 421, not "connection lost"."""
    calls = {"n": 0}

    def third(*_args):
        calls["n"] += 1
        return "421 4.3.2 shutting down for maintenance" if calls["n"] == 3 else None

    handler = RecordingHandler(pipelining=pipelining, **{f"{stage}_reply": third})
    with SmtpServer(handler) as server:
        smtp = RelayConnection("127.0.0.1", server.port)
        smtp.open()
        outcomes = list(smtp.send(_envelopes(10)))
    assert [o.status for o in outcomes[:2]] == [SENT, SENT]
    refused = outcomes[2]
    assert (refused.status, refused.code, refused.stage) == (DEFERRED, 421, stage)
    assert refused.reply == "4.3.2 shutting down for maintenance"
    assert refused.relay_fault and not refused.domain_throttled
    # Nothing written after it went out: whatever else was in flight comes back untried, not uncertain.
    assert all(o.stage == "connection" and not o.uncertain for o in outcomes[3:])
    assert not smtp.is_open and len(handler.received) == 2


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "lockstep"])
def test_a_4xx_to_one_recipient_is_read_and_the_session_goes_on(pipelining):
    def busy(address):
        return "450 4.2.1 mailbox busy, try later" if address == "user3@example.org" else None

    handler = RecordingHandler(pipelining=pipelining, rcpt_reply=busy)
    with SmtpServer(handler) as server:
        smtp = RelayConnection("127.0.0.1", server.port)
        smtp.open()
        outcomes = list(smtp.send(_envelopes(6)))
        smtp.close()
    assert [o.status for o in outcomes] == [SENT, SENT, SENT, DEFERRED, SENT, SENT]
    assert (outcomes[3].code, outcomes[3].stage, outcomes[3].reply) == (
        450,
        "rcpt",
        "4.2.1 mailbox busy, try later",
    )
    assert not outcomes[3].relay_fault
    assert handler.connections == 1


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "lockstep"])
def test_a_domain_rate_limit_defers_one_message_without_faulting_the_relay(pipelining):
    def limited(address):
        if address == "user2@example.org":
            return "421 4.7.28 Our system has detected an unusual rate of mail; rate limited, try again later"
        return None

    handler = RecordingHandler(pipelining=pipelining, rcpt_reply=limited)
    with SmtpServer(handler) as server:
        smtp = RelayConnection("127.0.0.1", server.port)
        smtp.open()
        outcomes = list(smtp.send(_envelopes(6)))
    throttled = outcomes[2]
    assert (throttled.status, throttled.code, throttled.stage) == (DEFERRED, 421, "rcpt")
    assert throttled.domain_throttled and not throttled.relay_fault
    # The hang-up that came with it is not held against the relay either.
    assert not any(o.relay_fault for o in outcomes)


@pytest.mark.parametrize(
    ("code", "reply", "limited"),
    [
        (421, "4.7.28 unusual rate of unsolicited mail, temporarily rate limited", True),
        (450, "4.7.1 Too many messages, slow down", True),
        (451, "4.7.650 The mail server has been temporarily rate limited", True),
        (451, "4.7.1 Greylisted, please come back in 5 minutes", False),  # greylisting is not a rate
        (451, "4.3.0 rate of something", False),  # not class 7
        (550, "5.7.1 rate limit exceeded", False),  # permanent
        (452, "too many recipients", False),  # no enhanced status
    ],
)
def test_which_replies_are_a_domain_rate_limit(code, reply, limited):
    from delivery.smtp import domain_rate_limited

    assert domain_rate_limited(code, reply) is limited


def test_a_421_greeting_is_a_relay_error_with_its_text():
    from tests.delivery.smtp_servers import GreetingRefuser

    with GreetingRefuser() as server, pytest.raises(RelayError, match="421") as caught:
        test_connection("127.0.0.1", server.port, security="none", timeout=3)
    assert caught.value.code == 421 and "Service not available" in str(caught.value)


def test_a_421_to_ehlo_is_a_relay_error_with_its_text():
    class Closing(RecordingHandler):
        async def handle_EHLO(self, server, session, envelope, hostname, responses):
            await server.push("421 4.7.0 too many connections from your host")
            server.transport.close()
            return "421 4.7.0 too many connections from your host"

    with SmtpServer(Closing()) as server, pytest.raises(RelayError, match="too many connections") as caught:
        test_connection("127.0.0.1", server.port, security="none", timeout=3)
    assert caught.value.code == 421
