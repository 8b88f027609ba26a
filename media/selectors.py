"""Reads for the media library: the images, and the absolute URLs that work in mail."""

from __future__ import annotations

from django.conf import settings
from django.db.models import QuerySet
from django.urls import reverse

from media.models import MediaImage

# The width a mail body column shows an image at (the variant the editor uses by default).
MAIL_WIDTH = 600


def media_images(limit: int = 200) -> QuerySet[MediaImage]:
    return MediaImage.objects.all()[:limit]


def file_url(storage_name: str) -> str:
    """Absolute (SITE_URL-based): a mail client has no page to resolve a relative URL against."""
    return settings.SITE_URL.rstrip("/") + reverse("media:file", kwargs={"name": storage_name})


def image_url(image: MediaImage, width: int | None = MAIL_WIDTH) -> str:
    """The URL of the narrowest stored variant at least `width` wide (the original when none is)."""
    if width is not None:
        for candidate in sorted(int(w) for w in image.variants):
            if candidate >= width:
                return file_url(image.variants[str(candidate)])
    return file_url(image.storage_name)


def thumbnail_url(image: MediaImage) -> str:
    return image_url(image, 240)
