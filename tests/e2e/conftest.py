"""Fixtures the browser journeys share."""

from __future__ import annotations

import gc
import socket

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def capture_relay(transactional_db, sending_identity):
    """The platform's capture relay on a free loopback port, as the only relay (with example.com
    as a sending identity, as an admin sets up before anyone sends)."""
    from delivery.relays import relay_save
    from mailplatform.capture import capture_controller

    port = _free_port()
    controller = capture_controller("127.0.0.1", port, 4 * 1024 * 1024)
    controller.start()
    relay_save(name="Capture", host="127.0.0.1", port=port, security="none", max_connections=2)
    yield port
    controller.stop()
    # The relay stored mail from its executor threads; their database connections go with them.
    gc.collect()
