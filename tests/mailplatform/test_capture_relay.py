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


def _mail(subject: str, to: str, *, test: bool = False) -> bytes:
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"] = "news@example.com"
    message["To"] = to
    message["Subject"] = subject
    if test:
        message["X-Posthorn-Test"] = "yes"
    message.set_content(f"Plain words for {to}")
    message.add_alternative(
        f"<p onclick='x()'>Hello <b>{to}</b></p><script>alert(1)</script>", subtype="html"
    )
    return message.as_bytes()


def test_captured_mail_is_searchable_newest_first_with_tests_marked_and_each_message_readable(
    relay, admin_user, client
):
    """Issue #14 item 5: a rendered view (sandboxed, no scripts), text and headers, search, order."""
    with smtplib.SMTP("127.0.0.1", relay) as smtp:
        smtp.sendmail("b@example.com", ["ann@example.org"], _mail("Spring news", "ann@example.org"))
        smtp.sendmail("b@example.com", ["bob@example.org"], _mail("Autumn news", "bob@example.org"))
        smtp.sendmail(
            "b@example.com", ["me@example.com"], _mail("[Test] Spring news", "me@example.com", test=True)
        )
    client.force_login(admin_user)
    url = reverse("captured-messages")
    page = client.get(url).content.decode()
    assert page.index("[Test] Spring news") < page.index("Autumn news") < page.index(">Spring news<")
    assert page.count('<span class="pill">Test</span>') == 1
    by_recipient = client.get(url, {"q": "BOB@example"}).content.decode()
    assert "Autumn news" in by_recipient and "Spring news" not in by_recipient
    by_subject = client.get(url, {"q": "spring"}).content.decode()
    assert "Autumn news" not in by_subject and by_subject.count("Spring news") == 2
    tests_only = client.get(url, {"tests": "1"}).content.decode()
    assert "[Test] Spring news" in tests_only and "Autumn news" not in tests_only

    message = CapturedMessage.objects.get(recipients=["ann@example.org"])
    detail = client.get(reverse("captured-message", args=[message.pk])).content.decode()
    html_url = reverse("captured-message-html", args=[message.pk])
    assert f'sandbox="" src="{html_url}"' in detail
    assert "Plain words for ann@example.org" in detail and '<th scope="row">X-Posthorn-Test' not in detail
    assert '<th scope="row">Subject</th><td>Spring news</td>' in detail
    html = client.get(html_url)
    # The frame's document may not run anything: no script source at all, framed only by us.
    assert (
        "default-src 'none'" in html["Content-Security-Policy"]
        and "script-src" not in html["Content-Security-Policy"]
    )
    assert html["X-Frame-Options"] == "SAMEORIGIN" and b"Hello <b>ann@example.org</b>" in html.content
