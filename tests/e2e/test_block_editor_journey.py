"""A marketer builds a newsletter by dragging blocks (text, an image from the media library, a
button, columns), previews it on a phone's width, attaches a price list, sends a test through the
capture relay, and the captured message shows the same blocks with the attachment intact."""

from __future__ import annotations

import email
import email.policy
import os
import re

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

PRICE_LIST = b"%PDF-1.4\n" + os.urandom(100 * 1024) + b"\n%%EOF\n"


def _drag(page: Page, palette_label: str) -> None:
    dropzone = page.locator("[data-dropzone]")
    # The palette is sticky: with the drop zone in view, both are on screen for the drag.
    dropzone.evaluate("el => el.scrollIntoView({block: 'end'})")
    page.get_by_role("button", name=palette_label, exact=True).drag_to(dropzone)


def test_block_editor_journey(live_server, page: Page, make_user, capture_relay, tmp_path):
    from delivery import engine
    from delivery.models import Message
    from mailplatform.models import CapturedMessage
    from templates.models import EmailTemplate

    make_user("marketer", "nora", password="nora password 1")
    page.goto(live_server.url + "/login/")
    page.get_by_label("Username").fill("nora")
    page.get_by_label("Password").fill("nora password 1")
    page.get_by_role("button", name="Log in").click()

    page.goto(live_server.url + "/templates/new/")
    page.get_by_label("Name").fill("March newsletter")
    page.get_by_text("Blank: blocks").click()
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_test_id("source-format")).to_have_text("Blocks")
    canvas = page.locator(".block-canvas")
    expect(canvas.locator("> .block-card")).to_have_count(2)  # a heading and the footer

    # An image into the library, from the editor's panel.
    logo = tmp_path / "spring-logo.png"
    Image.new("RGB", (900, 300), (30, 120, 60)).save(logo)
    page.locator("#media-file-picker").set_input_files(str(logo))
    page.locator("#media-panel").get_by_role("button", name="Upload", exact=True).click()
    expect(page.locator("#media-panel")).to_contain_text("Uploaded “spring-logo.png”.")

    # Blocks dragged from the palette into the message.
    _drag(page, "Text")
    text = canvas.locator('> [data-block-type="text"]')
    text.get_by_label("Text", exact=True).fill(
        'Spring is **finally** here, {{ contact.first_name | default: "friend" }}.'
    )
    _drag(page, "Image")
    image = canvas.locator('> [data-block-type="image"]')
    image.get_by_label("Image", exact=True).select_option(label="spring-logo.png")
    image.get_by_label("Alternative text").fill("Spring logo")
    _drag(page, "Button")
    button = canvas.locator('> [data-block-type="button"]')
    button.get_by_label("Button label").fill("Shop the sale")
    button.get_by_label("Button link").fill("https://shop.example.com/sale")
    _drag(page, "Two columns")
    columns = canvas.locator('> [data-block-type="columns"]')
    columns.get_by_label("Column heading").nth(0).fill("Left story")
    columns.get_by_label("Column heading").nth(1).fill("Right story")
    # The footer was second; dragged by its handle to the end.
    footer = canvas.locator('> [data-block-type="footer"]')
    page.set_viewport_size({"width": 1280, "height": 2400})  # the whole list on screen for the move
    footer.locator(".drag-handle").drag_to(page.locator("[data-dropzone]"))
    page.set_viewport_size({"width": 1280, "height": 720})
    footer.get_by_label("Postal address (required)").fill("Posthorn Ltd\n1 Harbour Road, Leith")
    order = canvas.locator("> .block-card").evaluate_all("cards => cards.map(c => c.dataset.blockType)")
    assert order == ["heading", "text", "image", "button", "columns", "footer"]

    # The live preview is compiled on the server from the blocks.
    preview = page.frame_locator("#preview-frame")
    expect(preview.get_by_text("Right story")).to_be_visible()
    expect(preview.get_by_text("Shop the sale")).to_be_visible()
    expect(preview.get_by_text("here, Ada.")).to_be_visible()  # sample data in the preview
    expect(preview.locator('img[alt="Spring logo"]')).to_have_attribute(
        "src", re.compile(r"^http://.*/media/f/images/")
    )
    page.get_by_role("button", name="Mobile").click()
    expect(page.locator("#preview-frame")).to_have_class(re.compile("mobile"))
    assert page.locator("#preview-frame").bounding_box()["width"] <= 380
    expect(preview.get_by_text("Left story")).to_be_visible()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved “March newsletter”.")).to_be_visible()
    template = EmailTemplate.objects.get(name="March newsletter")
    assert template.source_format == "blocks" and '"type": "columns"' in template.html

    # A price list attached, then a test sent through the capture relay.
    attachment = tmp_path / "price-list.pdf"
    attachment.write_bytes(PRICE_LIST)
    page.get_by_label("Attach a file").set_input_files(str(attachment))
    page.get_by_role("button", name="Attach", exact=True).click()
    expect(page.get_by_text("Attached price-list.pdf.")).to_be_visible()
    page.get_by_label("Send a test to").fill("me@example.com")
    page.get_by_role("button", name="Send test").click()
    expect(page.locator("#test-send-result")).to_contain_text("Test queued for me@example.com")
    message = Message.objects.get(email="me@example.com")
    assert engine.drain(message.mailing_id).sent == 1

    captured = CapturedMessage.objects.get()
    mail = email.message_from_bytes(bytes(captured.raw), policy=email.policy.default)
    html = mail.get_body(("html",)).get_content()
    for expected in ["Spring is <strong>finally</strong> here, friend.", "Shop the sale", "Left story", "Right story",
                     'alt="Spring logo"', "1 Harbour Road, Leith", "https://shop.example.com/sale"]:  # fmt: skip
        assert expected in html
    assert re.search(r'src="http://[^"]+/media/f/images/[0-9a-f]{64}/600\.png"', html)
    (attached,) = list(mail.iter_attachments())
    assert attached.get_filename() == "price-list.pdf" and attached.get_content() == PRICE_LIST

    # The captured message in the dashboard: the same blocks, and the file to download.
    page.goto(live_server.url + "/captured/")
    page.get_by_role("link", name="Hello", exact=True).first.click()
    shown = page.frame_locator("#captured-html")
    expect(shown.get_by_text("Right story")).to_be_visible()
    expect(shown.get_by_text("Shop the sale")).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("link", name=re.compile("price-list.pdf")).click()
    with open(download.value.path(), "rb") as handle:
        assert handle.read() == PRICE_LIST
