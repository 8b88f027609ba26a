"""An admin adds a relay, tests the connection in the browser; a marketer watches a mailing finish."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests.delivery.smtp_servers import RecordingHandler, SmtpServer

pytestmark = pytest.mark.browser


def _log_in(page: Page, url: str, username: str, password: str) -> None:
    page.goto(url + "/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Home")).to_be_visible()


def test_admin_adds_and_tests_a_relay(live_server, page: Page, make_user):
    make_user("admin", "ops", password="ops password 123")
    with SmtpServer(RecordingHandler()) as server:
        _log_in(page, live_server.url, "ops", "ops password 123")
        page.goto(live_server.url + "/delivery/relays/")
        page.get_by_role("link", name="Add a relay").click()
        page.locator("#id_name").fill("Loopback")
        page.locator("#id_host").fill("127.0.0.1")
        page.locator("#id_port").fill(str(server.port))
        page.locator("#id_security").select_option("none")
        page.locator("#id_password").fill("s3cret-relay-pw")
        page.get_by_role("button", name="Save relay").click()
        expect(page.get_by_text("Relay Loopback saved.")).to_be_visible()
        row = page.get_by_role("row").filter(has_text="Loopback")
        row.get_by_role("button", name="Test connection").click()
        result = page.locator("#relay-test-result")
        expect(result).to_contain_text("connected")
        expect(result).to_contain_text("PIPELINING")
        page.get_by_role("link", name="Loopback").first.click()
        expect(page.get_by_text("A password is stored (encrypted)")).to_be_visible()
        assert "s3cret-relay-pw" not in page.content()


def test_marketer_watches_a_mailing_finish(live_server, page: Page, make_user):
    from contacts.models import Contact, MailingList, Subscription
    from contacts.selectors import audience_sql
    from delivery import engine, mailings
    from delivery.models import Relay, SendingIdentity
    from templates.compiler import compile_template

    make_user("marketer", "mara", password="mara password 123")
    with SmtpServer(RecordingHandler()) as server:
        Relay.objects.create(name="sink", host="127.0.0.1", port=server.port, security="none")
        SendingIdentity.objects.create(address="example.com")
        weekly = MailingList.objects.create(name="Weekly")
        for i in range(5):
            contact = Contact.objects.create(email=f"reader{i}@example.org")
            Subscription.objects.create(contact=contact, mailing_list=weekly, status="confirmed")
        mailing = mailings.mailing_create(
            name="Weekly news",
            compiled=compile_template(subject="Hi", html="<p>News</p>"),
            from_email="news@example.com",
            list_ids=[weekly.pk],
        )
        mailings.mailing_start(mailing.pk, audience=audience_sql(list_ids=[weekly.pk]))
        _log_in(page, live_server.url, "mara", "mara password 123")
        page.goto(live_server.url + f"/delivery/mailings/{mailing.pk}/")
        expect(page.get_by_text("0 sent")).to_be_visible()
        # A real worker would be polling for this; here the engine runs in the test's own thread.
        assert engine.drain(mailing.pk).sent == 5
        # The progress fragment polls every 2 s.
        expect(page.get_by_text(re.compile(r"5 sent\b"))).to_be_visible(timeout=10_000)
