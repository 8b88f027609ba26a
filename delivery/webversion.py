"""The web version of a sent message ("view in browser"): what that recipient received, as a page.

Every message's `view_in_browser_url` is `SITE_URL/delivery/v/<token>/`, the token HMAC-signed for
that Message (delivery.verp, purpose "view"), so one link shows one recipient's message and ids
cannot be walked. The page renders the Mailing's snapshot (`Mailing.compiled`, what was sent, not
the template as it is now) with the recipient's merge data and the message's own links
(unsubscribe, preferences); it is not tracked (no pixel, links as written), never indexed
(`noindex` in the page and in `X-Robots-Tag`), and runs no script.
"""

from __future__ import annotations

import re

from django.conf import settings

from delivery import verp
from delivery.models import Message

VIEW = "view"
_HEAD = re.compile(r"<head\b[^>]*>", re.IGNORECASE)
_NOINDEX = '<meta name="robots" content="noindex, nofollow">'


def view_url(message_id: int) -> str:
    return f"{settings.SITE_URL}/delivery/v/{verp.message_token(message_id, VIEW)}/"


def message_for_token(token: str) -> int | None:
    return verp.message_id_from_token(token, VIEW)


def web_version_html(message_id: int) -> str | None:
    """The message as its recipient got it (HTML), or None when there is no such message."""
    from contacts.selectors import contact_merge_data
    from contacts.tokens import preferences_url
    from templates.compiler import CompiledTemplate
    from templates.context import URL_NAMES, recipient_context

    message = Message.objects.select_related("mailing").filter(pk=message_id).first()
    if message is None:
        return None
    data = message.data or {}
    contact = None
    if message.contact_id is not None:
        contact = contact_merge_data([message.contact_id]).get(message.contact_id)
    if (message.mailing.meta or {}).get("test") and isinstance(data.get("__contact__"), dict):
        contact = data["__contact__"]  # a test send rendered as the contact the person chose
    unsubscribe = f"{settings.SITE_URL}/delivery/u/{verp.message_token(message.pk, 'unsubscribe')}/"
    urls = {
        "unsubscribe_url": unsubscribe,
        "preferences_url": preferences_url(message.contact_id)
        if message.contact_id is not None
        else unsubscribe,
        "view_in_browser_url": view_url(message.pk),
    }
    extra = {
        k: v for k, v in data.items() if not k.startswith("__") and k not in ("contact", "org", *URL_NAMES)
    }
    compiled = CompiledTemplate.from_dict(message.mailing.compiled)
    from mailplatform.selectors import org_data

    context = recipient_context(
        contact=contact or {"email": message.email}, urls=urls, extra=extra, org=org_data()
    )
    html = compiled.render(context).html
    head = _HEAD.search(html)
    if head:
        return html[: head.end()] + _NOINDEX + html[head.end() :]
    return f"<!doctype html><html><head>{_NOINDEX}</head><body>{html}</body></html>"
