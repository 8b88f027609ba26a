"""The media library on an S3-compatible store: moto's server on a free loopback port."""

from __future__ import annotations

import io

import pytest
from django.core.files.storage import storages
from PIL import Image

from media.selectors import image_url
from media.services import media_image_upload
from media.storage import read_bytes
from tests.media.images import jpeg_with_exif

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


@pytest.fixture(scope="module")
def s3_endpoint():
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_media(settings, s3_endpoint):
    import boto3

    client = boto3.client(
        "s3", endpoint_url=s3_endpoint, aws_access_key_id="test", aws_secret_access_key="test",
        region_name="us-east-1",
    )  # fmt: skip
    client.create_bucket(Bucket="posthorn-media")
    settings.STORAGES = {
        **settings.STORAGES,
        "media": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": "posthorn-media",
                "endpoint_url": s3_endpoint,
                "access_key": "test",
                "secret_key": "test",
                "region_name": "us-east-1",
                "object_parameters": {"CacheControl": "public, max-age=31536000, immutable"},
            },
        },
    }
    yield client
    storages._storages.pop("media", None)


def test_upload_serve_and_read_through_s3(s3_media, client, settings):
    image = media_image_upload(jpeg_with_exif(900, 300), name="banner.jpg")
    keys = {o["Key"] for o in s3_media.list_objects_v2(Bucket="posthorn-media")["Contents"]}
    assert image.storage_name in keys and image.variants["600"] in keys
    head = s3_media.head_object(Bucket="posthorn-media", Key=image.storage_name)
    assert head["CacheControl"] == "public, max-age=31536000, immutable"
    assert Image.open(io.BytesIO(read_bytes(image.variants["600"]))).size == (600, 200)
    served = client.get(image_url(image).removeprefix(settings.SITE_URL))
    assert served.status_code == 200 and "immutable" in served["Cache-Control"]
    body = b"".join(served.streaming_content)
    assert body == read_bytes(image.variants["600"]) and b"SecretCam" not in body
