"""The storage that media (images, template attachments) lives in: Django's storage API.

`STORAGES["media"]`: the filesystem under MEDIA_ROOT by default, an S3-compatible bucket
through django-storages when MEDIA_STORAGE=s3 (see README). Every read and write of media
bytes goes through here, so the backend is a setting and nothing else.
"""

from __future__ import annotations

import hashlib

from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages

# What the media view and S3 objects say: names are content-addressed, so they never change.
CACHE_CONTROL = "public, max-age=31536000, immutable"


def media_storage() -> Storage:
    return storages["media"]


def store_bytes(prefix: str, data: bytes, filename: str) -> tuple[str, str]:
    """Store `data` once under `<prefix>/<sha256>/<filename>`; returns (storage name, sha256).

    The same bytes stored twice are one file: a second upload, or a second template with the
    same attachment, costs nothing.
    """
    digest = hashlib.sha256(data).hexdigest()
    name = f"{prefix}/{digest}/{filename}"
    store_at(name, data)
    return name, digest


def store_at(name: str, data: bytes) -> None:
    """Write `data` at `name` unless it is there already (names derive from the bytes' checksum)."""
    storage = media_storage()
    if not storage.exists(name):
        saved = storage.save(name, ContentFile(data))
        if saved != name:  # a concurrent writer won: its file holds the same bytes
            storage.delete(saved)


def read_bytes(name: str, *, sha256: str | None = None) -> bytes:
    """The stored bytes; with `sha256`, checked against it (a changed file is an error, not mail)."""
    with media_storage().open(name, "rb") as handle:
        data = handle.read()
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise OSError(f"stored file {name} does not match its checksum")
    return data
