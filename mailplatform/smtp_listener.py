"""Running an aiosmtpd controller as a long-lived command (the capture relay, the bounce listener)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

from aiosmtpd.controller import Controller
from django.core.management.base import CommandError


def serve_until_stopped(controller: Controller, host: str, port: int, announce: Callable[[], None]) -> None:
    """Listen until SIGTERM or Ctrl-C; a port that cannot be bound is the user's error, in one line."""
    try:
        controller.start()
    except OSError as exc:
        raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    announce()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()
