"""The automations API: read with steps and counts, status changes, enrol and remove, events."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_kick(monkeypatch):
    monkeypatch.setattr("automations.services.kick", lambda: None)


@pytest.fixture
def automation(db):
    from automations.services import automation_create, step_add
    from templates.services import template_create

    automation = automation_create(
        name="Cart", trigger="event", trigger_event="cart", entry_policy="every_time"
    )
    template = template_create(name="Cart", subject="Your {{ event.item }}", html="<p>{{ event.item }}</p>")
    step_add(automation.pk, kind="send", template_id=template.pk)
    step_add(automation.pk, kind="wait", config={"mode": "duration", "seconds": 3600})
    return automation


def test_read_activate_enrol_count_and_remove(api, automation):
    from automations.scheduler import tick
    from contacts.models import Contact

    listing = api.get("/api/v1/automations/").json()
    assert [a["name"] for a in listing["results"]] == ["Cart"]
    assert (
        api.post(f"/api/v1/automations/{automation.pk}/status", {"status": "active"}, format="json").json()[
            "status"
        ]
        == "active"
    )
    contacts = Contact.objects.bulk_create(Contact(email=f"c{i}@example.org") for i in range(3))
    response = api.post(
        f"/api/v1/automations/{automation.pk}/enrol", {"contacts": [c.pk for c in contacts]}, format="json"
    )
    assert response.json() == {"count": 3}
    tick()
    detail = api.get(f"/api/v1/automations/{automation.pk}/").json()
    assert [(s["kind"], s["waiting"]) for s in detail["steps"]] == [("send", 0), ("wait", 3)]
    removed = api.post(
        f"/api/v1/automations/{automation.pk}/remove", {"contacts": [contacts[0].pk]}, format="json"
    )
    assert removed.json() == {"count": 1}
    runs = api.get(f"/api/v1/automations/{automation.pk}/runs/?status=exited").json()["results"]
    assert [r["contact"] for r in runs] == [contacts[0].pk]
    conflict = api.post(f"/api/v1/automations/{automation.pk}/status", {"status": "draft"}, format="json")
    assert conflict.status_code == 409


def test_post_an_event_creates_the_contact_when_asked_and_starts_runs(api, automation):
    from automations.services import automation_set_status

    automation_set_status(automation.pk, "active")
    unknown = api.post("/api/v1/events", {"name": "cart", "email": "new@example.org"}, format="json")
    assert unknown.status_code == 404
    created = api.post(
        "/api/v1/events",
        {"name": "cart", "email": "new@example.org", "create": True, "properties": {"item": "a kite"}},
        format="json",
    )
    assert created.status_code == 201 and created.json()["started"] == 1
    both = api.post(
        "/api/v1/events", {"name": "cart", "email": "a@example.org", "contact_id": 1}, format="json"
    )
    assert both.status_code == 400


def test_scopes(api_client_for, automation):
    reader = api_client_for("admin", ["automations:read"])
    assert reader.get(f"/api/v1/automations/{automation.pk}/").status_code == 200
    assert (
        reader.post(
            f"/api/v1/automations/{automation.pk}/status", {"status": "active"}, format="json"
        ).status_code
        == 403
    )
    assert reader.post("/api/v1/events", {"name": "cart", "contact_id": 1}, format="json").status_code == 403
