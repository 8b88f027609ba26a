"""Reading a template attachment's bytes (no models: the delivery fast path and benchmarks call it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def attachment_bytes(attachment: Mapping[str, Any]) -> bytes:
    """The stored bytes of a template attachment, checked against its checksum (a changed file is an error)."""
    from media.storage import read_bytes

    return read_bytes(str(attachment["storage_name"]), sha256=str(attachment["sha256"]))
