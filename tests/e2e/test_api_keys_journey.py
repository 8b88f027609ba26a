"""A developer creates an API key in the dashboard, uses it, revokes it; the docs render offline."""

import json
import re
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser


def _log_in(page: Page, live_server, username: str, password: str) -> None:
    page.goto(live_server.url + "/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Home")).to_be_visible()


def _call(url: str, key: str) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            json.loads(response.read())
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_create_use_and_revoke_a_key(live_server, page: Page, make_user):
    make_user("developer", "devjourney", password="journey password 1")
    _log_in(page, live_server, "devjourney", "journey password 1")
    page.goto(live_server.url + "/settings/")
    page.get_by_role("link", name="Keys for the REST API").click()
    expect(page.get_by_role("heading", name="API keys")).to_be_visible()
    expect(page.get_by_text("relays:admin")).to_have_count(0)  # not a developer's to grant
    page.get_by_label("Name").fill("signup form")
    page.get_by_label(re.compile(r"webhooks:manage")).check()
    page.get_by_role("button", name="Create key").click()
    key = page.locator("#new-api-key").inner_text().strip()
    assert key.startswith("phk_")
    assert _call(live_server.url + "/api/v1/webhooks/", key) == 200
    assert _call(live_server.url + "/api/v1/contacts/", key) == 403  # no contacts scope
    page.reload()
    expect(page.locator("#new-api-key")).to_have_count(0)  # shown once
    page.get_by_role("button", name="Revoke signup form").click()
    expect(page.get_by_text("revoked", exact=True)).to_be_visible()
    assert _call(live_server.url + "/api/v1/webhooks/", key) == 401


def test_interactive_docs_load_without_a_cdn(live_server, page: Page):
    outside = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(live_server.url) else None)
    page.goto(live_server.url + "/api/v1/docs/")
    expect(page.get_by_text("Posthorn API").first).to_be_visible(timeout=15000)
    expect(page.get_by_text("/api/v1/send").first).to_be_visible()
    assert outside == []
