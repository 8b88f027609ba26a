"""The dashboard: list with figures, recipes, the builder (htmx), runs, the contact page's runs."""

from __future__ import annotations

import pytest

from automations import scheduler, services
from automations.models import Automation, Step

pytestmark = pytest.mark.django_db


def test_welcome_mail_from_the_list_page_to_an_active_series(marketer_client, mailing_list):
    page = marketer_client.get("/contacts/lists/").content.decode()
    assert f"/automations/recipes/welcome/?list={mailing_list.pk}" in page
    form = marketer_client.get(f"/automations/recipes/welcome/?list={mailing_list.pk}").content.decode()
    assert f'value="{mailing_list.pk}" selected' in form
    response = marketer_client.post("/automations/recipes/welcome/", {"trigger_list": mailing_list.pk})
    automation = Automation.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/automations/{automation.pk}/"
    assert [s.kind for s in Step.objects.filter(automation=automation)] == ["send", "wait", "send"]
    detail = marketer_client.get(f"/automations/{automation.pk}/").content.decode()
    assert "Wait 2 days" in detail and "Send “Welcome to News”" in detail
    marketer_client.post(f"/automations/{automation.pk}/status/", {"status": "active"})
    assert Automation.objects.get().status == "active"


def test_the_builder_adds_edits_and_removes_steps_through_htmx(marketer_client, make_template):
    automation = services.automation_create(name="Drip", trigger="manual")
    template = make_template()
    htmx = {"HTTP_HX_REQUEST": "true"}
    response = marketer_client.post(
        f"/automations/{automation.pk}/steps/", {"kind": "send", "new-template": template.pk}, **htmx
    )
    assert response.status_code == 200 and 'id="flow"' in response.content.decode()
    marketer_client.post(
        f"/automations/{automation.pk}/steps/", {"kind": "wait", "new-amount": 3, "new-unit": "3600"}, **htmx
    )
    wait = Step.objects.get(automation=automation, kind="wait")
    assert wait.config == {"mode": "duration", "seconds": 3 * 3600}
    response = marketer_client.post(
        f"/automations/{automation.pk}/steps/{wait.pk}/",
        {f"s{wait.pk}-mode": "duration", f"s{wait.pk}-amount": 2, f"s{wait.pk}-unit": "86400"}, **htmx,
    )  # fmt: skip
    assert "Wait 2 days" in response.content.decode()
    marketer_client.post(f"/automations/{automation.pk}/steps/{wait.pk}/delete/", **htmx)
    assert list(Step.objects.filter(automation=automation).values_list("kind", flat=True)) == ["send"]


def test_counts_per_step_and_the_contact_page(admin_client, series, make_contacts):
    automation = series()
    (contact,) = make_contacts(1)
    services.enrol(automation.pk, [contact.pk])
    scheduler.tick()
    wait = Step.objects.get(automation=automation, kind="wait")
    counts = admin_client.get(f"/automations/{automation.pk}/counts/").content.decode()
    assert f'id="counts-{wait.pk}"' in counts and "1 waiting" in counts
    first = Step.objects.get(automation=automation, position=1)
    assert (
        f'<span id="counts-{first.pk}" class="step-counts" hx-swap-oob="true"><span data-count="waiting">0 waiting'
        in counts
    )
    assert (
        f"/automations/contact/{contact.pk}/runs/"
        in admin_client.get(f"/contacts/{contact.pk}/").content.decode()
    )
    runs = admin_client.get(f"/automations/contact/{contact.pk}/runs/").content.decode()
    assert "Series" in runs and "at step 2" in runs and "entered" in runs
    listing = admin_client.get("/automations/").content.decode()
    assert "Series" in listing and "Welcome series" in listing


def test_a_developer_reads_but_does_not_change(developer_client, series):
    automation = series()
    assert developer_client.get(f"/automations/{automation.pk}/").status_code == 200
    assert (
        developer_client.post(f"/automations/{automation.pk}/status/", {"status": "paused"}).status_code
        == 403
    )
    assert Automation.objects.get(pk=automation.pk).status == "active"


def test_a_refused_step_edit_keeps_the_step_and_says_why(marketer_client):
    automation = services.automation_create(name="Drip", trigger="manual")
    marketer_client.post(
        f"/automations/{automation.pk}/steps/",
        {"kind": "wait", "new-amount": 3, "new-unit": "3600"},
        HTTP_HX_REQUEST="true",
    )
    wait = Step.objects.get(automation=automation, kind="wait")
    response = marketer_client.post(
        f"/automations/{automation.pk}/steps/{wait.pk}/",
        {f"s{wait.pk}-mode": "duration", f"s{wait.pk}-amount": "-1", f"s{wait.pk}-unit": "86400"},
        HTTP_HX_REQUEST="true",
    )
    # Under htmx the page reloads to show the message; the step is as it was.
    assert response.status_code == 204 and response["HX-Refresh"] == "true"
    assert Step.objects.get(pk=wait.pk).config == {"mode": "duration", "seconds": 3 * 3600}
    page = marketer_client.get(f"/automations/{automation.pk}/").content.decode()
    assert f"Step {wait.position} was not saved" in page


def test_steps_move_up_and_down_with_their_runs_and_never_behind_a_branch_to_them(
    marketer_client, series, make_contacts
):
    """The builder's Move buttons swap a step with its neighbour; a contact waiting at a step moves
    with it; a move that would turn a branch's other way backwards is refused and changes nothing."""
    from automations.models import Run
    from mailplatform.models import AuditEntry

    automation = series()  # 1 send, 2 wait, 3 branch (otherwise → 5), 4 send, 5 end
    (contact,) = make_contacts(1)
    services.enrol(automation.pk, [contact.pk])
    scheduler.tick()
    wait = Step.objects.get(automation=automation, kind="wait")
    assert Run.objects.get().step_id == wait.pk
    htmx = {"HTTP_HX_REQUEST": "true"}
    page = marketer_client.get(f"/automations/{automation.pk}/").content.decode()
    assert "Move step 2 up" in page and "Move step 1 up" not in page and "Move step 5 down" not in page

    response = marketer_client.post(
        f"/automations/{automation.pk}/steps/{wait.pk}/move/", {"direction": "up"}, **htmx
    )
    assert response.status_code == 200 and 'id="flow"' in response.content.decode()
    kinds = list(
        Step.objects.filter(automation=automation).order_by("position").values_list("kind", flat=True)
    )
    assert kinds == ["wait", "send", "branch", "send", "end"]
    assert Run.objects.get().step_id == wait.pk  # the contact waits where they waited
    assert AuditEntry.objects.filter(action="automation.step_moved").count() == 1

    # The end step (the branch's other way, step 5) cannot go above the branch (step 3).
    end = Step.objects.get(automation=automation, kind="end")
    marketer_client.post(f"/automations/{automation.pk}/steps/{end.pk}/move/", {"direction": "up"}, **htmx)
    response = marketer_client.post(
        f"/automations/{automation.pk}/steps/{end.pk}/move/", {"direction": "up"}, **htmx
    )
    assert response.status_code == 204 and response["HX-Refresh"] == "true"
    kinds = list(
        Step.objects.filter(automation=automation).order_by("position").values_list("kind", flat=True)
    )
    assert kinds == ["wait", "send", "branch", "end", "send"]
    shown = marketer_client.get(f"/automations/{automation.pk}/").content.decode()
    assert "other way would lead backwards" in shown


def test_a_developer_cannot_move_steps(developer_client, series):
    automation = series()
    first = Step.objects.get(automation=automation, position=1)
    response = developer_client.post(
        f"/automations/{automation.pk}/steps/{first.pk}/move/", {"direction": "down"}
    )
    assert response.status_code == 403
    assert Step.objects.get(pk=first.pk).position == 1


def test_the_webhook_signing_secret_shows_to_editors_only(client, make_user, settings):
    from automations.selectors import webhook_secret

    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    automation = services.automation_create(name="Hooked", trigger="manual")
    services.step_add(automation.pk, kind="webhook", config={"url": "http://127.0.0.1:9/hook"})
    secret = webhook_secret(Automation.objects.get(pk=automation.pk))
    client.force_login(make_user("marketer", "mara"))
    assert secret in client.get(f"/automations/{automation.pk}/").content.decode()
    client.force_login(make_user("developer", "dev"))
    assert secret not in client.get(f"/automations/{automation.pk}/").content.decode()
