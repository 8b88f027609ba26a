"""Small images made in memory for the media tests."""

from __future__ import annotations

import io

from PIL import Image


def jpeg_with_exif(width: int = 800, height: int = 400, orientation: int | None = None) -> bytes:
    image = Image.new("RGB", (width, height), (200, 40, 40))
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x8825] = {2: (51.0, 30.0, 0.0)}  # GPSInfo: latitude
    if orientation:
        exif[0x0112] = orientation
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, quality=90)
    return out.getvalue()


def png(width: int = 300, height: int = 200, colour=(20, 120, 220)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return out.getvalue()
