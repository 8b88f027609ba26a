"""The bounce listener: an SMTP server for the bounce domain only (never an open relay).

It accepts RCPT only for addresses at BOUNCE_DOMAIN, limits message size, recipients per
message and messages per client address per minute, counted in Redis across every listener
process (a flood from one host is refused with
a temporary code, so a real MTA retries later), and never dies of a message it cannot read.

Messages from all sessions are committed in groups: one worker thread with one database
connection takes whatever arrived while the previous group was being stored and processes it in
one transaction (`bounces_process`); each session hears 250 only once its group is committed.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import defaultdict, deque
from concurrent.futures import ThreadPoolExecutor

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from django.db import close_old_connections, connections
from redis.exceptions import RedisError

from delivery.bounces.services import Inbound, ProcessResult, bounce_domain, bounces_process
from mailplatform.redis_cache import redis_client, redis_key

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 20
MAX_GROUP = 200  # messages per transaction: bounded memory and lock time


# A sliding one-minute window per client address in a Redis sorted set: the limit holds across
# every listener process (several behind one MX, restarts), like the relay limits in
# delivery/ratelimit.py. Redis's clock, one atomic script.
_FLOOD_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 1
end
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('EXPIRE', KEYS[1], 61)
return 0
"""
_flood_script = None


def _flood_key(domain: str, peer: str) -> str:
    return redis_key("bounces", "flood", domain, peer)


def flood_reset(domain: str, peer: str) -> None:
    redis_client().delete(_flood_key(domain, peer))


def _store_group(items: list[Inbound]) -> list[ProcessResult]:
    close_old_connections()  # the worker's connection is kept between groups (CONN_MAX_AGE, health checks)
    return bounces_process(items)


class GroupCommit:
    """One worker thread stores what every session received; sessions wait for their group."""

    def __init__(self) -> None:
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bounce-store")
        self._queue: asyncio.Queue[tuple[Inbound, asyncio.Future[ProcessResult]]] | None = None
        self._drainer: asyncio.Task[None] | None = None  # held: the loop keeps only a weak reference

    async def store(self, item: Inbound) -> ProcessResult:
        loop = asyncio.get_running_loop()
        if self._queue is None:  # made in the server's own loop, on first use
            self._queue = asyncio.Queue()
            self._drainer = loop.create_task(self._drain())
        answer: asyncio.Future[ProcessResult] = loop.create_future()
        self._queue.put_nowait((item, answer))
        return await answer

    async def _drain(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            group = [await self._queue.get()]
            while len(group) < MAX_GROUP and not self._queue.empty():
                group.append(self._queue.get_nowait())
            try:
                results = await loop.run_in_executor(self._worker, _store_group, [item for item, _ in group])
            except Exception as exc:  # the database is away: every session of the group hears 451
                results = [exc] * len(group)
            for (_, answer), result in zip(group, results, strict=True):
                if answer.done():
                    continue
                if isinstance(result, Exception):
                    answer.set_exception(result)
                else:
                    answer.set_result(result)

    def close(self) -> None:
        # The worker's database connection must not outlive the listener.
        self._worker.submit(connections.close_all).result(timeout=30)
        self._worker.shutdown(wait=True)


class BounceHandler:
    def __init__(self, domain: str, per_minute: int) -> None:
        self.domain = domain.lower()
        self.per_minute = per_minute
        self._seen: dict[str, deque[float]] = defaultdict(deque)
        self.group_commit = GroupCommit()

    def _flooding(self, peer: str) -> bool:
        global _flood_script
        try:
            if _flood_script is None:
                _flood_script = redis_client().register_script(_FLOOD_SCRIPT)
            member = f"{time.time_ns()}:{secrets.token_hex(4)}"
            return bool(_flood_script(keys=[_flood_key(self.domain, peer)], args=[self.per_minute, member]))
        except RedisError:
            # Redis away: this process's own count still bounds the flood.
            log.warning("bounce listener: Redis unavailable, flood limit is per process", exc_info=True)
            return self._flooding_here(peer)

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
        if await asyncio.to_thread(self._flooding, peer):
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
        log.info(
            "bounce from %s for %s: %s %s",
            item.envelope_from or "<>",
            ",".join(item.envelope_to),
            result.outcome,
            result.actions,
        )
        if result.outcome == "error":  # this message could not be stored: the sender keeps it and retries
            return "451 4.3.0 Temporary failure, try again later"
        # One reply for every accepted message: what we made of it (applied, unattributed...) would
        # tell the sender whether an address is a contact.
        return "250 2.0.0 Accepted"


class BounceController(Controller):
    def stop(self, *args, **kwargs) -> None:
        super().stop(*args, **kwargs)
        self.handler.group_commit.close()


def bounce_controller(
    host: str, port: int, *, max_bytes: int, per_minute: int, domain: str | None = None
) -> BounceController:
    return BounceController(
        BounceHandler(domain or bounce_domain(), per_minute),
        hostname=host,
        port=port,
        data_size_limit=max_bytes,
        decode_data=False,
        server_hostname=domain or bounce_domain(),
        ident="Posthorn bounce listener",
    )
