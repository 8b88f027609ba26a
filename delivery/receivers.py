"""Receivers for other apps' signals."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def send_confirmation(sender: Any, subscription_id: int, confirm_url: str, **kwargs: Any) -> None:
    """Double opt-in: mail the confirmation link, transactionally, through the engine."""
    from delivery.transactional import confirmation_send

    confirmation_send(subscription_id, confirm_url)


def send_password_reset(sender: Any, user_id: int, email: str, reset_url: str, **kwargs: Any) -> None:
    """A password reset link, transactionally, through the engine (mailplatform's signal)."""
    from delivery.transactional import password_reset_send

    password_reset_send(email, reset_url)
