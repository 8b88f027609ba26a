"""Writes for the media library: an upload is checked by decoding it, re-encoded, then stored.

Everything uploaded is hostile until Pillow has decoded it: the extension and the browser's
content type are ignored, the pixel count is bounded before any pixel is decoded (a
decompression bomb is a small file), and the stored file is a fresh encoding of the pixels,
so EXIF (GPS position, camera serial), comments and anything appended after the image data
are gone.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from PIL import Image, ImageOps, UnidentifiedImageError

from mailplatform.errors import Invalid
from mailplatform.services import acting_user, audit_record
from media.models import MediaImage
from media.storage import store_at, store_bytes

# What mail clients show. WebP is accepted and stored as PNG (Outlook and older Apple Mail show no WebP).
ACCEPTED_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/png"}
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif"}
# A 600 px wide column is the common mail layout; 1200 for high-density screens; 240 for the library grid.
VARIANT_WIDTHS = (240, 600, 1200)


class MediaError(Invalid):
    """An upload that was refused; the message says why, for the person who uploaded it."""

    default_code = "media_refused"
    default_field = "file"


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def _decode(data: bytes) -> Image.Image:
    if not data:
        raise MediaError("The file is empty.")
    limit = settings.MEDIA_MAX_IMAGE_BYTES
    if len(data) > limit:
        raise MediaError(f"The file is {_mb(len(data))}; images may be at most {_mb(limit)}.")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            probe = Image.open(io.BytesIO(data))  # reads the header only
            if probe.format not in ACCEPTED_FORMATS:
                raise MediaError(
                    f"{probe.format or 'This'} images are not accepted: upload a JPEG, PNG, GIF or WebP image."
                )
            pixels = probe.width * probe.height
            if pixels > settings.MEDIA_MAX_IMAGE_PIXELS:
                raise MediaError(
                    f"The image is {probe.width}×{probe.height} pixels; at most "
                    f"{settings.MEDIA_MAX_IMAGE_PIXELS:,} pixels are accepted."
                )
            probe.verify()  # checksums and structure, without keeping the pixels
            image = Image.open(io.BytesIO(data))
            image.load()
        except MediaError:
            raise
        except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise MediaError(
                "The file is not an image we can read (JPEG, PNG, GIF or WebP; SVG is not accepted "
                "because it can carry scripts and most mail clients do not show it)."
            ) from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise MediaError(f"The image is damaged and could not be decoded ({exc}).") from None
    return image


def _encode(image: Image.Image, content_type: str, *, animated: bool = False) -> bytes:
    out = io.BytesIO()
    if content_type == "image/jpeg":
        image = image.convert("RGB")
        image.save(out, "JPEG", quality=88, optimize=True, progressive=True)
    elif content_type == "image/gif":
        image.save(out, "GIF", save_all=animated, optimize=False)
    else:
        if image.mode not in ("RGB", "RGBA", "L", "LA", "P"):
            image = image.convert("RGBA")
        image.save(out, "PNG", optimize=True)
    return out.getvalue()


def _clean_name(name: str, extension: str) -> str:
    stem = name.rsplit("/", 1)[-1].rsplit("\\", 1)[-1].rsplit(".", 1)[0]
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in stem).strip("-")[:60] or "image"
    return f"{safe}.{extension}"


def media_image_upload(data: bytes, *, name: str, by: Any = None) -> MediaImage:
    """Check, clean and store an uploaded image with its variants; raises MediaError and stores nothing when refused."""
    image = _decode(data)
    content_type = ACCEPTED_FORMATS[image.format or ""]
    animated = bool(getattr(image, "is_animated", False))
    if not animated:
        # Phones store rotation in EXIF; apply it before EXIF goes, or portraits lie on their side.
        image = ImageOps.exif_transpose(image)
    encoded = _encode(image, content_type, animated=animated)
    extension = EXTENSIONS[content_type]
    filename = _clean_name(name, extension)
    storage_name, digest = store_bytes("images", encoded, filename)
    existing = MediaImage.objects.filter(sha256=digest).first()
    if existing is not None:
        return existing
    variants: dict[str, str] = {}
    if not animated:
        for width in VARIANT_WIDTHS:
            if width >= image.width:
                continue
            height = max(1, round(image.height * width / image.width))
            resized = image.resize((width, height), Image.Resampling.LANCZOS)
            variant_name = f"images/{digest}/{width}.{extension}"
            store_at(variant_name, _encode(resized, content_type))
            variants[str(width)] = variant_name
    try:
        with transaction.atomic():
            media_image = MediaImage.objects.create(
                name=name.strip()[:200] or filename,
                content_type=content_type,
                width=image.width,
                height=image.height,
                size=len(encoded),
                sha256=digest,
                storage_name=storage_name,
                variants=variants,
                created_by=acting_user(by),
            )
            audit_record(by, "media.image_uploaded", media_image, details={"size": len(encoded)})
    except IntegrityError:  # the same image, uploaded by someone else at the same moment
        return MediaImage.objects.get(sha256=digest)
    return media_image
