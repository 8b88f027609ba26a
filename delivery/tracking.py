"""Open and click tracking: signed per-message links, a Redis buffer, and batched event inserts.

Each outgoing message gets one token naming its Mailing and Message, signed with a keyed
BLAKE2b MAC (one per recipient, whatever the number of links). A click URL is that token plus the
index of the link in the Mailing's own link table, so the redirect can only ever go to a URL
that is in the mailing: there is no URL in the request to tamper with, hence no open redirect.

The endpoints only check the token and push one line to a Redis list; a beat task
(`delivery.tasks.tracking_flush`) inserts the events in batches through `tracking_flush`,
flagging opens by mail-privacy proxies and clicks by link scanners (kept, counted apart).
"""

from __future__ import annotations

import atexit
import base64
import datetime as dt
import hashlib
import hmac
import html
import json
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from functools import lru_cache
from typing import Any

from django.conf import settings

from delivery.verp import base36

log = logging.getLogger(__name__)

_TOKEN = re.compile(r"^([0-9a-z]{1,13})\.([0-9a-z]{1,13})\.([A-Za-z0-9_-]{11})$")
# An absolute http(s) href entirely inside one literal piece of the template (no merge field in it).
_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(https?://[^"'<>\s]+)\2""", re.IGNORECASE)
# A URL in the plain-text part ("[label](url)" or bare); trailing punctuation is not part of it.
_TEXT_URL = re.compile(r"https?://[^\s<>\"'()\[\]]+")
_TRAILING = ".,;:!?"
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


# --- tokens ---


@lru_cache(maxsize=4)
def _key(secret: str) -> bytes:
    return hashlib.sha256(b"posthorn-tracking:" + secret.encode()).digest()


def _mac(mailing_id: int, message_id: int, secret: str | None = None) -> str:
    # Keyed BLAKE2b is a MAC in one call (~1 us); HMAC-SHA256 costs several times that per
    # recipient at send time, where every microsecond is paid once per message.
    key = _key(secret if secret is not None else settings.SECRET_KEY)
    digest = hashlib.blake2b(f"{mailing_id}.{message_id}".encode(), key=key, digest_size=8).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def token(mailing_id: int, message_id: int) -> str:
    return f"{base36(mailing_id)}.{base36(message_id)}.{_mac(mailing_id, message_id)}"


def parse_token(value: str) -> tuple[int, int] | None:
    """(mailing id, message id) of a genuine token; None when malformed or tampered with."""
    match = _TOKEN.match(value or "")
    if not match:
        return None
    mailing_id, message_id = int(match.group(1), 36), int(match.group(2), 36)
    # Links in mail sent before a key rotation keep working while the old key is a fallback.
    for secret in (settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", ())):
        if hmac.compare_digest(match.group(3), _mac(mailing_id, message_id, secret)):
            return mailing_id, message_id
    return None


def _prefix() -> str:
    return f"{settings.SITE_URL}/t/"


def open_url(mailing_id: int, message_id: int) -> str:
    return f"{_prefix()}o/{token(mailing_id, message_id)}.gif"


def click_url(mailing_id: int, message_id: int, index: int) -> str:
    return f"{_prefix()}c/{token(mailing_id, message_id)}/{index}"


# --- instrumenting the compiled body (called by delivery.compose once per Mailing) ---


def links_in(source: str) -> list[str]:
    """The trackable links of an HTML source, in order, unescaped, each once."""
    seen: dict[str, None] = {}
    for match in _HREF.finditer(source):
        seen.setdefault(html.unescape(match.group(3)), None)
    return list(seen)


def instrument_literals(
    literals: list[str], indexes: list[int], *, first_slot: int, opens: bool, clicks: bool
) -> tuple[list[str], list[int], list[str], bool]:
    """Split the HTML part's literal pieces at each trackable href (and before </body> for the pixel).

    Returns new (literals, indexes, links, pixel): the href values become slots numbered from
    `first_slot` (link k is slot first_slot + k), the pixel the slot after the last link.
    Per recipient the builder only adds those values: no re-render, no regex.
    """
    links: list[str] = []
    link_index: dict[str, int] = {}
    out_literals: list[str] = []
    out_indexes: list[int] = []
    pieces: list[tuple[str, int | None]] = []  # (literal, slot that follows it)
    for position, literal in enumerate(literals):
        following = indexes[position] if position < len(indexes) else None
        if clicks:
            last = 0
            for match in _HREF.finditer(literal):
                url = html.unescape(match.group(3))
                if url not in link_index:
                    link_index[url] = len(links)
                    links.append(url)
                head = literal[last : match.start(3)]
                pieces.append((head, first_slot + link_index[url]))
                last = match.end(3)
            literal = literal[last:]
        pieces.append((literal, following))
    pixel = False
    if opens:
        pixel_slot = first_slot + len(links)
        # Before the last </body>, or at the very end when the template has none.
        for position in range(len(pieces) - 1, -1, -1):
            literal, following = pieces[position]
            found = list(_BODY_END.finditer(literal))
            if found:
                cut = found[-1].start()
                pieces[position : position + 1] = [
                    (literal[:cut] + '<img src="', pixel_slot),
                    (
                        '" width="1" height="1" alt="" style="display:block;border:0">' + literal[cut:],
                        following,
                    ),
                ]
                pixel = True
                break
        if not pixel:
            literal, following = pieces[-1]
            pieces[-1] = (literal + '<img src="', pixel_slot)
            pieces.append(('" width="1" height="1" alt="" style="display:block;border:0">', None))
            pixel = True
    for literal, following in pieces:
        out_literals.append(literal)
        if following is not None:
            out_indexes.append(following)
    return out_literals, out_indexes, links, pixel


def instrument_text(
    literals: list[str], indexes: list[int], *, links: list[str], first_slot: int
) -> tuple[list[str], list[int]]:
    """The plain-text part's URLs that are links of the HTML part become the same click slots."""
    if not links:
        return literals, indexes
    position_of = {url: index for index, url in enumerate(links)}
    out_literals: list[str] = []
    out_indexes: list[int] = []
    for position, literal in enumerate(literals):
        last = 0
        for match in _TEXT_URL.finditer(literal):
            url = match.group(0).rstrip(_TRAILING)
            index = position_of.get(url)
            if index is None:
                continue
            out_literals.append(literal[last : match.start()])
            out_indexes.append(first_slot + index)
            last = match.start() + len(url)
        out_literals.append(literal[last:])
        if position < len(indexes):
            out_indexes.append(indexes[position])
    return out_literals, out_indexes


def rewrite_text(source: str, *, mailing_id: int, message_id: int, links: list[str]) -> str:
    """The slow path's plain-text part: URLs of the mailing's links become click URLs."""
    if not links:
        return source
    value = token(mailing_id, message_id)
    prefix = _prefix()
    position_of = {url: index for index, url in enumerate(links)}

    def replace(match: re.Match[str]) -> str:
        url = match.group(0).rstrip(_TRAILING)
        index = position_of.get(url)
        if index is None:
            return match.group(0)
        return f"{prefix}c/{value}/{index}" + match.group(0)[len(url) :]

    return _TEXT_URL.sub(replace, source)


def recipient_values(mailing_id: int, message_id: int, link_count: int, pixel: bool) -> list[str]:
    """The per-recipient values of the tracking slots: one token, formatted into each URL."""
    value = token(mailing_id, message_id)
    prefix = _prefix()
    values = [f"{prefix}c/{value}/{index}" for index in range(link_count)]
    if pixel:
        values.append(f"{prefix}o/{value}.gif")
    return values


def rewrite_html(source: str, *, mailing_id: int, message_id: int, links: list[str], opens: bool) -> str:
    """The slow path (templates with logic, rendered per recipient): rewrite the links of the mailing."""
    value = token(mailing_id, message_id)
    prefix = _prefix()
    index = {url: position for position, url in enumerate(links)}

    def replace(match: re.Match[str]) -> str:
        position = index.get(html.unescape(match.group(3)))
        if position is None:
            return match.group(0)
        return f"{match.group(1)}{match.group(2)}{prefix}c/{value}/{position}{match.group(2)}"

    out = _HREF.sub(replace, source) if links else source
    if opens:
        pixel = (
            f'<img src="{prefix}o/{value}.gif" width="1" height="1" alt="" style="display:block;border:0">'
        )
        found = list(_BODY_END.finditer(out))
        out = out[: found[-1].start()] + pixel + out[found[-1].start() :] if found else out + pixel
    return out


def mailing_links(compiled: dict[str, Any], *, clicks: bool) -> list[str]:
    """The link table of a Mailing: what its click tokens index. Same order compose used."""
    if not clicks:
        return []
    if not compiled.get("uses_logic", True) and compiled.get("segments"):
        literals, indexes = compiled["segments"]["html"]
        return instrument_literals(list(literals), list(indexes), first_slot=0, opens=False, clicks=True)[2]
    return links_in(_static_html(compiled.get("html", "")))


def _static_html(source: str) -> str:
    # Links built with Liquid differ per recipient: only literal ones are tracked.
    return re.sub(r"\{\{.*?\}\}|\{%.*?%\}", " ", source, flags=re.DOTALL)


_link_cache: OrderedDict[int, tuple[list[str] | None, dict[str, str]]] = OrderedDict()


def _mailing_links_and_utm(mailing_id: int) -> tuple[list[str] | None, dict[str, str]]:
    cached = _link_cache.get(mailing_id)
    if cached is None:
        from delivery.models import Mailing

        row = (
            Mailing.objects.filter(pk=mailing_id, track_clicks=True)
            .values_list("compiled", "created_at", "meta")
            .first()
        )
        links = None
        utm: dict[str, str] = {}
        if row is not None and not _expired(row[1]):
            links = mailing_links(row[0], clicks=True)
            utm = {k: str(v) for k, v in ((row[2] or {}).get("utm") or {}).items() if k.startswith("utm_")}
        cached = _link_cache[mailing_id] = (links, utm)
        if len(_link_cache) > 512:
            _link_cache.popitem(last=False)
    return cached


def link_for(mailing_id: int, index: int) -> str | None:
    """The URL behind link `index` of the Mailing, or None (no such mailing, link, or click tracking)."""
    links, _ = _mailing_links_and_utm(mailing_id)
    if not links or not 0 <= index < len(links):
        return None
    return links[index]


def click_target(mailing_id: int, url: str) -> str:
    """Where a click on `url` goes: the URL with the Mailing's UTM tags (a campaign's; none for
    transactional mail), except tags the link already carries and links that are not web pages."""
    return with_utm(url, _mailing_links_and_utm(mailing_id)[1])


def with_utm(url: str, utm: dict[str, str]) -> str:
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    if not utm or parts.scheme.lower() not in ("http", "https"):
        return url
    present = {key for key, _ in parse_qsl(parts.query, keep_blank_values=True)}
    order = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
    keys = [k for k in order if k in utm] + sorted(k for k in utm if k not in order)
    extra = {key: utm[key] for key in keys if key not in present}
    if not extra:
        return url
    query = parts.query + ("&" if parts.query else "") + urlencode(extra)
    return urlunsplit(parts._replace(query=query))


def _expired(created_at: dt.datetime) -> bool:
    days = settings.DELIVERY_RETENTION_DAYS
    return bool(days) and created_at < dt.datetime.now(dt.UTC) - dt.timedelta(days=days)


# --- the buffer: the request pushes, the beat task inserts ---


def _redis():
    from mailplatform.redis_cache import redis_client

    return redis_client()


def buffer_key() -> str:
    from mailplatform.redis_cache import redis_key

    # Under the cache prefix, so installs (and benchmarks) sharing one Redis keep their own buffer.
    return redis_key("tracking", "events")


class _Pusher:
    """Hands hits to Redis in batches from a background thread, so a request never waits on Redis.

    A hit waits here at most TRACKING_PUSH_MS (or until 500 are pending); a web worker killed
    hard loses at most that window's hits. A normal exit pushes what is left.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.draining = threading.Lock()
        self.wake = threading.Event()
        self.pending: list[str] = []
        self.pid = 0

    def push(self, line: str) -> None:
        with self.lock:
            if self.pid != os.getpid():  # first use in this (possibly forked) process
                self.pid = os.getpid()
                self.pending = []
                threading.Thread(target=self._run, name="tracking-pusher", daemon=True).start()
            self.pending.append(line)
            full = len(self.pending) >= 500
        if full:
            self.wake.set()

    def drain(self) -> int:
        # One drain at a time, so "pushed" means in Redis, not in another thread's hands.
        with self.draining:
            with self.lock:
                batch, self.pending = self.pending, []
            if not batch:
                return 0
            try:
                _redis().rpush(buffer_key(), *batch)
            except Exception:
                log.exception("tracking: could not push %d hits to Redis; keeping them", len(batch))
                with self.lock:
                    self.pending[:0] = batch[-50_000:]
                return 0
            return len(batch)

    def _run(self) -> None:
        while True:
            self.wake.wait(settings.TRACKING_PUSH_MS / 1000)
            self.wake.clear()
            self.drain()


_pusher = _Pusher()
atexit.register(_pusher.drain)


def buffer_event(kind: str, mailing_id: int, message_id: int, request_meta: dict[str, Any]) -> None:
    _pusher.push(json.dumps([kind, mailing_id, message_id, time.time(), request_meta], separators=(",", ":")))


def push_pending() -> int:
    """Push this process's waiting hits to Redis now (tests, shutdown)."""
    return _pusher.drain()


def buffered_count() -> int:
    push_pending()
    return int(_redis().llen(buffer_key()))


# Who fetches images or follows links for the recipient, not the recipient themselves.
PRIVACY_PROXIES = (
    ("GoogleImageProxy", "gmail-proxy"),
    ("YahooMailProxy", "yahoo-proxy"),
    ("Yahoo! Slurp", "yahoo-proxy"),
)
SCANNER_AGENTS = (
    "barracuda",
    "mimecast",
    "proofpoint",
    "symantec",
    "messagelabs",
    "trendmicro",
    "forcepoint",
    "safelinks",
    "microsoft office",
    "python-requests",
    "curl/",
    "wget/",
    "go-http-client",
    "java/",
    "okhttp",
    "headlesschrome",
    "bot",
    "crawler",
    "spider",
    "preview",
)


def classify(kind: str, *, method: str, user_agent: str, seconds_after_send: float | None) -> dict[str, Any]:
    """Flags for a tracking hit: {"machine": reason} when it was not the recipient."""
    agent = user_agent or ""
    lower = agent.lower()
    if kind == "opened":
        for marker, name in PRIVACY_PROXIES:
            if marker.lower() in lower:
                return {"machine": name}
        # Apple Mail Privacy Protection prefetches with a bare "Mozilla/5.0".
        if agent.strip() == "Mozilla/5.0":
            return {"machine": "apple-mpp"}
        if seconds_after_send is not None and seconds_after_send < settings.TRACKING_MACHINE_SECONDS:
            return {"machine": "prefetch"}
        return {}
    if method == "HEAD":
        return {"machine": "head-request"}
    if not agent:
        return {"machine": "no-user-agent"}
    for marker in SCANNER_AGENTS:
        if marker in lower:
            return {"machine": f"scanner:{marker.strip('/')}"}
    if seconds_after_send is not None and seconds_after_send < settings.TRACKING_MACHINE_SECONDS:
        return {"machine": "too-fast"}
    return {}


def tracking_flush(*, batch: int | None = None) -> int:
    """Move buffered hits into MessageEvents (one insert per batch); returns how many were written.

    A hit for a Message that no longer exists (pruned) is dropped. Human opens and clicks also
    update the contact's engagement through contacts' services.
    """
    from django.db import transaction

    from contacts.services import EngagementHit, contact_record_click, contact_record_open, engagement_record
    from delivery.models import Message, MessageEvent
    from delivery.signals import messages_engaged

    push_pending()
    size = batch or settings.TRACKING_FLUSH_BATCH
    client = _redis()
    written = 0
    while True:
        with client.pipeline(transaction=True) as pipe:
            pipe.lrange(buffer_key(), 0, size - 1)
            pipe.ltrim(buffer_key(), size, -1)
            raw, _ = pipe.execute()
        if not raw:
            return written
        hits = []
        for line in raw:
            try:
                kind, mailing_id, message_id, at, meta = json.loads(line)
                hits.append((str(kind), int(mailing_id), int(message_id), float(at), dict(meta)))
            except (ValueError, TypeError):
                continue
        messages = {
            row[0]: row
            for row in Message.objects.filter(pk__in={h[2] for h in hits}).values_list(
                "id", "mailing_id", "contact_id", "sent_at", "idempotency_key"
            )
        }
        events = []
        engaged: dict[tuple[str, int], dt.datetime] = {}
        engagement: list[EngagementHit] = []
        keyed: dict[str, str] = {}  # idempotency key -> "opened" or "clicked", human hits only
        for kind, mailing_id, message_id, at, meta in hits:
            message = messages.get(message_id)
            if message is None or message[1] != mailing_id or kind not in ("opened", "clicked"):
                continue
            when = dt.datetime.fromtimestamp(at, dt.UTC)
            sent_at = message[3]
            after = (when - sent_at).total_seconds() if sent_at else None
            flags = classify(
                kind,
                method=str(meta.get("method", "GET")),
                user_agent=str(meta.get("ua", "")),
                seconds_after_send=after,
            )
            data = {**{k: meta[k] for k in ("ua", "ip", "url", "link") if k in meta}, **flags}
            events.append(
                MessageEvent(message_id=message_id, mailing_id=mailing_id, kind=kind, at=when, data=data)
            )
            if message[2] is not None:
                engagement.append(
                    EngagementHit(
                        contact_id=message[2],
                        mailing_id=mailing_id,
                        kind=kind,
                        at=when,
                        machine=bool(flags),
                        url=str(meta.get("url", "")) if kind == "clicked" else "",
                    )
                )
            if not flags and message[2] is not None:
                key = (kind, message[2])
                engaged[key] = max(engaged.get(key, when), when)
            if not flags and message[4]:
                keyed[message[4]] = "clicked" if kind == "clicked" else keyed.get(message[4], kind)
        with transaction.atomic():
            MessageEvent.objects.bulk_create(events)
            engagement_record(engagement)
            for (kind, contact_id), when in engaged.items():
                (contact_record_open if kind == "opened" else contact_record_click)(contact_id, when)
            if keyed:
                messages_engaged.send(sender=MessageEvent, engaged=keyed)
        written += len(events)
        if len(raw) < size:
            return written
