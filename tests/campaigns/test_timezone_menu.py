"""Issue #14: the time-zone menu is grouped by region and searchable, not ~600 raw IDs."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_schedule_menu_is_grouped_by_region(marketer_client, campaign_factory):
    campaign = campaign_factory(1)
    page = marketer_client.get(reverse("campaigns:schedule", args=[campaign.pk])).content.decode()
    select = page[page.index('name="timezone"') :]
    select = select[: select.index("</select>")]
    groups = re.findall(r'<optgroup label="([^"]+)">', select)
    assert {"Europe", "America", "Asia", "Africa", "Australia", "UTC"} <= set(groups)
    assert len(groups) < 15
    assert '<option value="America/New_York">New York</option>' in select
    assert "US/Eastern" not in select and "Etc/GMT" not in select
    # Every option sits in a region group (no flat list of IDs).

    first = select.index("<optgroup")
    assert "<option" not in select[:first]


def test_contact_time_zone_suggests_as_one_types(admin_client):
    from contacts.models import Contact

    contact = Contact.objects.create(email="tz@example.com")
    page = admin_client.get(reverse("contacts:detail", args=[contact.pk])).content.decode()
    field = page[page.index('name="timezone"') - 200 :]
    list_id = re.search(r'list="([^"]+)"', field[: field.index(">", 200)]).group(1)
    datalist = page[page.index(f'<datalist id="{list_id}">') :]
    datalist = datalist[: datalist.index("</datalist>")]
    assert '<option value="Europe/Berlin" label="Europe · Berlin">' in datalist
    response = admin_client.post(
        reverse("contacts:detail", args=[contact.pk]),
        {"timezone": "europe/berlin", "status": contact.status},
    )
    contact.refresh_from_db()
    assert contact.timezone == "Europe/Berlin", response.content.decode()[:500]
