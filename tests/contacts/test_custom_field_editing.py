"""Issue #14: a custom field label "Loyalty Points" gives the key loyalty_points (shown, editable
before first use); fields are editable and deletable, the deletion saying how many contacts hold a value."""

from __future__ import annotations

import pytest
from django.urls import reverse

from contacts.models import Contact, CustomField, Segment

pytestmark = pytest.mark.django_db


def test_label_derives_the_key(marketer_client):
    response = marketer_client.post(
        reverse("contacts:fields"), {"label": "Loyalty Points", "name": "", "type": "number"}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    field = CustomField.objects.get()
    assert (field.name, field.label, field.type) == ("loyalty_points", "Loyalty Points", "number")
    page = marketer_client.get(reverse("contacts:fields")).content.decode()
    assert "contact.loyalty_points" in page and "Slug" not in page and "slug" not in page


def test_typed_key_is_kept_and_a_bad_one_is_refused_on_its_field(marketer_client):
    marketer_client.post(reverse("contacts:fields"), {"label": "Tier", "name": "member_tier", "type": "text"})
    assert CustomField.objects.get().name == "member_tier"
    response = marketer_client.post(
        reverse("contacts:fields"), {"label": "X", "name": "a b!", "type": "text"}
    )
    assert response.status_code == 200
    assert response.context["form"].errors["name"]


def test_key_editable_before_first_use_then_locked(marketer_client):
    field = CustomField.objects.create(name="points", label="Points", type="number")
    url = reverse("contacts:field-edit", args=[field.pk])
    response = marketer_client.post(
        url, {"label": "Loyalty Points", "name": "loyalty_points", "type": "number"}
    )
    assert response.status_code == 302
    field.refresh_from_db()
    assert (field.name, field.label) == ("loyalty_points", "Loyalty Points")

    Contact.objects.create(email="a@example.com", attributes={"loyalty_points": 5})
    page = marketer_client.get(url).content.decode()
    assert "1 contact holds a value" in page
    marketer_client.post(url, {"label": "Points!", "name": "pts", "type": "text"})
    field.refresh_from_db()
    assert (field.name, field.label, field.type) == ("loyalty_points", "Points!", "number")


def test_delete_says_how_many_hold_a_value_and_removes_them(marketer_client):
    field = CustomField.objects.create(name="loyalty_points", label="Loyalty Points", type="number")
    for i in range(2):
        Contact.objects.create(email=f"p{i}@example.com", attributes={"loyalty_points": i, "other": 1})
    Contact.objects.create(email="none@example.com", attributes={"other": 1})
    page = marketer_client.get(reverse("contacts:field-edit", args=[field.pk])).content.decode()
    assert 'data-confirm="Delete the field Loyalty Points? 2 contacts hold a value for it;' in page

    response = marketer_client.post(reverse("contacts:field-delete", args=[field.pk]))
    assert response.status_code == 302
    assert not CustomField.objects.exists()
    assert all(c.attributes == {"other": 1} for c in Contact.objects.all())


def test_delete_refused_while_a_segment_uses_the_field(marketer_client):
    field = CustomField.objects.create(name="score", label="Score", type="number")
    Segment.objects.create(
        name="High",
        rules={"match": "all", "groups": [{"match": "all", "conditions": [
            {"field": "attr:score", "op": "gt", "value": "5"}]}]},
    )  # fmt: skip
    response = marketer_client.post(reverse("contacts:field-delete", args=[field.pk]), follow=True)
    assert CustomField.objects.filter(pk=field.pk).exists()
    assert "High" in response.content.decode()
