"""The bounce listener: an SMTP server for the bounce domain only (never an open relay).

It accepts RCPT only for addresses at BOUNCE_DOMAIN, limits message size, recipients per
message and messages per client address per minute, counted in Redis across every listener
process (a flood from one host is refused with
a temporary code, so a real MTA retries later; BOUNCE_FLOOD_EXEMPT_PEERS, the local MTA handing
over its pipe, are not counted), and never dies of a message it cannot read.

Messages from all sessions go through two stages, each taking whatever arrived while it was busy:
classification in processes of their own (`BOUNCE_CLASSIFY_PROCESSES`; pure Python, so in one
process it would hold the interpreter the SMTP sessions and the database work need), then
`STORE_LANES` worker threads, each with its own database connection, that store a group each in
one transaction (`bounces_process`): one group's Python runs while another waits on PostgreSQL.
A group is classified while the ones before it are being stored. Each session hears 250 only
once its group is committed.
"""

from __future__ import annotations

import asyncio
import logging
import math
import multiprocessing
import re
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import redis.asyncio
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session
from django.conf import settings
from django.db import close_old_connections, connections
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from delivery.bounces.classifier import BounceReport, classify_safely, classify_served
from delivery.bounces.services import Inbound, ProcessResult, bounce_domain, bounces_process
from mailplatform.redis_cache import redis_client, redis_key, redis_py_url

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 20
MAX_GROUP = 200  # messages per transaction: bounded memory and lock time
MIN_CHUNK = 4  # messages per task for a classifier process: fewer cost more in hand-over than they save
START_SECONDS = 60  # for a classifier process to start
CONNECTION_CHECK_SECONDS = 1.0  # how often a store thread checks its database connection under load
# Groups stored at once, each by a thread and connection of its own. With one, the store was the
# serial stage (a group's Python, then its waits on PostgreSQL, then the next group's). Two
# transactions with soft bounces of one contact take turns (services._soft_contacts_lock_later),
# so the soft-bounce threshold is counted as with one.
STORE_LANES = 2


# A sliding one-minute window per client address in a Redis sorted set: the limit holds across
# every listener process (several behind one MX, restarts), like the relay limits in
# delivery/ratelimit.py. Redis's clock, one atomic script. It answers several MAIL commands at
# once (KEYS[i] and ARGV[i + 1] each), one after the other as separate calls would: the SMTP loop
# asks once for every MAIL that arrived while its previous question was out.
_FLOOD_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local limit = tonumber(ARGV[1])
local answers = {}
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - 60)
  if redis.call('ZCARD', key) >= limit then
    answers[i] = 1
  else
    redis.call('ZADD', key, now, ARGV[i + 1])
    redis.call('EXPIRE', key, 61)
    answers[i] = 0
  end
end
return answers
"""


def _flood_key(domain: str, peer: str) -> str:
    return redis_key("bounces", "flood", domain, peer)


def flood_reset(domain: str, peer: str) -> None:
    redis_client().delete(_flood_key(domain, peer))


class ClassifierProcess:
    """One classifier process fed through a pipe of its own by the SMTP loop, which reads the
    reports itself when they come (add_reader). A ProcessPoolExecutor's hand-over (a feeder thread,
    a manager thread, a shared result queue, a wake-up of the loop from another thread) cost the
    listener more CPU than classifying a small report. One list of messages at a time."""

    def __init__(self) -> None:
        # spawn, not fork: this process runs threads (the SMTP loop, the store worker, Redis).
        context = multiprocessing.get_context("spawn")
        self._pipe, theirs = context.Pipe()
        self.process = context.Process(target=classify_served, args=(theirs,), daemon=True)
        self.process.start()
        theirs.close()

    def wait_started(self) -> None:
        """Block until the process answers (it imports the classifier first)."""
        self._pipe.send([])
        if not self._pipe.poll(START_SECONDS):
            raise TimeoutError("bounce classifier process did not start")
        self._pipe.recv()

    async def classify(self, raws: list[bytes]) -> list[BounceReport]:
        loop = asyncio.get_running_loop()
        reports: asyncio.Future[list[BounceReport]] = loop.create_future()
        descriptor = self._pipe.fileno()

        def answered() -> None:
            loop.remove_reader(descriptor)
            if reports.done():
                return
            try:
                reports.set_result(self._pipe.recv())
            except (EOFError, OSError) as exc:  # the process died
                reports.set_exception(exc)

        loop.add_reader(descriptor, answered)
        try:
            self._pipe.send(raws)
            return await reports
        finally:
            loop.remove_reader(descriptor)

    def close(self) -> None:
        self._pipe.close()  # it ends at the end of its pipe
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)


class _Lane:
    """One store thread and the database connection it keeps (Django's are per thread)."""

    def __init__(self, number: int) -> None:
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"bounce-store-{number}")
        self.checked_at = 0.0  # its thread only


class GroupCommit:
    """Sessions hand in messages; classifier processes read them, store threads (`lanes`) store
    them in groups, a group at a time each, and each session waits for its own group's commit.

    `classify_processes=0` classifies in the store threads (tests, a listener on one core)."""

    def __init__(self, classify_processes: int = 0, lanes: int = STORE_LANES) -> None:
        self._lanes = [_Lane(number) for number in range(max(1, lanes))]
        self._free: asyncio.Queue[_Lane] | None = None
        self._storing: set[asyncio.Task[None]] = set()  # held: the loop keeps only a weak reference
        self._processes = classify_processes
        self._classifier = self._new_classifier()
        self._arrived: asyncio.Queue[tuple[Inbound, asyncio.Future[ProcessResult]]] | None = None
        self._classified: (
            asyncio.Queue[tuple[Inbound, BounceReport | None, asyncio.Future[ProcessResult]]] | None
        ) = None
        self._stages: list[asyncio.Task[None]] = []  # held: the loop keeps only a weak reference
        self._classifying = 0  # batches with the classifier processes, not yet queued for storing
        self._batch_done: asyncio.Event | None = None

    def _new_classifier(self) -> list[ClassifierProcess] | None:
        if not self._processes:
            return None
        return [ClassifierProcess() for _ in range(self._processes)]

    def start(self) -> None:
        """Wait for the classifier processes to start rather than let the first messages wait."""
        for process in self._classifier or ():
            process.wait_started()

    async def store(self, item: Inbound) -> ProcessResult:
        loop = asyncio.get_running_loop()
        if self._classified is None:  # made in the server's own loop, on first use
            self._arrived = asyncio.Queue()
            self._classified = asyncio.Queue()
            self._batch_done = asyncio.Event()
            self._free = asyncio.Queue()
            for lane in self._lanes:
                self._free.put_nowait(lane)
            self._stages = [loop.create_task(self._store_stage())]
            if self._classifier is not None:
                self._stages.append(loop.create_task(self._classify_stage()))
        answer: asyncio.Future[ProcessResult] = loop.create_future()
        if self._classifier is None:
            self._classified.put_nowait((item, None, answer))
        else:
            assert self._arrived is not None
            self._arrived.put_nowait((item, answer))
        return await answer

    async def _classify_stage(self) -> None:
        assert self._arrived is not None and self._classified is not None
        while True:
            batch = [await self._arrived.get()]
            while len(batch) < MAX_GROUP and not self._arrived.empty():
                batch.append(self._arrived.get_nowait())
            reports: list[BounceReport | None]
            self._classifying += 1
            try:
                reports = list(await self._classify([item.raw for item, _ in batch]))
            except Exception:  # a classifier process died: a new pool, and the store thread reads these
                log.exception("bounce listener: classifier processes failed, starting new ones")
                broken, self._classifier = self._classifier, self._new_classifier()
                for process in broken or ():
                    process.close()
                reports = [None] * len(batch)
            finally:
                self._classifying -= 1
            for (item, answer), report in zip(batch, reports, strict=True):
                self._classified.put_nowait((item, report, answer))
            assert self._batch_done is not None
            self._batch_done.set()

    async def _classify(self, raws: list[bytes]) -> list[BounceReport]:
        assert self._classifier is not None
        chunks = max(1, min(self._processes, len(raws) // MIN_CHUNK))
        size = math.ceil(len(raws) / chunks)
        parts = await asyncio.gather(
            *(
                process.classify(raws[start : start + size])
                for process, start in zip(self._classifier, range(0, len(raws), size), strict=False)
            )
        )
        return [report for part in parts for report in part]

    async def _store_stage(self) -> None:
        assert self._classified is not None and self._free is not None
        while True:
            # A free lane first: while every lane is busy, what arrives makes the next group bigger.
            lane = await self._free.get()
            group = [await self._classified.get()]
            waited = False
            while True:
                while len(group) < MAX_GROUP and not self._classified.empty():
                    group.append(self._classified.get_nowait())
                if waited or len(group) >= MAX_GROUP or not self._classifying:
                    break
                # A batch is with the classifiers and about to come back: a group costs mostly its
                # round trips whatever its size, so it takes that batch too (once: arrivals never end).
                assert self._batch_done is not None
                self._batch_done.clear()
                await self._batch_done.wait()
                waited = True
            task = asyncio.get_running_loop().create_task(self._store_in(lane, group))
            self._storing.add(task)
            task.add_done_callback(self._storing.discard)

    async def _store_in(
        self, lane: _Lane, group: list[tuple[Inbound, BounceReport | None, asyncio.Future[ProcessResult]]]
    ) -> None:
        assert self._free is not None
        log.debug("bounce listener: storing a group of %d", len(group))
        try:
            results = await asyncio.get_running_loop().run_in_executor(
                lane.worker,
                self._store_group,
                lane,
                [item for item, _, _ in group],
                [report for _, report, _ in group],
            )
        except Exception as exc:  # the database is away: every session of the group hears 451
            results = [exc] * len(group)
        finally:
            self._free.put_nowait(lane)
        for (_, _, answer), result in zip(group, results, strict=True):
            if answer.done():
                continue
            if isinstance(result, Exception):
                answer.set_exception(result)
            else:
                answer.set_result(result)
        _log_group([item for item, _, _ in group], results)

    def _store_group(
        self, lane: _Lane, items: list[Inbound], reports: list[BounceReport | None]
    ) -> list[ProcessResult]:
        # The lane's connection is kept between groups (CONN_MAX_AGE, health checks). Checking it
        # costs a round trip: at most once a second, and after a group that failed.
        now = time.monotonic()
        if now - lane.checked_at >= CONNECTION_CHECK_SECONDS:
            close_old_connections()
            lane.checked_at = now
        try:
            results = bounces_process(
                items,
                reports=[
                    report if report is not None else classify_safely(item.raw)
                    for item, report in zip(items, reports, strict=True)
                ],
            )
        except Exception:
            lane.checked_at = 0.0
            raise
        if any(result.outcome == "error" for result in results):
            lane.checked_at = 0.0
        return results

    def close(self) -> None:
        # The store threads' database connections must not outlive the listener.
        for lane in self._lanes:
            lane.worker.submit(connections.close_all).result(timeout=30)
            lane.worker.shutdown(wait=True)
        for process in self._classifier or ():
            process.close()


def _log_group(items: list[Inbound], results: list[ProcessResult] | list[BaseException]) -> None:
    """One log line per stored group, naming each message as a line of its own did: a record per
    message (its formatting, the handler's lock, a write to the stream) was a tenth of the SMTP
    loop's CPU. A group that failed is logged where it failed."""
    if not log.isEnabledFor(logging.INFO):
        return
    stored = [
        f"bounce from {item.envelope_from or '<>'} for {','.join(item.envelope_to)}: "
        f"{result.outcome} {result.actions}"
        for item, result in zip(items, results, strict=True)
        if isinstance(result, ProcessResult)
    ]
    if stored:
        log.info("bounce listener: stored %d: %s", len(stored), "; ".join(stored))


class BounceHandler:
    def __init__(
        self,
        domain: str,
        per_minute: int,
        classify_processes: int = 0,
        flood_exempt: frozenset[str] = frozenset(),
    ) -> None:
        self.domain = domain.lower()
        self.per_minute = per_minute
        self.flood_exempt = flood_exempt
        self._seen: dict[str, deque[float]] = defaultdict(deque)
        self.group_commit = GroupCommit(classify_processes)
        self._flood_client: redis.asyncio.Redis | None = None
        self._flood_script: AsyncScript | None = None
        self._flood_loop: asyncio.AbstractEventLoop | None = None
        self._flood_waiting: list[tuple[str, asyncio.Future[bool]]] = []  # SMTP loop only
        self._flood_asking = False
        self._flood_task: asyncio.Future[None] | None = None  # held: the loop keeps only a weak reference

    async def _flooding(self, peer: str) -> bool:
        # Asked from the SMTP loop itself (redis.asyncio): a thread per MAIL FROM cost more than
        # the question. MAILs that arrive while a question is out wait for the next one, which
        # asks for all of them in one call (a call cost the loop more than the rest of a MAIL).
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._flood_waiting.append((peer, answer))
        if not self._flood_asking:
            self._flood_asking = True
            self._flood_task = asyncio.ensure_future(self._flood_ask())
        return await answer

    async def _flood_ask(self) -> None:
        try:
            while self._flood_waiting:
                asked, self._flood_waiting = self._flood_waiting, []
                try:
                    answers = await self._flood_answers([peer for peer, _ in asked])
                except Exception as exc:  # each MAIL hears it, as when it asked alone
                    for _, answer in asked:
                        if not answer.done():
                            answer.set_exception(exc)
                    continue
                for (_, answer), flooding in zip(asked, answers, strict=True):
                    if not answer.done():  # (a session that went away)
                        answer.set_result(flooding)
        finally:
            self._flood_asking = False

    async def _flood_answers(self, peers: list[str]) -> list[bool]:
        try:
            loop = asyncio.get_running_loop()
            if self._flood_script is None or self._flood_loop is not loop:
                client = redis.asyncio.Redis.from_url(
                    redis_py_url(settings.REDIS_URL), health_check_interval=30
                )
                self._flood_client, self._flood_loop = client, loop
                self._flood_script = client.register_script(_FLOOD_SCRIPT)
            members = [f"{time.time_ns()}:{secrets.token_hex(4)}" for _ in peers]
            answers = await self._flood_script(
                keys=[_flood_key(self.domain, peer) for peer in peers], args=[self.per_minute, *members]
            )
            return [bool(answer) for answer in answers]
        except (RedisError, OSError):
            # Redis away: this process's own count still bounds the flood.
            log.warning("bounce listener: Redis unavailable, flood limit is per process", exc_info=True)
            return [self._flooding_here(peer) for peer in peers]

    async def close(self) -> None:
        if self._flood_client is not None:
            await self._flood_client.aclose()
            self._flood_client = self._flood_script = self._flood_loop = None

    def _flooding_here(self, peer: str) -> bool:
        now = time.monotonic()
        window = self._seen[peer]
        while window and now - window[0] > 60:
            window.popleft()
        if len(window) >= self.per_minute:
            return True
        window.append(now)
        return False

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer)
        if peer not in self.flood_exempt and await self._flooding(peer):
            log.warning("bounce listener: %s sends too fast, deferred", peer)
            return "421 4.7.0 Too many messages from your address, try again later"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        domain = address.rpartition("@")[2].lower().strip(">")
        if domain != self.domain:
            return "550 5.7.1 Relaying denied: this server accepts mail for its bounce domain only"
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        item = Inbound(
            raw=envelope.original_content or b"",
            source="smtp",
            envelope_from=envelope.mail_from or "",
            envelope_to=tuple(envelope.rcpt_tos),
        )
        try:
            result = await self.group_commit.store(item)
        except Exception:
            log.exception("bounce listener: processing failed")
            return "451 4.3.0 Temporary failure, try again later"
        # (logged with its group: GroupCommit._store_in)
        if result.outcome == "error":  # this message could not be stored: the sender keeps it and retries
            return "451 4.3.0 Temporary failure, try again later"
        # One reply for every accepted message: what we made of it (applied, unattributed...) would
        # tell the sender whether an address is a contact.
        return "250 2.0.0 Accepted"


# The plain forms every MTA sends, "<>" and "<dot-atom@domain> PARAMS": read without the email
# package's RFC 5322 parser, which was a seventh of the listener's CPU (MAIL and RCPT per message).
# Anything else (quoted local parts, comments, source routes) still goes through the parser.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_PATH_RE = re.compile(
    rf"<(?P<address>(?:{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    rf"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)?)>(?:[ \t]+(?P<rest>[^ \t(].*))?"
)


class BounceSMTP(SMTP):
    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        plain = _PLAIN_PATH_RE.fullmatch(arg.lstrip())
        if plain is None or not (plain.group("address") or plain.group("rest") is None):
            return super()._getaddr(arg)  # (the parser keeps the blank after a null path with parameters)
        address = plain.group("address") or "<>"  # as the parser reads the null path
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, plain.group("rest") or ""

    async def smtp_DATA(self, arg: str) -> None:
        # aiosmtpd reads the message a line at a time, an await and a dozen checks per line: on real
        # bounces (about 100 lines) that was most of the listener's SMTP loop. This reads it in a few
        # calls and gives the same answers (tests: test_the_listener_reads_data_as_aiosmtpd_does).
        if self._decode_data:  # (the listener keeps bytes; the line-by-line way decodes)
            return await super().smtp_DATA(arg)
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            content, refusal = await self._read_data()
        except asyncio.CancelledError:  # the connection was reset during DATA
            self._writer.close()
            raise
        if refusal:
            await self.push(refusal)
            self._set_post_data_state()
            return
        # RFC 5321 4.5.2: a line's leading dot was doubled by the sender.
        if content.startswith(b"."):
            content = content[1:]
        content = content.replace(b"\r\n.", b"\r\n")
        self.envelope.content = self.envelope.original_content = content
        status = await self._call_handler_hook("DATA") if "DATA" in self._handle_hooks else MISSING
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)

    async def _read_data(self) -> tuple[bytes, str]:
        """The message up to the line ".", still dot-stuffed, and the refusal aiosmtpd would give
        ("" for none). Reads no byte past that line (a pipelining client's next command is there),
        and keeps at most about data_size_limit bytes whatever the client sends."""
        reader, limit = self._reader, self.data_size_limit
        data = bytearray()
        refusal = ""  # set once the message passed the size limit and what came was dropped
        while True:
            if data.endswith(_END_OF_DATA) or (data == b".\r\n" and not refusal):
                break
            if len(data) < 3 or b"\r" in data[-4:]:
                # the end may begin in what was already read ("." as the first line, or a CR
                # just before): a byte at a time until it cannot
                data += await reader.readexactly(1)
            else:
                try:
                    data += await reader.readuntil(_END_OF_DATA)
                except asyncio.LimitOverrunError as exc:  # the stream's limit is a line's (1001)
                    data += await reader.readexactly(exc.consumed)
            if limit and len(data) > limit + len(_END_OF_DATA):
                refusal = refusal or self._data_refusal(bytes(data))
                del data[: -len(_END_OF_DATA)]
        if refusal:
            return b"", refusal
        content = bytes(data[:-3])  # without the final ".\r\n"
        return content, self._data_refusal(content)

    def _data_refusal(self, content: bytes) -> str:
        """aiosmtpd's answer to a message too big (552) or with a line too long (500), whichever
        its line-by-line reading meets first; "" for neither."""
        limit, longest = self.data_size_limit, self.line_length_limit
        lines = content.split(b"\r\n")
        if (not limit or len(content) <= limit) and max(map(len, lines)) + 2 <= longest:
            return ""
        total = 0
        for index, line in enumerate(lines):
            size = len(line) + (2 if index < len(lines) - 1 else 0)
            total += size
            if limit and total > limit:
                return "552 Error: Too much mail data"
            if size > longest:
                return "500 Line too long (see RFC5321 4.5.3.1.6)"
        return ""


_END_OF_DATA = b"\r\n.\r\n"


class BounceController(Controller):
    def factory(self) -> SMTP:
        return BounceSMTP(self.handler, **self.SMTP_kwargs)

    def start(self) -> None:
        self.handler.group_commit.start()
        super().start()

    def stop(self, *args, **kwargs) -> None:
        if self.loop.is_running():  # its Redis connections belong to the SMTP loop: closed there
            asyncio.run_coroutine_threadsafe(self.handler.close(), self.loop).result(timeout=10)
        super().stop(*args, **kwargs)
        self.handler.group_commit.close()


def bounce_controller(
    host: str,
    port: int,
    *,
    max_bytes: int,
    per_minute: int,
    domain: str | None = None,
    classify_processes: int = 0,
    flood_exempt: Iterable[str] = (),
) -> BounceController:
    return BounceController(
        BounceHandler(domain or bounce_domain(), per_minute, classify_processes, frozenset(flood_exempt)),
        hostname=host,
        port=port,
        data_size_limit=max_bytes,
        decode_data=False,
        server_hostname=domain or bounce_domain(),
        ident="Posthorn bounce listener",
    )
