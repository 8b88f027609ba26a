"""Issue #12: a DSN with no return-path token, piped to `process_bounce` or sent to the bounce
listener, marked the address it names as bounced; the listener's reply (`250 … (applied)` versus
`(unattributed)`) also told the sender whether an address is a contact. Now only what we signed
(the VERP token, or our signed Message-ID in the returned headers) changes a contact; the rest is
evidence, and the listener answers every accepted message alike."""

from __future__ import annotations

import os
import smtplib
import subprocess
import sys

import pytest
from django.conf import settings

from contacts.models import ContactStatus
from contacts.services import contact_create
from delivery.bounces.models import BounceEvent, InboundMessage
from delivery.bounces.server import bounce_controller, flood_reset
from delivery.bounces.services import UNATTRIBUTED_WHY, bounce_process
from delivery.verp import message_token, verp_address
from tests.bounces.dovecot import dovecot  # noqa: F401
from tests.bounces.test_policy import _dsn, _message, _status
from tests.conftest import REPO_ROOT, database_url_for_tests
from tests.delivery.smtp_servers import free_port

DOMAIN = "bounce.example.net"
FORGED = _dsn("victim@example.com", "5.1.1", "550 5.1.1 User unknown")


def _process_bounce(raw: bytes, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_tests(),
        "REDIS_URL": settings.REDIS_URL,
        "DJANGO_SETTINGS_MODULE": "mailplatform.settings_test",
        "BOUNCE_SMTP_PORT": str(free_port()),
    }  # fmt: skip  (no listener there: processed in the pipe)
    return subprocess.run(
        [sys.executable, "manage.py", "process_bounce", *args],
        cwd=REPO_ROOT, env=env, input=raw, capture_output=True, timeout=60,
    )  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_a_dsn_without_our_token_piped_to_process_bounce_changes_nobody() -> None:
    victim = contact_create(email="victim@example.com")
    result = _process_bounce(FORGED, "--sender", "", "--recipient", f"bounces@{settings.BOUNCE_DOMAIN}")
    assert result.returncode == 0, result.stderr
    assert _status(victim) == ContactStatus.ACTIVE
    event = BounceEvent.objects.get()
    assert (event.contact_id, event.recipient, event.action) == (None, "victim@example.com", UNATTRIBUTED_WHY)
    assert InboundMessage.objects.get().outcome == "unattributed"


# The rule holds whether the listener classifies in its own process or in classifier processes.
@pytest.fixture(params=[0, 2], ids=["classified-in-listener", "classifier-processes"])
def listener(request, transactional_db):
    flood_reset(DOMAIN, "127.0.0.1")
    port = free_port()
    controller = bounce_controller(
        "127.0.0.1", port, max_bytes=64 * 1024, per_minute=50, domain=DOMAIN, classify_processes=request.param
    )
    controller.start()
    yield port
    controller.stop()
    flood_reset(DOMAIN, "127.0.0.1")


def _send(port: int, rcpt: str, raw: bytes) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("mx.example.org")
        client.mail("")
        assert client.rcpt(rcpt)[0] == 250
        return client.data(raw)


def test_the_listener_changes_nobody_without_our_token_and_answers_every_message_alike(
    listener, settings
) -> None:
    settings.BOUNCE_DOMAIN = DOMAIN
    victim = contact_create(email="victim@example.com")
    ghost = contact_create(email="ghost@example.com")
    real = _dsn("ghost@example.com", "5.1.1", "550 5.1.1 User unknown")
    replies = [
        _send(listener, f"bounces@{DOMAIN}", FORGED),  # names a contact, no token
        _send(listener, f"bounces@{DOMAIN}", _dsn("stranger@example.com", "5.1.1", "550 5.1.1 no")),
        _send(listener, verp_address(_message(ghost).pk).replace(settings.BOUNCE_DOMAIN, DOMAIN), real),
    ]
    assert len(set(replies)) == 1 and replies[0][0] == 250, replies
    assert _status(victim) == ContactStatus.ACTIVE
    assert _status(ghost) == ContactStatus.BOUNCED


def test_the_pipe_hands_its_messages_to_the_listener_which_changes_nobody_without_our_token(
    listener, settings
) -> None:
    settings.BOUNCE_DOMAIN = DOMAIN
    victim = contact_create(email="victim@example.com")
    ghost = contact_create(email="ghost@example.com")
    real = _dsn("ghost@example.com", "5.1.1", "550 5.1.1 User unknown")
    env = {**os.environ, "BOUNCE_SMTP_PORT": str(listener)}
    results = [
        subprocess.run(
            [sys.executable, "-m", "delivery.bounces.pipe", "--recipient", rcpt],
            cwd=REPO_ROOT,
            env=env,
            input=raw,
            capture_output=True,
            timeout=60,
        )  # fmt: skip
        for rcpt, raw in [
            (f"bounces@{DOMAIN}", FORGED),
            (verp_address(_message(ghost).pk).replace(settings.BOUNCE_DOMAIN, DOMAIN), real),
        ]
    ]
    assert [(r.returncode, r.stdout) for r in results] == [
        (0, b"stored by the bounce listener: 250 2.0.0 Accepted\n")
    ] * 2
    assert _status(victim) == ContactStatus.ACTIVE
    assert _status(ghost) == ContactStatus.BOUNCED


ARF = """From: abuse@isp.example
To: fbl@sender.example.net
Subject: Abuse report
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="B"

--B
Content-Type: text/plain

This is an abuse report.

--B
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: ISP-FBL/1.0
Version: 1

--B
Content-Type: message/rfc822

From: news@sender.example.net
To: {to}
Subject: News
Message-ID: {message_id}
Feedback-ID: 7:g1:marketing:posthorn

Hello
--B--
"""


@pytest.mark.django_db
def test_a_feedback_loop_report_is_attributed_by_our_signed_message_id_only() -> None:
    angry = contact_create(email="angry@example.com")
    message = _message(angry)
    signed = f"<{message_token(message.pk, 'message-id')}.{message.pk}@sender.example.net>"
    token = message_token(message.pk, "message-id")
    wrong = "y" if token.endswith("x") else "x"  # a token that already ends in x would stay valid
    forged = f"<{token[:-1]}{wrong}.{message.pk}@sender.example.net>"
    assert bounce_process(
        ARF.format(to=angry.email, message_id=forged).encode(), source="mailbox"
    ).outcome == ("unattributed")
    assert _status(angry) == ContactStatus.ACTIVE
    result = bounce_process(ARF.format(to=angry.email, message_id=signed).encode(), source="mailbox")
    assert result.outcome == "applied"
    assert _status(angry) == ContactStatus.COMPLAINED
    assert BounceEvent.objects.get(contact_id=angry.pk).attributed_by == "message-id"


@pytest.mark.slow
def test_the_mailbox_poller_follows_the_same_rule(transactional_db, dovecot) -> None:  # noqa: F811
    """A real Dovecot mailbox holding the same forged DSN: polled, kept as evidence, nobody changed."""
    from delivery.bounces.mailboxes import mailbox_poll
    from tests.bounces.test_inbound_paths import _mailbox

    victim = contact_create(email="victim@example.com")
    dovecot.append(FORGED)
    assert mailbox_poll(_mailbox(dovecot, "imap")) == 1
    assert _status(victim) == ContactStatus.ACTIVE
    event = BounceEvent.objects.get()
    assert (event.contact_id, event.action) == (None, UNATTRIBUTED_WHY)
    assert InboundMessage.objects.get(source="mailbox").outcome == "unattributed"
