"""The library pages: who may upload, clear errors, and the public file URL with long caching."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from media.models import MediaImage
from media.selectors import image_url
from tests.media.images import png

pytestmark = pytest.mark.django_db


def test_marketer_uploads_and_the_file_is_served_immutable(marketer_client, settings):
    response = marketer_client.post(
        "/media/upload/", {"file": SimpleUploadedFile("logo.png", png(), "image/png")}
    )
    assert response.status_code == 302
    image = MediaImage.objects.get()
    assert image.created_by.username == "mara"
    path = image_url(image).removeprefix(settings.SITE_URL)
    served = marketer_client.get(path)
    assert served.status_code == 200 and served["Content-Type"] == "image/png"
    assert "immutable" in served["Cache-Control"] and "max-age=31536000" in served["Cache-Control"]
    assert b"".join(served.streaming_content).startswith(b"\x89PNG")
    page = marketer_client.get("/media/")
    assert b"logo.png" in page.content


def test_files_are_public_but_only_images(client, marketer_client):
    marketer_client.post("/media/upload/", {"file": SimpleUploadedFile("a.png", png(), "image/png")})
    image = MediaImage.objects.get()
    client.logout()
    assert client.get(f"/media/f/{image.storage_name}").status_code == 200
    assert client.get("/media/f/attachments/abc/secret.pdf").status_code == 404
    assert client.get("/media/f/images/../attachments/x").status_code == 404


def test_htmx_upload_answers_with_the_error(marketer_client):
    response = marketer_client.post(
        "/media/upload/",
        {"file": SimpleUploadedFile("evil.png", b"<svg><script/></svg>", "image/png"), "picker": "1"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 400
    assert "SVG is not accepted" in response.content.decode()
    assert MediaImage.objects.count() == 0


def test_developers_read_but_may_not_upload(developer_client, client):
    assert developer_client.get("/media/").status_code == 200
    response = developer_client.post("/media/upload/", {"file": SimpleUploadedFile("a.png", png())})
    assert response.status_code == 403 and MediaImage.objects.count() == 0
    client.logout()
    assert client.get("/media/").status_code == 302  # to the login page
