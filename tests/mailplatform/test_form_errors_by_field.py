"""Issue #14 item 3: one way forms are drawn, so an error sits with the field it is about.

Each case below showed its error under another field (Django's as_p prints a field's errors
before the next field's label) or at the top of the page."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def _field(page: str, name: str) -> str:
    """The HTML of one drawn field (mailplatform/forms/field.html), up to the next field."""
    start = page.index(f'data-field="{name}"')
    following = page.find('data-field="', start + 1)
    return page[start : following if following != -1 else None]


def test_a_bad_address_for_a_new_user_shows_under_email_and_the_role_defaults_to_the_least(admin_client):
    page = admin_client.get(reverse("users")).content.decode()
    assert re.search(r'<option value="developer" selected>', _field(page, "role"))
    page = admin_client.post(
        reverse("users"), {"username": "newbie", "email": "not-an-address", "role": "developer"}
    )
    body = page.content.decode()
    assert "Enter a valid email address." in _field(body, "email")
    assert "errorlist" not in _field(body, "username") and 'value="newbie"' in _field(body, "username")


def test_an_api_key_without_a_scope_says_so_under_the_scopes(admin_client):
    body = admin_client.post(reverse("api-keys"), {"name": "signup form"}).content.decode()
    assert "This field is required." in _field(body, "scopes")
    assert "errorlist" not in _field(body, "name")
    assert "<legend>Scopes:</legend>" in _field(body, "scopes")  # a group of boxes has its caption above


def test_a_bad_number_in_a_segment_rule_shows_on_its_row(admin_client):
    from contacts.models import CustomField

    CustomField.objects.create(name="points", label="Points", type="number")
    post = {
        "name": "Big spenders", "match": "all", "g0_match": "all",
        "g0_c0_field": "email", "g0_c0_op": "contains", "g0_c0_value": "@",
        "g0_c1_field": "attr:points", "g0_c1_op": "gt", "g0_c1_value": "lots",
    }  # fmt: skip
    body = admin_client.post(reverse("contacts:segment-create"), post).content.decode()
    row = body[body.index('data-condition="0-1"') :]
    row = row[: row.index("</div>")]
    assert "&#x27;lots&#x27; is not a number" in row
    first = body[body.index('data-condition="0-0"') : body.index('data-condition="0-1"')]
    assert "errorlist" not in first


def test_campaign_steps_draw_lists_as_captioned_groups_and_ab_settings_only_for_an_ab_test(admin_client, db):
    from campaigns.services import campaign_create, campaign_update
    from contacts.models import MailingList

    MailingList.objects.create(name="Readers")
    campaign = campaign_create(name="Plain")
    audience = admin_client.get(reverse("campaigns:step", args=[campaign.pk, "audience"])).content.decode()
    assert "<legend>Lists:</legend>" in _field(audience, "lists")
    assert "<legend>Exclude lists:</legend>" in _field(audience, "exclude_lists")
    settings_url = reverse("campaigns:step", args=[campaign.pk, "settings"])
    assert 'data-field="ab_metric"' not in admin_client.get(settings_url).content.decode()
    campaign_update(campaign.pk, ab_test=True)
    assert 'data-field="ab_metric"' in admin_client.get(settings_url).content.decode()
    content = admin_client.get(reverse("campaigns:step", args=[campaign.pk, "content"])).content.decode()
    assert 'data-shown-by="id_ab_test"' in content
