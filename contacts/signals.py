"""Signals contacts sends; other apps connect to them (contacts imports no other app).

confirmation_requested(sender, subscription_id: int, confirm_url: str): a double opt-in
subscription needs its confirmation mail. Sent after the subscription is committed; delivery
connects a receiver that queues the mail.
"""

from django.dispatch import Signal

confirmation_requested = Signal()
