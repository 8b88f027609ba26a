"""Signals contacts sends; other apps connect to them (contacts imports no other app).

confirmation_requested(sender, subscription_id: int, confirm_url: str): a double opt-in
subscription needs its confirmation mail. Sent after the subscription is committed; delivery
connects a receiver that queues the mail.

subscription_confirmed(sender, contact_id: int, list_id: int): a contact is now confirmed on a
list (a single opt-in form, a confirmation click, a dashboard or API subscribe). Sent after the
commit; automations connects a receiver that starts its "joined a list" journeys.
"""

from django.dispatch import Signal

confirmation_requested = Signal()
subscription_confirmed = Signal()
