"""django-anymail's tracking webhooks for relays that are ESPs, mapped onto our kinds.

Anymail normalises each ESP's payload into an AnymailTrackingEvent; its event type and reject
reason are coarse (SES reports a full mailbox and an unknown user both as "bounced"), so each
ESP's own fields are read first, from a declarative table, then anymail's generic answer.
"""

from __future__ import annotations

import hashlib
import json
import logging
from contextvars import ContextVar
from functools import wraps
from typing import Any

from anymail.signals import AnymailTrackingEvent
from anymail.webhooks.amazon_ses import AmazonSESTrackingWebhookView
from anymail.webhooks.mailgun import MailgunTrackingWebhookView
from anymail.webhooks.postmark import PostmarkTrackingWebhookView
from anymail.webhooks.sendgrid import SendGridTrackingWebhookView
from django.http import HttpResponseForbidden

from delivery.bounces import rules
from delivery.bounces.classifier import find_status, reason_for

log = logging.getLogger(__name__)

# esp_name -> [(path into esp_event, {value: kind})]; the first path with a known value decides.
ESP_FIELD_RULES: dict[str, list[tuple[tuple[str, ...], dict[str, str]]]] = {
    "Amazon SES": [
        (
            ("bounce", "bounceSubType"),
            {
                "MailboxFull": rules.SOFT,
                "MessageTooLarge": rules.SOFT,
                "ContentRejected": rules.BLOCK,
                "AttachmentRejected": rules.BLOCK,
            },
        ),
        (
            ("bounce", "bounceType"),
            {"Permanent": rules.HARD, "Transient": rules.SOFT, "Undetermined": rules.UNKNOWN},
        ),
        (
            ("eventType",),
            {"Complaint": rules.COMPLAINT, "Reject": rules.BLOCK, "DeliveryDelay": rules.DELAYED},
        ),
        (("notificationType",), {"Complaint": rules.COMPLAINT}),
    ],
    "SendGrid": [
        (("type",), {"blocked": rules.BLOCK, "bounce": rules.HARD}),
        (("event",), {"spamreport": rules.COMPLAINT, "deferred": rules.DELAYED, "bounce": rules.HARD}),
    ],
    "Mailgun": [
        (("event-data", "reason"), {"suppress-complaint": rules.COMPLAINT}),
        (("event-data", "severity"), {"permanent": rules.HARD, "temporary": rules.SOFT}),
        (("event-data", "event"), {"complained": rules.COMPLAINT}),
    ],
    "Postmark": [
        (
            ("Type",),
            {
                "HardBounce": rules.HARD,
                "BadEmailAddress": rules.HARD,
                "SoftBounce": rules.SOFT,
                "Transient": rules.SOFT,
                "DnsError": rules.SOFT,
                "SpamComplaint": rules.COMPLAINT,
                "Blocked": rules.BLOCK,
                "SpamNotification": rules.BLOCK,
                "ContentRelated": rules.BLOCK,
                "AutoResponder": rules.AUTO_REPLY,
                "Unknown": rules.UNKNOWN,
            },
        ),
        (("RecordType",), {"SpamComplaint": rules.COMPLAINT}),
    ],
}

# Anymail's generic answer, when the ESP's own fields said nothing we know.
GENERIC: dict[tuple[str, str | None], str] = {
    ("bounced", "bounced"): rules.HARD,
    ("bounced", "invalid"): rules.HARD,
    ("bounced", "timed_out"): rules.SOFT,
    ("bounced", "blocked"): rules.BLOCK,
    ("bounced", "spam"): rules.BLOCK,
    ("bounced", "other"): rules.UNKNOWN,
    ("bounced", None): rules.UNKNOWN,
    ("rejected", "blocked"): rules.BLOCK,
    ("rejected", "spam"): rules.BLOCK,
    ("complained", "spam"): rules.COMPLAINT,
    ("complained", None): rules.COMPLAINT,
    ("deferred", None): rules.DELAYED,
    ("deferred", "other"): rules.DELAYED,
    ("autoresponded", None): rules.AUTO_REPLY,
}


def _lookup(data: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def esp_kind(esp_name: str, event: AnymailTrackingEvent) -> str | None:
    esp_event = event.esp_event if isinstance(event.esp_event, dict) else {}
    for path, values in ESP_FIELD_RULES.get(esp_name, []):
        value = _lookup(esp_event, path)
        if isinstance(value, str) and value in values:
            return values[value]
    return GENERIC.get((event.event_type, event.reject_reason)) or GENERIC.get((event.event_type, None))


def _event_id(esp_name: str, event: AnymailTrackingEvent) -> str:
    if event.event_id:
        return str(event.event_id)
    # Without an id from the ESP, the payload itself identifies a retry.
    payload = json.dumps(event.esp_event, sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(f"{esp_name}:{payload}".encode()).hexdigest()


# One webhook request may carry hundreds of events (SendGrid, Mailgun batch them): while a request
# is being handled its events are collected here and stored in one transaction at the end.
_pending: ContextVar[list | None] = ContextVar("bounce_webhook_pending", default=None)


def handle_tracking(sender: Any, event: AnymailTrackingEvent, esp_name: str, **kwargs: Any) -> None:
    from delivery.bounces.services import EspEvent

    kind = esp_kind(esp_name, event)
    if kind is None or not event.recipient:
        return  # opens, clicks, deliveries: the delivery app's business
    diagnostic = " ".join(filter(None, [event.mta_response, event.description]))[:2000]
    status = find_status(diagnostic)
    reason = {rules.COMPLAINT: "feedback", rules.AUTO_REPLY: "vacation", rules.DELAYED: "delayed"}.get(kind)
    if reason is None:
        reason = reason_for(status, diagnostic)
        # A permanent refusal that the words show to be about the sender is a block, not a dead address.
        if kind in (rules.HARD, rules.UNKNOWN) and rules.REASON_KIND.get(reason) == rules.BLOCK:
            kind = rules.BLOCK
        if reason == "undefined":
            reason = {rules.HARD: "userunknown", rules.SOFT: "undefined", rules.BLOCK: "blocked"}.get(
                kind, reason
            )
    normalised = EspEvent(
        esp=esp_name,
        event_id=_event_id(esp_name, event),
        recipient=event.recipient,
        kind=kind,
        reason=reason,
        status=status,
        diagnostic=diagnostic,
        at=event.timestamp,
    )
    pending = _pending.get()
    if pending is not None:
        pending.append(normalised)
    else:
        _store([normalised])


def _store(events: list) -> None:
    from delivery.bounces.services import esp_events_process

    for event, stored in zip(events, esp_events_process(events), strict=True):
        if stored is None:
            log.info("%s event %s for %s already stored", event.esp, event.event_id, event.recipient)


def _batched(view):
    """Collect the request's events, store them together once anymail has parsed them all. If
    storing fails the ESP gets a 500 and retries; events are stored once per id, so nothing doubles."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        token = _pending.set([])
        try:
            response = view(request, *args, **kwargs)
            pending = _pending.get()
            if pending and response.status_code < 300:
                _store(pending)
            return response
        finally:
            _pending.reset(token)

    return wrapper


# Each ESP's webhook stays off until the secret that authenticates its posts is configured: an
# unauthenticated webhook would let anyone on the internet mark any contact bounced or complained.
# esp -> (display name, the anymail setting that must be set, how to configure it)
WEBHOOK_SECRETS: dict[str, tuple[str, str, str]] = {
    "amazon_ses": (
        "Amazon SES",
        "webhook_secret",
        "set ANYMAIL_WEBHOOK_SECRET to user:password and subscribe https://user:password@<host>"
        "/bounces/webhooks/amazon_ses/tracking/ to the SNS topic",
    ),
    "sendgrid": (
        "SendGrid",
        "webhook_secret",
        "set ANYMAIL_WEBHOOK_SECRET to user:password and give SendGrid's Event Webhook "
        "https://user:password@<host>/bounces/webhooks/sendgrid/tracking/",
    ),
    "mailgun": (
        "Mailgun",
        "webhook_signing_key",
        "set MAILGUN_WEBHOOK_SIGNING_KEY to the HTTP webhook signing key from Mailgun's dashboard",
    ),
    "postmark": (
        "Postmark",
        "webhook_secret",
        "set ANYMAIL_WEBHOOK_SECRET to user:password and give Postmark's webhook "
        "https://user:password@<host>/bounces/webhooks/postmark/tracking/",
    ),
}


def webhook_is_live(esp: str) -> bool:
    from anymail.utils import get_anymail_setting

    name, setting, _ = WEBHOOK_SECRETS[esp]
    if setting == "webhook_secret":  # anymail shares basic auth between ESPs (no ESP prefix)
        return bool(get_anymail_setting("webhook_secret", default=None))
    # Mailgun signs with its signing key, or its API key when no signing key is set (as anymail).
    return bool(
        get_anymail_setting(setting, esp_name=name, default=None, allow_bare=True)
        or get_anymail_setting("api_key", esp_name=name, default=None, allow_bare=True)
    )


def webhook_states() -> list[dict[str, Any]]:
    """For the bounces page: each ESP webhook, its path, whether it is live and how to configure it."""
    return [
        {"esp": name, "path": f"/bounces/webhooks/{esp}/tracking/", "live": webhook_is_live(esp), "how": how}
        for esp, (name, _, how) in WEBHOOK_SECRETS.items()
    ]


def _requires_secret(esp: str, view):
    @wraps(view)
    def guarded(request, *args, **kwargs):
        if not webhook_is_live(esp):
            # Refused before anything is read or stored; the answer says nothing about contacts.
            return HttpResponseForbidden(f"This webhook is off: {WEBHOOK_SECRETS[esp][2]}.\n")
        return view(request, *args, **kwargs)

    return guarded


def _public(esp: str, view):
    view = _requires_secret(esp, _batched(view))
    view.public_endpoint = True  # ESPs authenticate with ANYMAIL WEBHOOK_SECRET (basic auth) or signatures
    return view


WEBHOOK_VIEWS = {
    "amazon_ses": _public("amazon_ses", AmazonSESTrackingWebhookView.as_view()),
    "sendgrid": _public("sendgrid", SendGridTrackingWebhookView.as_view()),
    "mailgun": _public("mailgun", MailgunTrackingWebhookView.as_view()),
    "postmark": _public("postmark", PostmarkTrackingWebhookView.as_view()),
}
