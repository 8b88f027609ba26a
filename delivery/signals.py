"""Signals delivery sends; other code (the bounces sub-app) connects to them.

smtp_rejected(sender, message_id: int, code: int, reply: str, stage: "mail" | "rcpt" | "data"):
    a relay refused a Message with a 5xx during the SMTP transaction. The Message is already
    `failed` with the reply and has a `bounced` MessageEvent (stage rcpt/data); this is the hook
    for bounce policy (contact status, soft-bounce counting). Sent after the outcome is committed.
"""

from django.dispatch import Signal

smtp_rejected = Signal()
