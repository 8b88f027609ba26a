import smtplib
import socket

import pytest
from django.urls import reverse

from mailplatform.capture import capture_controller
from mailplatform.models import CapturedMessage


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def relay(transactional_db):
    port = _free_port()
    controller = capture_controller("127.0.0.1", port, 1024 * 1024)
    controller.start()
    yield port
    controller.stop()


def test_capture_relay_stores_messages_and_dashboard_shows_them(relay, admin_user, client):
    raw = (
        b"From: news@example.com\r\nTo: ann@example.org\r\nSubject: Hello <b>Ann</b>\r\n"
        b"Message-ID: <1@example.com>\r\n\r\nBody line\r\n"
    )
    with smtplib.SMTP("127.0.0.1", relay) as smtp:
        smtp.sendmail("bounces@example.com", ["ann@example.org", "bob@example.org"], raw)
    message = CapturedMessage.objects.get()
    assert message.recipients == ["ann@example.org", "bob@example.org"]
    assert message.subject == "Hello <b>Ann</b>"
    assert b"Body line" in bytes(message.raw)

    client.force_login(admin_user)
    page = client.get(reverse("captured-messages")).content.decode()
    assert "Hello &lt;b&gt;Ann&lt;/b&gt;" in page
    raw_view = client.get(reverse("captured-message-raw", args=[message.pk]))
    assert raw_view["Content-Type"].startswith("text/plain") and b"Body line" in raw_view.content


def test_capture_relay_refuses_oversized_mail(relay):
    with smtplib.SMTP("127.0.0.1", relay) as smtp:
        with pytest.raises(smtplib.SMTPException):
            smtp.sendmail(
                "a@example.com", ["b@example.com"], b"Subject: big\r\n\r\n" + b"x" * (2 * 1024 * 1024)
            )
    assert CapturedMessage.objects.count() == 0
