"""Files kept under MEDIA_ROOT: where they go and how an upload is written there.

Every app that keeps an uploaded file (contact imports today) saves it through `upload_save`, so
the name is random (never the client's) and the file is streamed in chunks, never read whole.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile


def media_path(relative: str) -> Path:
    """MEDIA_ROOT/relative, its folder created."""
    path = Path(settings.MEDIA_ROOT) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def upload_save(upload: UploadedFile, folder: str, *, suffix: str = "") -> Path:
    """Write the upload to MEDIA_ROOT/folder under a random name; returns the path."""
    path = media_path(f"{folder.strip('/')}/{secrets.token_hex(16)}{suffix}")
    with path.open("wb") as handle:
        for chunk in upload.chunks():
            handle.write(chunk)
    return path
