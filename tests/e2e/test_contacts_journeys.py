"""Browser journeys: the segment builder's live count, a public subscribe and preference change."""

import re

import pytest
from playwright.sync_api import Page, expect

from contacts import tokens
from contacts.models import Contact, CustomField, MailingList, Segment, Subscription

pytestmark = pytest.mark.browser


def _log_in(page: Page, live_server, make_user) -> None:
    make_user("marketer", "builder", password="builder password 1")
    page.goto(live_server.url + "/login/")
    page.get_by_label("Username").fill("builder")
    page.get_by_label("Password").fill("builder password 1")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Home")).to_be_visible()


def test_segment_builder_counts_live_and_saves(live_server, page: Page, make_user):
    CustomField.objects.create(name="score", label="Score", type="number")
    for i, score in enumerate([5, 55, 80, 99]):
        Contact.objects.create(email=f"b{i}@example.com", attributes={"score": score})
    _log_in(page, live_server, make_user)
    page.goto(live_server.url + "/contacts/segments/new/")
    page.get_by_label("Name").fill("High scores")
    page.get_by_label("Field").first.select_option("attr:score")
    # Changing the field redraws the row with number operators.
    expect(page.get_by_label("Operator").first).to_contain_text(">")
    page.get_by_label("Operator").first.select_option("gt")
    page.get_by_label("Value").first.fill("50")
    expect(page.locator("#segment-count")).to_contain_text("3 contacts match")
    page.get_by_role("button", name="+ condition").click()
    expect(page.get_by_label("Field")).to_have_count(2)
    # Changing a field redraws the builder; choosing an operator before the redraw lands would be
    # undone by it, so wait until no request is in flight.
    page.get_by_label("Field").nth(1).select_option("email")
    page.wait_for_function("() => !document.querySelector('.htmx-request')")  # htmx marks requests in flight
    page.get_by_label("Operator").nth(1).select_option("ends_with")
    page.get_by_label("Value").nth(1).fill("3@example.com")
    expect(page.locator("#segment-count")).to_contain_text("1 contacts match")
    page.get_by_role("button", name="Save segment").click()
    expect(page).to_have_url(re.compile(r"/contacts/segments/$"))
    assert len(Segment.objects.get(name="High scores").rules["groups"][0]["conditions"]) == 2


def test_public_subscribe_then_leave_a_list(live_server, page: Page):
    weekly = MailingList.objects.create(name="Weekly", opt_in="single", is_public=True)
    MailingList.objects.create(name="Offers", opt_in="single", is_public=True)
    page.goto(f"{live_server.url}/contacts/p/subscribe/{weekly.public_id}/")
    expect(page.locator(".hp")).not_to_be_in_viewport()
    page.get_by_label("Email address").fill("walker@example.com")
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("heading", name="Thank you")).to_be_visible()
    contact = Contact.objects.get(email="walker@example.com")
    assert Subscription.objects.get(contact=contact).status == "confirmed"
    path = tokens.preferences_url(contact.pk).split("/contacts/", 1)[1]
    page.goto(f"{live_server.url}/contacts/{path}")
    expect(page.get_by_label("Weekly")).to_be_checked()
    page.get_by_label("Weekly").uncheck()
    page.get_by_label("Offers").check()
    page.get_by_role("button", name="Save preferences").click()
    expect(page.get_by_text("Your preferences were saved.")).to_be_visible()
    states = dict(Subscription.objects.filter(contact=contact).values_list("mailing_list__name", "status"))
    assert states == {"Weekly": "unsubscribed", "Offers": "confirmed"}


@pytest.mark.slow
def test_import_csv_with_mapping_and_live_progress(
    live_server, page: Page, make_user, celery_worker_process, tmp_path
):
    rows = "".join(f"person{i}@example.com;P{i};{i % 90}\n" for i in range(2000))
    csv_file = tmp_path / "people.csv"
    csv_file.write_text("Mail;Vorname;Punkte\n" + rows + "broken;x;1\n", encoding="cp1252")
    CustomField.objects.create(name="punkte", label="Punkte", type="number")
    _log_in(page, live_server, make_user)
    page.goto(live_server.url + "/contacts/imports/")
    page.get_by_label("CSV file").set_input_files(str(csv_file))
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_text("separator “;”")).to_be_visible()
    expect(page.get_by_text("person0@example.com")).to_be_visible()
    expect(page.get_by_label("Column Mail")).to_have_value("email")
    page.get_by_label("Column Vorname").select_option("first_name")
    expect(page.get_by_label("Column Punkte")).to_have_value("attr:punkte")
    page.get_by_label("…or a new list named").fill("Imported")
    page.get_by_role("button", name="Start import").click()
    expect(page.get_by_role("progressbar")).to_be_visible()
    expect(page.get_by_text("Download bad rows (CSV)")).to_be_visible(timeout=60_000)
    expect(page.locator("table")).to_contain_text("2,000")
    assert Contact.objects.get(email="person7@example.com").attributes == {"punkte": 7}
    assert Subscription.objects.filter(mailing_list__name="Imported", status="confirmed").count() == 2000
