"""Public tracking endpoints: the open pixel and click redirects. They check the token, push one
line to Redis and answer; the events are written later in batches (delivery.tracking)."""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, HttpResponseNotFound, HttpResponseRedirect
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from delivery import tracking

log = logging.getLogger(__name__)

_NOT_VALID = "<!doctype html><title>Link not valid</title><p>This link is not valid or has expired.</p>"


def _meta(request: HttpRequest) -> dict[str, str]:
    return {
        "ua": request.META.get("HTTP_USER_AGENT", "")[:300],
        "ip": request.META.get("REMOTE_ADDR", ""),
        "method": request.method or "GET",
    }


def _buffer(kind: str, mailing_id: int, message_id: int, meta: dict[str, str]) -> None:
    try:
        tracking.buffer_event(kind, mailing_id, message_id, meta)
    except Exception:  # never let bookkeeping cost the recipient their image or page
        log.exception("tracking: could not buffer a %s event", kind)


@never_cache
@require_http_methods(["GET", "HEAD"])
def open_pixel(request: HttpRequest, token: str) -> HttpResponse:
    parsed = tracking.parse_token(token)
    if parsed is not None:
        _buffer("opened", parsed[0], parsed[1], _meta(request))
    # Always the image, so a mail client never shows a broken picture.
    return HttpResponse(tracking.PIXEL_GIF, content_type="image/gif")


@never_cache
@require_http_methods(["GET", "HEAD"])
def click(request: HttpRequest, token: str, index: int) -> HttpResponse:
    parsed = tracking.parse_token(token)
    url = tracking.link_for(parsed[0], index) if parsed is not None else None
    if parsed is None or url is None:
        return HttpResponseNotFound(_NOT_VALID)
    _buffer("clicked", parsed[0], parsed[1], {**_meta(request), "link": str(index), "url": url[:2000]})
    # The event keeps the link as written (reports and the click map group by it); the visitor
    # goes on with the campaign's UTM tags added.
    return HttpResponseRedirect(tracking.click_target(parsed[0], url))


def trivial(request: HttpRequest) -> HttpResponse:
    """Does nothing: the benchmark's reference for what the tracking views cost on top."""
    return HttpResponse(b"ok", content_type="text/plain")


for _view in (open_pixel, click, trivial):
    _view.public_endpoint = True  # type: ignore[attr-defined]
