"""The bounce listener: an SMTP server for the bounce domain only (never an open relay).

It accepts RCPT only for addresses at BOUNCE_DOMAIN, limits message size, recipients per
message and messages per client address per minute, counted in Redis across every listener
process (a flood from one host is refused with
a temporary code, so a real MTA retries later), and never dies of a message it cannot read.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import defaultdict, deque

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from django.conf import settings
from django.db import close_old_connections, connections
from redis.exceptions import RedisError

from delivery.bounces.services import bounce_domain, bounce_process
from mailplatform.redis_cache import redis_client

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 20


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
    prefix = settings.CACHES["default"].get("KEY_PREFIX", "posthorn")
    return f"{prefix}:bounces:flood:{domain}:{peer}"


def flood_reset(domain: str, peer: str) -> None:
    redis_client().delete(_flood_key(domain, peer))


class BounceHandler:
    def __init__(self, domain: str, per_minute: int) -> None:
        self.domain = domain.lower()
        self.per_minute = per_minute
        self._seen: dict[str, deque[float]] = defaultdict(deque)

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
        raw = envelope.original_content or b""
        try:
            result = await asyncio.to_thread(
                self._process, envelope.mail_from or "", list(envelope.rcpt_tos), raw
            )
        except Exception:
            log.exception("bounce listener: processing failed")
            return "451 4.3.0 Temporary failure, try again later"
        return f"250 2.0.0 Accepted ({result})"

    @staticmethod
    def _process(mail_from: str, recipients: list[str], raw: bytes) -> str:
        close_old_connections()
        try:
            result = bounce_process(raw, source="smtp", envelope_from=mail_from, envelope_to=recipients)
        finally:
            # Worker threads come and go; a connection left in one would leak.
            connections.close_all()
        log.info(
            "bounce from %s for %s: %s %s",
            mail_from or "<>",
            ",".join(recipients),
            result.outcome,
            result.actions,
        )
        return result.outcome


def bounce_controller(
    host: str, port: int, *, max_bytes: int, per_minute: int, domain: str | None = None
) -> Controller:
    return Controller(
        BounceHandler(domain or bounce_domain(), per_minute),
        hostname=host,
        port=port,
        data_size_limit=max_bytes,
        decode_data=False,
        server_hostname=domain or bounce_domain(),
        ident="Posthorn bounce listener",
    )
