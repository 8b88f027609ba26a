"""Uploads are decoded, not trusted: metadata goes, variants are made, hostile files are refused."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from media.models import MediaImage
from media.selectors import image_url
from media.services import MediaError, media_image_upload
from media.storage import read_bytes
from tests.media.images import jpeg_with_exif, png

pytestmark = pytest.mark.django_db


def test_jpeg_loses_exif_and_gets_variants(settings):
    image = media_image_upload(jpeg_with_exif(1400, 700), name="holiday.JPG")
    assert (image.width, image.height, image.content_type) == (1400, 700, "image/jpeg")
    stored = read_bytes(image.storage_name, sha256=image.sha256)
    assert b"SecretCam" not in stored and not Image.open(io.BytesIO(stored)).getexif()
    assert sorted(image.variants) == ["1200", "240", "600"]
    assert Image.open(io.BytesIO(read_bytes(image.variants["600"]))).size == (600, 300)
    url = image_url(image)
    assert url.startswith(settings.SITE_URL + "/media/f/images/") and url.endswith("/600.jpg")


def test_exif_rotation_is_applied_before_exif_goes():
    image = media_image_upload(jpeg_with_exif(400, 200, orientation=6), name="portrait.jpg")
    assert (image.width, image.height) == (200, 400)


def test_the_same_image_twice_is_one_entry():
    first = media_image_upload(png(), name="a.png")
    second = media_image_upload(png(), name="b.png")
    assert first.pk == second.pk and MediaImage.objects.count() == 1
    assert first.variants == {"240": first.variants["240"]}  # only narrower widths


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "SVG is not accepted"),
        (b"GIF89a" + b"\x00" * 20, "not an image"),
        (png()[:60], "damaged"),
        (b"%PDF-1.4 not an image", "not an image"),
    ],
)
def test_hostile_uploads_are_refused(data, message):
    with pytest.raises(MediaError, match=message):
        media_image_upload(data, name="evil.png")
    assert MediaImage.objects.count() == 0


def test_size_and_pixel_limits(settings):
    settings.MEDIA_MAX_IMAGE_BYTES = 2000
    with pytest.raises(MediaError, match="images may be at most"):
        media_image_upload(jpeg_with_exif(), name="big.jpg")
    settings.MEDIA_MAX_IMAGE_BYTES = 5 * 1024 * 1024
    settings.MEDIA_MAX_IMAGE_PIXELS = 10_000
    # A decompression bomb is a small file: refused from its header, before any pixel is decoded.
    with pytest.raises(MediaError, match="pixels"):
        media_image_upload(png(1000, 1000), name="bomb.png")


def test_formats_other_than_mail_images_are_refused():
    out = io.BytesIO()
    Image.new("RGB", (10, 10)).save(out, "BMP")
    with pytest.raises(MediaError, match="BMP images are not accepted"):
        media_image_upload(out.getvalue(), name="x.png")


def test_webp_is_stored_as_png():
    out = io.BytesIO()
    Image.new("RGBA", (50, 50), (1, 2, 3, 100)).save(out, "WEBP")
    image = media_image_upload(out.getvalue(), name="pic.webp")
    assert image.content_type == "image/png" and image.storage_name.endswith("/pic.png")
