"""A captured message's attachments: listed on its page, downloaded as files, never rendered."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from mailplatform.services import captured_message_store

pytestmark = pytest.mark.django_db


def test_captured_message_shows_html_and_attachments(marketer_client):
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "a@example.com", "b@example.com", "Hello"
    mail.set_content("plain words")
    mail.add_alternative("<p>Rich <b>words</b></p><script>alert(1)</script>", subtype="html")
    mail.add_attachment(b"%PDF-1 data", maintype="application", subtype="pdf", filename="list.pdf")
    captured = captured_message_store("a@example.com", ["b@example.com"], mail.as_bytes())

    page = marketer_client.get(f"/captured/{captured.pk}/").content.decode()
    assert "list.pdf" in page and 'id="captured-html"' in page and "sandbox" in page
    html = marketer_client.get(f"/captured/{captured.pk}/html")
    assert b"<b>words</b>" in html.content
    assert "default-src 'none'" in html["Content-Security-Policy"]  # no scripts
    download = marketer_client.get(f"/captured/{captured.pk}/attachments/0")
    assert download.content == b"%PDF-1 data" and "attachment" in download["Content-Disposition"]
    assert download["Content-Type"] == "application/octet-stream"
    assert marketer_client.get(f"/captured/{captured.pk}/attachments/5").status_code == 404
