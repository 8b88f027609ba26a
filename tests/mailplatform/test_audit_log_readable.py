"""Issue #14: the audit log says who did what to which object (a link), with changes as
"field: old → new", no Python dicts or model paths, filtered by person and object type."""

from __future__ import annotations

import pytest
from django.urls import reverse

from mailplatform.services import audit_record

pytestmark = pytest.mark.django_db


def test_audit_log_reads_as_words_with_links_and_filters(admin_client, admin_user, make_user):
    from contacts.models import CustomField
    from contacts.services import custom_field_update

    field = CustomField.objects.create(name="points", label="Points", type="number")
    custom_field_update(
        field, label="Loyalty Points", name="loyalty_points", field_type="number", by=admin_user
    )
    other = make_user("marketer", "mia")
    from mailplatform.services import user_set_role

    user_set_role(other, "admin", by=admin_user)
    audit_record(
        make_user("developer", "vic"), "relay.tested", None, details={"ok": True, "hosts": ["a", "b"]}
    )

    page = admin_client.get(reverse("audit-log")).content.decode()
    table = page[page.index('id="audit"') :]
    assert "label: Points → Loyalty Points" in table
    assert "key: points → loyalty_points" in table
    assert "role: marketer → admin" in table
    assert f'<a href="{reverse("contacts:field-edit", args=[field.pk])}">Loyalty Points</a>' in table
    assert "Custom field updated" in table
    assert "ok: yes" in table and "hosts: a, b" in table
    for leak in ("{", "}", "contacts.CustomField", "mailplatform.User", "[&#x27;", "&#x27;:"):
        assert leak not in table, leak

    by_vic = admin_client.get(reverse("audit-log"), {"actor": "vic"}).content.decode()
    assert "Relay tested" in by_vic and "Custom field updated" not in by_vic
    fields_only = admin_client.get(reverse("audit-log"), {"type": "contacts.CustomField"}).content.decode()
    assert "Custom field updated" in fields_only and "role: marketer → admin" not in fields_only
    assert '<option value="contacts.CustomField"' in page and ">Custom field</option>" in page
