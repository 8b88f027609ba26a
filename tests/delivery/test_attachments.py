"""Template attachments: stored once, encoded once per mailing, the same bytes in every message."""

from __future__ import annotations

import email
import email.policy
import hashlib
import os

import dkim as dkimpy
import pytest

from delivery.compose import MessageBuilder, Recipient
from delivery.dkim import DkimSigner, generate_private_key
from templates import services
from templates.compiler import TemplateError, compile_template
from templates.models import EmailTemplate

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n" + os.urandom(40_000) + b"\n%%EOF\n"


def _parse(data: bytes):
    return email.message_from_bytes(data.replace(b"\r\n..", b"\r\n."), policy=email.policy.default)


@pytest.fixture
def template():
    return services.template_create(
        name="With a price list",
        subject="Prices for {{ contact.first_name }}",
        html='<p>Hi {{ contact.first_name }}</p><a href="{{ unsubscribe_url }}">Unsubscribe</a>',
    )


def _builder(compiled, **extra):
    return MessageBuilder(
        mailing_id=3, from_email="news@example.com", from_name="", reply_to="", list_ids=[1],
        kind="marketing", send_group="g", extra_headers={}, compiled=compiled.to_dict(), **extra,
    )  # fmt: skip


def test_attachment_goes_with_every_message_unchanged(template):
    template = services.template_attach(template.pk, data=PDF, filename="Prices 2026 – Ümlaut.pdf")
    assert template.current_version.attachments == template.attachments
    compiled = services.template_compile(template.pk)
    assert not compiled.uses_logic  # the fast path still applies
    builder = _builder(compiled, track_clicks=True, track_opens=True)
    parts = []
    for n, name in enumerate(["Ada", "Grace"]):
        context = {"contact": {"first_name": name}, "unsubscribe_url": f"https://x.example/u/{n}"}
        message = _parse(builder.build(Recipient(n + 1, f"{name}@example.org", context)))
        assert message.get_content_type() == "multipart/mixed"
        body = message.get_body(("html",)).get_content()
        assert f"Hi {name}" in body
        (attachment,) = list(message.iter_attachments())
        assert attachment.get_filename() == "Prices 2026 – Ümlaut.pdf"
        assert attachment.get_content_type() == "application/pdf"
        parts.append(attachment.get_content())
    # Never a tracking vehicle: byte for byte the stored file, for every recipient.
    assert parts[0] == parts[1] == PDF


def test_dkim_signs_the_whole_message_with_the_attachment(template):
    services.template_attach(template.pk, data=PDF, filename="a.pdf")
    pem, public = generate_private_key()
    builder = _builder(services.template_compile(template.pk), signer=DkimSigner("example.com", "s1", pem))
    raw = builder.build(Recipient(1, "a@example.org", {"contact": {"first_name": "A"}}))
    record = f"v=DKIM1; k=rsa; p={public}".encode()
    assert dkimpy.verify(raw.replace(b"\r\n..", b"\r\n."), dnsfunc=lambda name, timeout=5: record)


def test_limits_and_refusals(template, settings):
    settings.TEMPLATE_ATTACHMENTS_MAX_BYTES = 50_000
    services.template_attach(template.pk, data=PDF, filename="a.pdf")
    with pytest.raises(TemplateError, match="a message may carry at most"):
        services.template_attach(template.pk, data=PDF, filename="b.pdf")
    with pytest.raises(TemplateError, match=".exe files cannot be attached"):
        services.template_attach(template.pk, data=b"MZ", filename="invoice.pdf.exe")
    with pytest.raises(TemplateError, match="empty"):
        services.template_attach(template.pk, data=b"", filename="x.txt")
    assert len(EmailTemplate.objects.get(pk=template.pk).attachments) == 1
    with pytest.raises(TemplateError, match="attachments total"):
        compile_template(subject="s", html="<p>x</p>", attachments=[{"size": 60_000}])


def test_a_changed_stored_file_is_an_error_not_mail(template):
    from media.storage import media_storage

    template = services.template_attach(template.pk, data=PDF, filename="a.pdf")
    name = template.attachments[0]["storage_name"]
    storage = media_storage()
    storage.delete(name)
    storage.save(name, __import__("io").BytesIO(b"tampered"))
    with pytest.raises(OSError, match="checksum"):
        _builder(services.template_compile(template.pk))


def test_detach_and_versions(template):
    services.template_attach(template.pk, data=PDF, filename="a.pdf")
    template = services.template_detach(template.pk, index=0)
    assert template.attachments == [] and template.current_version.number == 3
    assert "attachments" not in services.template_compile(template.pk).to_dict()
    old = template.versions.get(number=2)
    assert (
        hashlib.sha256(PDF).hexdigest()
        == services.template_compile(template.pk, old.pk).attachments[0]["sha256"]
    )
