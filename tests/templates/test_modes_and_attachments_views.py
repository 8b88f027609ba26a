"""The editor's mode switch (lossless or refused, saying why) and its attachment forms."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from templates import services
from templates.models import EmailTemplate
from templates.starters import BLANK_BODIES, STARTERS

pytestmark = pytest.mark.django_db


def _form(template: EmailTemplate, **changes) -> dict:
    data = {
        "name": template.name,
        "subject": template.subject,
        "html": template.html,
        "text": "",
        "preheader": "",
    }
    return {**data, **changes}


@pytest.fixture
def blocks_template():
    return services.template_create(
        name="B", subject="Hi", html=BLANK_BODIES["blocks"], source_format="blocks"
    )


def test_blocks_switch_to_mjml_then_html_and_back_is_refused(marketer_client, blocks_template):
    url = reverse("templates:switch-mode", args=[blocks_template.pk])
    response = marketer_client.post(url, {**_form(blocks_template), "target": "mjml"})
    assert response.status_code == 302
    blocks_template.refresh_from_db()
    assert blocks_template.source_format == "mjml" and blocks_template.html.startswith("<mjml>")
    assert blocks_template.current_version.note == "Switched from Blocks to MJML"
    refused = marketer_client.post(url, {**_form(blocks_template), "target": "blocks"})
    assert refused.status_code == 400
    assert "MJML cannot become Blocks without losing content" in refused.content.decode()
    blocks_template.refresh_from_db()
    assert blocks_template.source_format == "mjml"
    to_html = marketer_client.post(url, {**_form(blocks_template), "target": "html"})
    assert to_html.status_code == 302
    blocks_template.refresh_from_db()
    assert blocks_template.source_format == "html" and "{{ unsubscribe_url }}" in blocks_template.html


def test_the_editor_page_in_blocks_mode_has_no_inline_script(marketer_client, blocks_template):
    page = marketer_client.get(reverse("templates:edit", args=[blocks_template.pk])).content.decode()
    assert "data-block-editor" in page and "blocks.js" in page
    assert "<script>" not in page and " onclick=" not in page
    defaults = json.loads(page.split('data-defaults="')[1].split('"')[0].replace("&quot;", '"'))
    assert set(defaults) >= {"heading", "text", "image", "button", "columns", "footer"}


def test_developers_may_not_attach(developer_client, blocks_template):
    url = reverse("templates:attachment-add", args=[blocks_template.pk])
    assert developer_client.post(url, {"file": SimpleUploadedFile("a.txt", b"a")}).status_code == 403
    assert EmailTemplate.objects.get(pk=blocks_template.pk).attachments == []


def test_attach_and_remove_through_the_editor(marketer_client, blocks_template, settings):
    url = reverse("templates:attachment-add", args=[blocks_template.pk])
    response = marketer_client.post(
        url, {"file": SimpleUploadedFile("terms.pdf", b"%PDF terms")}, follow=True
    )
    assert "Attached terms.pdf." in response.content.decode()
    assert EmailTemplate.objects.get(pk=blocks_template.pk).attachments[0]["filename"] == "terms.pdf"
    settings.TEMPLATE_ATTACHMENTS_MAX_BYTES = 2048
    big = marketer_client.post(url, {"file": SimpleUploadedFile("big.bin", b"x" * 4096)}, follow=True)
    assert "a message may carry at most" in big.content.decode()
    removed = marketer_client.post(
        reverse("templates:attachment-remove", args=[blocks_template.pk, 0]), follow=True
    )
    assert "Attachment removed." in removed.content.decode()
    assert EmailTemplate.objects.get(pk=blocks_template.pk).attachments == []


def test_new_template_gallery_shows_thumbnails_and_blank_formats(marketer_client):
    page = marketer_client.get(reverse("templates:new")).content.decode()
    assert page.count("<svg") == len(STARTERS) and "Blank: blocks" in page and "Blank: Markdown" in page
    for key in ("blocks", "mjml", "markdown"):
        marketer_client.post(reverse("templates:new"), {"name": f"Blank {key}", "starter": key})
        template = EmailTemplate.objects.get(name=f"Blank {key}")
        assert template.source_format == key
        assert (
            "Hello" in services.template_compile(template.pk).render({"contact": {}}).html or key != "blocks"
        )
