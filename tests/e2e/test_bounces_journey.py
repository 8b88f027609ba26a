"""An admin reads the Bounces page, filters it, opens a bounce and tightens the policy."""

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from delivery.bounces.models import BouncePolicy
from delivery.bounces.services import bounce_process

pytestmark = pytest.mark.browser
SAMPLES = Path(__file__).resolve().parents[1] / "bounces" / "samples"


def test_admin_reads_bounces_and_changes_the_policy(live_server, page: Page, make_user):
    make_user("admin", "postmaster", password="journey password 1")
    for name in ("exim-text.eml", "dsn-two-recipients-mixed.eml", "arf-abuse.eml"):
        bounce_process((SAMPLES / name).read_bytes(), source="pipe")
    page.goto(live_server.url + "/login/")
    page.get_by_label("Username").fill("postmaster")
    page.get_by_label("Password").fill("journey password 1")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Bounces").click()
    expect(page.get_by_role("heading", name="Bounces and complaints")).to_be_visible()
    expect(page.locator("svg[aria-label='Bounces and complaints per day'] rect.bar-bounces")).to_have_count(
        30
    )
    page.get_by_label("Kind").select_option("block")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("cell", name="blocked@example.com")).to_be_visible()
    expect(page.get_by_role("cell", name="gone@example.com")).to_have_count(0)
    page.get_by_role("row", name=re.compile("blocked@example.com")).get_by_role("link").click()
    expect(page.get_by_role("heading", name=re.compile("block bounce"))).to_be_visible()
    expect(page.get_by_text("spamhaus")).to_be_visible()
    page.goto(live_server.url + "/bounces/policy/")
    page.get_by_label("Soft bounce threshold").fill("4")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Bounce policy saved.")).to_be_visible()
    assert BouncePolicy.current().soft_bounce_threshold == 4
