"""The media library: images uploaded once, stored content-addressed, reused by any template."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class MediaImage(models.Model):
    """An uploaded image, re-encoded without its metadata, with narrower variants for mail.

    Files are named by the SHA-256 of their bytes: a name never changes what it points to,
    so they are served as immutable and a mailing's HTML can name them forever.
    """

    name = models.CharField(max_length=200, help_text="The uploaded file's name, for people")
    content_type = models.CharField(max_length=50)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    size = models.PositiveIntegerField(help_text="Bytes of the stored (re-encoded) original")
    sha256 = models.CharField(max_length=64, unique=True)
    storage_name = models.CharField(max_length=300)
    # {"600": "images/<sha>/600.jpg", ...}: only widths narrower than the original.
    variants = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name
