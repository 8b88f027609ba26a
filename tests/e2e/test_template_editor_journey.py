"""A marketer creates a template from a starter, edits it with the live preview, breaks it,
sees where, fixes it, checks mobile and text views, and restores an older version."""

import re

import pytest
from playwright.sync_api import Page, expect

from templates.models import EmailTemplate

pytestmark = pytest.mark.browser


def _log_in(page: Page, live_server, make_user):
    make_user("marketer", "editor", password="editor password 1")
    page.goto(live_server.url + "/templates/")
    page.get_by_label("Username").fill("editor")
    page.get_by_label("Password").fill("editor password 1")
    page.get_by_role("button", name="Log in").click()


def test_template_editor_journey(live_server, page: Page, make_user):
    _log_in(page, live_server, make_user)
    expect(page.get_by_role("heading", name="Templates")).to_be_visible()
    page.get_by_role("link", name="New template").click()
    page.get_by_label("Name").fill("Spring letter")
    page.get_by_text("Personal letter").click()
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", name=re.compile("Spring letter"))).to_be_visible()

    preview = page.frame_locator("#preview-frame")
    expect(preview.get_by_text("Hi Ada,")).to_be_visible()  # sample data

    # Live preview follows typing, with the marketer's own preview data.
    page.get_by_text("Preview data (JSON)").click()
    page.locator("#id_preview_data").fill('{"contact": {"first_name": "Grace <Hopper>"}}')
    html = page.get_by_label("HTML")
    html.fill(html.input_value().replace("<p>Hi {{", "<p>Dear {{"))
    expect(preview.get_by_text("Dear Grace <Hopper>,")).to_be_visible()

    # A script in the template does not run: the frame is sandboxed and its CSP forbids scripts.
    html.fill(html.input_value().replace("</body>", "<script>parent.document.title='owned'</script></body>"))
    page.get_by_role("button", name="Update preview").click()
    expect(preview.get_by_text("Dear Grace <Hopper>,")).to_be_visible()
    page.wait_for_timeout(300)
    assert page.title() != "owned"
    html.fill(html.input_value().replace("<script>parent.document.title='owned'</script>", ""))

    # Mobile width and the plain-text part.
    page.get_by_role("button", name="Mobile").click()
    expect(page.locator("#preview-frame")).to_have_class(re.compile("mobile"))
    assert page.locator("#preview-frame").bounding_box()["width"] <= 380
    page.get_by_role("button", name="Plain text").click()
    expect(preview.locator("pre")).to_contain_text("Dear Grace <Hopper>,")
    page.get_by_role("button", name="Desktop").click()

    # An error is shown live and on save, with its line and column; nothing is stored.
    html.fill(html.input_value().replace("<p>Dear", "<p>{% if %}Dear"))
    expect(page.locator("#preview-meta")).to_contain_text("missing expression")
    # The live preview may redraw the error (and its button) just as it is clicked: click again then.
    for _ in range(3):
        page.get_by_role("button", name="Show in editor").click()
        if html.evaluate("element => element === document.activeElement"):
            break
        page.wait_for_timeout(500)
    expect(html).to_be_focused()
    selected = html.evaluate("el => el.value.slice(el.selectionStart, el.selectionStart + 2)")
    assert selected == "if"
    html.fill(html.input_value().replace("<p>{% if %}Dear", "<p>Dear"))
    page.get_by_label("Subject").fill("Hello {{ contact.first_name ")
    expect(page.locator("#preview-meta")).to_contain_text("subject, line 1")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert").first).to_contain_text("subject at line 1")
    template = EmailTemplate.objects.get(name="Spring letter")
    assert template.subject == "A quick note"

    page.get_by_label("Subject").fill("Hello {{ contact.first_name }}")
    expect(page.get_by_test_id("rendered-subject")).to_have_text("Hello Grace <Hopper>")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved “Spring letter”.")).to_be_visible()
    template.refresh_from_db()
    assert template.subject == "Hello {{ contact.first_name }}" and template.current_version.number == 2

    # History: preview and restore version 1.
    page.get_by_role("link", name="Version history").click()
    page.get_by_role("link", name="Preview v1").click()
    expect(page.frame_locator("iframe[name=version-frame]").get_by_text("Hi Ada,")).to_be_visible()
    page.get_by_role("button", name="Restore v1").click()
    expect(page.get_by_text("this is now version 3")).to_be_visible()
    template.refresh_from_db()
    assert template.subject == "A quick note" and "<p>Hi {{" in template.html


def test_preview_for_a_contact_from_the_contacts_app(live_server, page: Page, make_user, settings):
    from templates import services

    settings.ROOT_URLCONF = "tests.templates.urls_contact_lookup"
    template = services.template_create(
        name="Cities",
        subject="s",
        html='<p>Hi {{ contact.first_name }} in {{ contact.city }}</p><a href="{{ unsubscribe_url }}">u</a>',
    )
    _log_in(page, live_server, make_user)
    page.goto(f"{live_server.url}/templates/{template.pk}/")
    preview = page.frame_locator("#preview-frame")
    expect(preview.get_by_text("Hi Ada in London")).to_be_visible()
    page.get_by_text("Preview data (JSON)").click()
    page.get_by_label("Preview for contact").fill("nobody@example.com")
    page.get_by_role("button", name="Use this contact").click()
    expect(page.get_by_text("No contact with that email.")).to_be_visible()
    page.get_by_label("Preview for contact").fill("grace@example.com")
    page.get_by_role("button", name="Use this contact").click()
    expect(preview.get_by_text("Hi Grace in Arlington")).to_be_visible()
