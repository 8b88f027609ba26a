"""Signals delivery sends; other apps connect to them (delivery imports none of them for this).

messages_engaged(sender, engaged: dict[str, str]): people (not machines: privacy proxies and link
scanners are left out) opened or clicked these Messages, named by their idempotency keys and mapped
to "opened" or "clicked" (a click wins: it proves an open). Sent inside the transaction that records
the hits, so what a receiver writes commits with them or not at all; a receiver must be quick and
must not raise (tracking would lose the batch). Automations connects one that wakes the runs
waiting at an "opened"/"clicked" branch for these messages.
"""

from django.dispatch import Signal

messages_engaged = Signal()
