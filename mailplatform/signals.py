"""Signals the platform sends; other apps connect to them (mailplatform imports no app).

password_reset_requested(sender, user_id: int, email: str, reset_url: str): a user asked for a
password reset link; delivery connects a receiver that sends it through the transactional path
(the ledger, suppression, the relays), like every other mail the platform sends.
"""

from django.dispatch import Signal

password_reset_requested = Signal()
