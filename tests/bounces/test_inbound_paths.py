"""Every inbound path feeds the classifier and the bounce log: stdin, SMTP, IMAP, POP3."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import smtplib
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from delivery.bounces import server
from delivery.bounces.mailboxes import mailbox_password, mailbox_poll, mailbox_set_password
from delivery.bounces.models import BounceEvent, BounceMailbox, InboundMessage
from delivery.bounces.server import GroupCommit, bounce_controller, flood_reset
from delivery.bounces.services import Inbound
from mailplatform.redis_cache import redis_client
from tests.bounces.dovecot import dovecot  # noqa: F401  (fixture)
from tests.conftest import REPO_ROOT, database_url_for_tests

SAMPLES = Path(__file__).parent / "samples"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- process_bounce (an MTA's pipe) ---


def _pipe_env(listener_port: int | None = None) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url_for_tests(),
        "REDIS_URL": settings.REDIS_URL,
        "DJANGO_SETTINGS_MODULE": "mailplatform.settings_test",
        # no listener there (a free port): the message is processed in the pipe's own process
        "BOUNCE_SMTP_PORT": str(listener_port or _free_port()),
    }


def _process_bounce(
    raw: bytes,
    *args: str,
    command: tuple[str, ...] = ("manage.py", "process_bounce"),
    listener_port: int | None = None,
) -> subprocess.CompletedProcess[bytes]:
    env = _pipe_env(listener_port)
    return subprocess.run(
        [sys.executable, *command, *args],
        cwd=REPO_ROOT,
        env=env,
        input=raw,
        capture_output=True,
        timeout=60,
    )


@pytest.mark.django_db(transaction=True)
def test_process_bounce_reads_stdin_and_logs_the_evidence() -> None:
    raw = (SAMPLES / "exim-text.eml").read_bytes()
    result = _process_bounce(raw, "--sender", "", "--recipient", "bounces@elsewhere.example")
    assert result.returncode == 0, result.stderr
    inbound = InboundMessage.objects.get()
    assert inbound.source == "pipe" and bytes(inbound.raw) == raw and inbound.format == "text"
    event = BounceEvent.objects.get()
    assert (event.recipient, event.kind, event.reason) == ("gone@example.com", "hard", "userunknown")
    # No token and no contact with that address: recorded, nobody's status touched.
    assert event.contact_id is None and inbound.outcome == "unattributed"


@pytest.mark.django_db(transaction=True)
def test_process_bounce_drops_a_forged_token(settings) -> None:
    domain = getattr(settings, "BOUNCE_DOMAIN", "localhost")
    raw = (SAMPLES / "dsn-postfix-userunknown.eml").read_bytes()
    result = _process_bounce(raw, "--recipient", f"bounces+1-aaaaaaaa@{domain}")
    assert result.returncode == 0, result.stderr
    assert InboundMessage.objects.get().outcome in ("forged", "unattributed")
    assert not BounceEvent.objects.filter(contact_id__isnull=False).exists()


def test_process_bounce_with_nothing_on_stdin_says_so() -> None:
    result = _process_bounce(b"")
    assert result.returncode == 1
    assert b"no message on stdin" in result.stderr and b"Traceback" not in result.stderr


PIPE_MODULE = ("-m", "delivery.bounces.pipe")


@pytest.mark.django_db(transaction=True)
def test_the_pipe_module_without_a_listener_processes_the_message_itself() -> None:
    raw = (SAMPLES / "exim-text.eml").read_bytes()
    result = _process_bounce(raw, "--recipient", "bounces@elsewhere.example", command=PIPE_MODULE)
    assert result.returncode == 0, result.stderr
    assert b"processing here" in result.stderr and b"unattributed" in result.stdout
    assert InboundMessage.objects.get().source == "pipe"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("exempt", [False, True], ids=["counted", "exempt"])
def test_the_pipe_hands_each_message_to_the_listener_and_none_is_lost(exempt: bool) -> None:
    """Each pipe process gives its message to the listener (stored in the listener's group, 250
    once committed); one the flood limit refuses is processed in the pipe's own process."""
    flood_reset("bounce.example.net", "127.0.0.1")
    port = _free_port()
    controller = bounce_controller(
        "127.0.0.1",
        port,
        max_bytes=64 * 1024,
        per_minute=3,
        domain="bounce.example.net",
        flood_exempt=["127.0.0.1"] if exempt else [],
    )
    controller.start()
    try:
        raw = (SAMPLES / "exim-text.eml").read_bytes()
        results = [
            _process_bounce(
                raw, "--recipient", "bounces@bounce.example.net", command=PIPE_MODULE, listener_port=port
            )
            for _ in range(5)
        ]
    finally:
        controller.stop()
        flood_reset("bounce.example.net", "127.0.0.1")
    assert [r.returncode for r in results] == [0] * 5, [r.stderr for r in results]
    by_listener = sum(b"stored by the bounce listener: 250" in r.stdout for r in results)
    sources = sorted(InboundMessage.objects.values_list("source", flat=True))
    if exempt:
        assert by_listener == 5 and sources == ["smtp"] * 5
    else:  # three a minute from 127.0.0.1: the other two went the slow way, none lost
        assert by_listener == 3 and sources == ["pipe"] * 2 + ["smtp"] * 3


def _silent_after_data(sock: socket.socket) -> None:
    """An SMTP server that takes the message and closes without answering it."""
    conn, _ = sock.accept()
    with conn, conn.makefile("rb") as reader:
        conn.sendall(b"220 silent ESMTP\r\n")
        while line := reader.readline():
            verb = line[:4].upper()
            if verb == b"DATA":
                conn.sendall(b"354 go ahead\r\n")
                while (line := reader.readline()) and line != b".\r\n":
                    pass
                return  # the message is in, the answer never comes
            conn.sendall(b"250 OK\r\n")


def test_the_pipe_asks_the_mta_to_retry_when_the_listener_never_answers_the_message() -> None:
    import threading

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        server_thread = threading.Thread(target=_silent_after_data, args=(sock,))
        server_thread.start()
        result = _process_bounce(
            b"Subject: x\r\n\r\nhello\r\n",
            "--recipient",
            "bounces@bounce.example.net",
            command=PIPE_MODULE,
            listener_port=sock.getsockname()[1],
        )
        server_thread.join(10)
    # maybe stored, maybe not: processing it here could store it twice, so the MTA keeps it
    assert result.returncode == 75, result.stderr
    assert b"did not answer" in result.stderr


# --- The SMTP listener ---


@pytest.fixture
def listener(transactional_db):
    flood_reset("bounce.example.net", "127.0.0.1")
    port = _free_port()
    controller = bounce_controller(
        "127.0.0.1", port, max_bytes=64 * 1024, per_minute=5, domain="bounce.example.net"
    )
    controller.start()
    yield port
    controller.stop()
    flood_reset("bounce.example.net", "127.0.0.1")


def test_listener_accepts_mail_for_the_bounce_domain_only(listener) -> None:
    with smtplib.SMTP("127.0.0.1", listener, timeout=10) as client:
        client.ehlo("mx.example.org")
        client.mail("")
        code, reply = client.rcpt("victim@gmail.example")
        assert code == 550 and b"Relaying denied" in reply
        assert client.rcpt("bounces+abc@bounce.example.net")[0] == 250
        code, _ = client.data((SAMPLES / "qmail-text.eml").read_bytes())
        assert code == 250
    event = BounceEvent.objects.get()
    assert event.source == "smtp" and event.recipient == "nobody-here@example.com"
    assert InboundMessage.objects.get().envelope_to == "bounces+abc@bounce.example.net"


def test_listener_refuses_oversized_mail_and_a_flood(listener) -> None:
    with smtplib.SMTP("127.0.0.1", listener, timeout=10) as client:
        client.ehlo("mx.example.org")
        client.mail("")
        client.rcpt("bounces@bounce.example.net")
        code, _ = client.data(b"Subject: big\r\n\r\n" + (b"x" * 76 + b"\r\n") * 1100)
        assert code == 552
    codes = []
    for _ in range(7):
        with smtplib.SMTP("127.0.0.1", listener, timeout=10) as client:
            client.ehlo("mx.example.org")
            codes.append(client.mail("")[0])
    assert codes[:4] == [250] * 4 and 421 in codes[4:]
    assert InboundMessage.objects.count() == 0


def test_the_flood_limit_holds_across_listener_processes(listener) -> None:
    # A second listener (another process behind the same MX) shares the count through Redis.
    port = _free_port()
    second = bounce_controller(
        "127.0.0.1", port, max_bytes=64 * 1024, per_minute=5, domain="bounce.example.net"
    )
    second.start()
    try:
        codes = []
        for target in [listener, port] * 3:
            with smtplib.SMTP("127.0.0.1", target, timeout=10) as client:
                client.ehlo("mx.example.org")
                codes.append(client.mail("")[0])
    finally:
        second.stop()
    assert codes == [250] * 5 + [421]


def test_without_redis_the_flood_limit_holds_per_process(listener, settings) -> None:
    shared = redis_client()
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    codes = []
    for _ in range(7):
        with smtplib.SMTP("127.0.0.1", listener, timeout=10) as client:
            client.ehlo("mx.example.org")
            codes.append(client.mail("")[0])
    assert codes == [250] * 5 + [421] * 2
    assert not shared.exists(server._flood_key("bounce.example.net", "127.0.0.1"))  # counted here


def test_mail_commands_that_arrive_together_are_counted_in_one_question_as_if_one_by_one(
    transactional_db,
) -> None:
    # One script call answers every MAIL that waited: each client's window fills in arrival order.
    handler = server.BounceHandler("bounce.example.net", per_minute=3)
    peers = ["192.0.2.1", "192.0.2.2"]
    for peer in peers:
        flood_reset("bounce.example.net", peer)

    async def together() -> tuple[list[bool], list[bool]]:
        try:
            asked = await handler._flood_answers([peers[0]] * 2 + [peers[1]] + [peers[0]] * 3)
            waited = await asyncio.gather(*(handler._flooding(peer) for peer in [peers[1]] * 3))
            return asked, list(waited)
        finally:
            await handler.close()

    try:
        assert asyncio.run(together()) == ([False, False, False, False, True, True], [False, False, True])
    finally:
        for peer in peers:
            flood_reset("bounce.example.net", peer)


def test_listener_survives_garbage(listener) -> None:
    with smtplib.SMTP("127.0.0.1", listener, timeout=10) as client:
        client.ehlo("mx.example.org")
        client.mail("")
        client.rcpt("bounces@bounce.example.net")
        assert client.data(b"\x00\xff" * 100 + b"\r\nContent-Type: multipart/report\r\n\r\n--")[0] == 250
        client.rset()
        client.mail("")
        client.rcpt("bounces@bounce.example.net")
        assert client.data((SAMPLES / "exim-text.eml").read_bytes())[0] == 250
    assert InboundMessage.objects.count() == 2


def test_the_listener_stores_messages_that_arrive_together_in_one_transaction(transactional_db) -> None:
    store = GroupCommit()
    results = _store_at_once(store, 5)
    assert len({r.inbound_id for r in results}) == 5 and all(r.outcome == "unattributed" for r in results)
    assert _one_transaction()
    assert InboundMessage.objects.count() == 5


def _store_at_once(store: GroupCommit, count: int) -> list:
    """`count` sessions hand the listener's store a bounce each at the same time; the store closes."""
    items = [
        Inbound(
            raw=(SAMPLES / "exim-text.eml").read_bytes(), source="smtp", envelope_to=(f"b+{n}@x.example",)
        )
        for n in range(count)
    ]

    async def sessions() -> list:
        return await asyncio.gather(*(store.store(item) for item in items))

    try:
        return asyncio.run(sessions())
    finally:
        store.close()


def _one_transaction() -> bool:
    with connection.cursor() as cursor:  # rows written by one transaction share its xmin
        cursor.execute(f"SELECT count(DISTINCT xmin::text) FROM {InboundMessage._meta.db_table}")  # noqa: S608
        return cursor.fetchone()[0] == 1


def test_the_listener_stores_a_group_while_another_is_being_stored(
    transactional_db, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two store threads (STORE_LANES): a group that arrives while one is being stored is stored
    at the same time, on a connection of its own, rather than after it."""
    both = threading.Barrier(2, timeout=10)
    real = server.bounces_process

    def meeting(items, **kwargs):
        both.wait()  # each group goes on only once the other is in its store thread too
        return real(items, **kwargs)

    monkeypatch.setattr(server, "bounces_process", meeting)
    store = GroupCommit()
    item = Inbound(raw=(SAMPLES / "exim-text.eml").read_bytes(), source="smtp")

    async def sessions() -> list:
        first = asyncio.ensure_future(store.store(item))
        while not both.n_waiting:  # the first group is in its store thread
            await asyncio.sleep(0.001)
        second = await store.store(item)
        return [await first, second]

    try:
        results = asyncio.run(sessions())
    finally:
        store.close()
    assert [r.outcome for r in results] == ["unattributed"] * 2
    with connection.cursor() as cursor:  # two transactions
        cursor.execute(f"SELECT count(DISTINCT xmin::text) FROM {InboundMessage._meta.db_table}")  # noqa: S608
        assert cursor.fetchone()[0] == 2


def test_classifier_processes_read_the_messages_and_the_store_thread_stores_them_together(
    transactional_db, monkeypatch: pytest.MonkeyPatch
) -> None:
    def not_here(raw: bytes):
        raise AssertionError("classified in the listener's own process")

    monkeypatch.setattr(server, "classify_safely", not_here)  # the processes import their own copy
    store = GroupCommit(classify_processes=2)
    store.start()
    results = _store_at_once(store, 9)
    assert [r.outcome for r in results] == ["unattributed"] * 9  # one answer each, after its commit
    assert len({r.inbound_id for r in results}) == 9 and _one_transaction()
    assert set(BounceEvent.objects.values_list("recipient", flat=True)) == {"gone@example.com"}


def test_a_killed_classifier_process_costs_no_message(transactional_db) -> None:
    store = GroupCommit(classify_processes=1)
    store.start()
    (worker,) = [p for p in multiprocessing.active_children() if p.name.startswith("SpawnProcess")]
    os.kill(worker.pid, signal.SIGKILL)
    worker.join(10)
    item = Inbound(raw=(SAMPLES / "exim-text.eml").read_bytes(), source="smtp")

    async def session() -> list:
        return [await store.store(item), await store.store(item)]

    try:
        # the first is read by the store thread while a new process starts, the second by that one
        results = asyncio.run(session())
    finally:
        store.close()
    assert [r.outcome for r in results] == ["unattributed"] * 2
    assert BounceEvent.objects.filter(recipient="gone@example.com").count() == 2


# --- The mailbox poller, against a real Dovecot ---


def _mailbox(server, protocol: str) -> BounceMailbox:
    mailbox = BounceMailbox(
        name=f"test-{protocol}",
        protocol=protocol,
        host="127.0.0.1",
        port=server.imap_port if protocol == "imap" else server.pop3_port,
        security="none",
        username=server.username,
    )
    mailbox_set_password(mailbox, server.password)
    mailbox.save()
    return mailbox


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_poller_processes_and_removes_what_the_mailbox_holds(transactional_db, dovecot, protocol) -> None:  # noqa: F811
    for name in ("exim-text.eml", "arf-abuse.eml", "not-a-bounce.eml"):
        dovecot.append((SAMPLES / name).read_bytes())
    mailbox = _mailbox(dovecot, protocol)
    assert (
        mailbox_password(mailbox) == dovecot.password and dovecot.password not in mailbox.password_encrypted
    )
    assert mailbox_poll(mailbox) == 3
    mailbox.refresh_from_db()
    assert mailbox.last_error == "" and mailbox.processed_total == 3
    assert dovecot.count() == 0
    assert set(BounceEvent.objects.values_list("kind", flat=True)) == {"hard", "complaint"}
    assert InboundMessage.objects.filter(source="mailbox").count() == 3
    assert mailbox_poll(mailbox) == 0


@pytest.mark.slow
def test_poller_records_a_wrong_password_without_raising(transactional_db, dovecot) -> None:  # noqa: F811
    mailbox = _mailbox(dovecot, "imap")
    mailbox_set_password(mailbox, "wrong")
    mailbox.save()
    assert mailbox_poll(mailbox) == 0
    mailbox.refresh_from_db()
    assert "AUTHENTICATIONFAILED" in mailbox.last_error or "failed" in mailbox.last_error.lower()


PATHS = [
    "<>", "<> SIZE=100", "<>\tX", "<a@b.c>", "<a@b.c> SIZE=100", "<a@b.c>  SIZE=100 BODY=8BITMIME ",
    "<bounces+1-abc@bounce.example.net>", " <a@b.c>", "<a@b.c>\tSIZE=1", "<Ab@Cd.EF>",
    "< a@b.c >", '<"a b"@c.d>', "<a.b@c>x", "<a..b@c>", "<.a@b>", "<a@b.c> (comment)", "<a@[1.2.3.4]>",
    "a@b.c", "<@x:a@b.c>", "<a@-b.c>", "<x@b.c> ", "<a@b.c > X", "<" + "x" * 70 + "@b.c>", "", "<a@b.c",
]  # fmt: skip


@pytest.mark.parametrize("local_part_limit", [0, 64])
def test_the_listener_reads_mail_and_rcpt_paths_as_aiosmtpd_does(local_part_limit: int) -> None:
    # Its shortcut for the plain forms must answer what the RFC 5322 parser answers, whatever comes.
    from aiosmtpd.smtp import SMTP

    from delivery.bounces.server import BounceSMTP

    ours = BounceSMTP(None, enable_SMTPUTF8=True)
    theirs = SMTP(None, enable_SMTPUTF8=True)
    ours.local_part_limit = theirs.local_part_limit = local_part_limit
    assert [ours._getaddr(path) for path in PATHS] == [theirs._getaddr(path) for path in PATHS]


# Messages whose framing is easy to get wrong: the end of data at the start, after an empty line,
# after a bare CR or LF; dot-stuffed lines; lines too long; more than the size limit; more than the
# stream's 1001-byte buffer; and a pipelined next command right behind the end of data.
LONG_MESSAGE = b"".join(b"Line %d of a long report\r\n" % n for n in range(400))
MESSAGES = [
    b"Subject: x\r\n\r\nbody\r\n",
    b"",
    b"\r\n",
    b"..dot first\r\n",
    b"a\r\n..\r\n...\r\n.x\r\n",
    b"a\n.\r\nb\r\n",
    b"a\r.\r\nb\r\n",
    b"a\r\n\r\n\r\n",
    b"x\r\n" + b"y" * 999 + b"\r\n",
    b"x\r\n" + b"y" * 1000 + b"\r\nz\r\n",
    LONG_MESSAGE,
    LONG_MESSAGE * 4,
    b"y" * 5000 + b"\r\n",
]  # fmt: skip


def _session_replies(port: int, stream: bytes, chunk: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for start in range(0, len(stream), chunk):
            sock.sendall(stream[start : start + chunk])
        replies = b""
        while piece := sock.recv(65536):
            replies += piece
    return replies


@pytest.mark.parametrize("chunk", [1, 3, 7, 1000, 1 << 20])
def test_the_listener_reads_data_as_aiosmtpd_does(chunk: int) -> None:
    # Its reading of the message in a few calls must answer and store what aiosmtpd's line-by-line
    # reading does, however the bytes arrive.
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP

    from delivery.bounces.server import BounceSMTP

    class Keep:
        def __init__(self) -> None:
            self.contents: list[bytes] = []

        async def handle_DATA(self, server, session, envelope) -> str:
            self.contents.append(envelope.original_content)
            return "250 Kept"

    def controller(smtp: type[SMTP], handler: Keep) -> Controller:
        class One(Controller):
            def factory(self) -> SMTP:
                return smtp(self.handler, **self.SMTP_kwargs)

        return One(
            handler, hostname="127.0.0.1", port=_free_port(), data_size_limit=16000,
            decode_data=False, server_hostname="mx.test", ident="test",
        )  # fmt: skip

    stream = b"EHLO mx.example.org\r\n"
    for message in MESSAGES:
        stuffed = b"\r\n".join(
            b"." + line if line.startswith(b".") else line for line in message.split(b"\r\n")
        )
        stream += b"MAIL FROM:<>\r\nRCPT TO:<b@bounce.example.net>\r\nDATA\r\n" + stuffed + b".\r\n"
    stream += b"QUIT\r\n"
    answers = []
    for smtp in (SMTP, BounceSMTP):
        handler = Keep()
        server = controller(smtp, handler)
        server.start()
        try:
            answers.append((_session_replies(server.port, stream, chunk), handler.contents))
        finally:
            server.stop()
    assert answers[0] == answers[1]
    replies, contents = answers[1]
    assert replies.count(b"250 Kept") == 10 and replies.count(b"552 ") == 1 and replies.count(b"500 ") == 2
    assert contents[:8] == MESSAGES[:8]  # the dots the sender doubled are single again
