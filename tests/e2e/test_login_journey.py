import re

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser


def test_log_in_see_home_log_out(live_server, page: Page, make_user):
    make_user("marketer", "journey", password="journey password 1")
    page.goto(live_server.url + "/")
    expect(page).to_have_url(re.compile(r"/login/"))
    page.get_by_label("Username").fill("journey")
    page.get_by_label("Password").fill("journey password 1")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Home")).to_be_visible()
    expect(page.get_by_text("Database")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_contain_text("Captured mail")
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login/"))
    page.goto(live_server.url + "/")
    expect(page).to_have_url(re.compile(r"/login/"))
