"""Issue #12, Tests: hostile values through every operator of every rule type of the segment compiler.

The fields and operators come from the compiler's own declarations (contacts.segments.BUILTINS,
OPS_BY_KIND and the custom field types), so a new field, type or operator is run here without
editing this file; what each operator must match is written out below (`TEXT_ORACLES` and the
others), so a new operator with no written expectation fails until someone writes one.

The contacts' fields hold the hostile values themselves, next to decoys that a value pasted into
the SQL, or a LIKE wildcard left unescaped, would match; every test compares the exact set of
contacts matched with the one computed here in Python from the stored rows.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest

from contacts import segments, selectors
from contacts.models import (
    Contact,
    CustomField,
    EngagementClick,
    EngagementLink,
    FieldType,
    MailingList,
    Subscription,
)
from contacts.segments import SegmentError

pytestmark = pytest.mark.django_db

HOSTILE = ["O'Brien", "\\", "%s", "--", ";", "%", "_", "'; DROP TABLE x; --"]
# What a pasted value or an unescaped wildcard would also match, or a case-folding mistake miss.
DECOYS = ["", "o'brien", "OBrien", "O''Brien", "a\\b", "\\\\", "%S", "100%", "a_b", "ab", "x--y",
          "semi;colon", "plain", "'; drop table x; -- and more", "DROP TABLE x"]  # fmt: skip
VALUES = HOSTILE + DECOYS

# Custom fields, one of each type the model declares (a new type fails below until it is added).
CUSTOM = {FieldType.TEXT: "nick", FieldType.NUMBER: "score", FieldType.DATE: "born", FieldType.BOOLEAN: "vip"}


# For a text field: stored value (None: the attribute is absent) x, rule value v -> matches?
TEXT_ORACLES = {
    "eq": lambda x, v: x is not None and x.lower() == v.lower(),
    "neq": lambda x, v: (x or "").lower() != v.lower(),
    "contains": lambda x, v: x is not None and v.lower() in x.lower(),
    "not_contains": lambda x, v: v.lower() not in (x or "").lower(),
    "starts_with": lambda x, v: x is not None and x.lower().startswith(v.lower()),
    "ends_with": lambda x, v: x is not None and x.lower().endswith(v.lower()),
    "is_empty": lambda x, v: (x or "") == "",
    "is_not_empty": lambda x, v: (x or "") != "",
}
# "Clicked a link containing": the contact's clicked URLs, rule value v -> matches?
LINK_ORACLES = {
    "contains": lambda urls, v: any(v.lower() in url.lower() for url in urls),
    "not_contains": lambda urls, v: not any(v.lower() in url.lower() for url in urls),
}
# Operators that read no value: what they match whatever value comes with them. Keyed by kind.
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _is_number(x):
    return isinstance(x, int | float) and not isinstance(x, bool)


VALUELESS_ORACLES = {
    ("number", "is_empty"): lambda x: not _is_number(x),
    ("number", "is_not_empty"): _is_number,
    ("date", "is_empty"): lambda x: not (isinstance(x, str) and _ISO_DATE.fullmatch(x)),
    ("date", "is_not_empty"): lambda x: isinstance(x, str) and bool(_ISO_DATE.fullmatch(x)),
    ("datetime", "is_empty"): lambda x: x is None,
    ("datetime", "is_not_empty"): lambda x: x is not None,
    ("boolean", "is_true"): lambda x: x is True,
    ("boolean", "is_false"): lambda x: x is False,
    ("boolean", "is_empty"): lambda x: not isinstance(x, bool),
}


def _rules(field, op, value):
    return {"groups": [{"conditions": [{"field": field, "op": op, "value": value}]}]}


@pytest.fixture
def people():
    """One contact per value: its names, its text custom field and its address hold hostile values
    and decoys; the typed custom fields hold real values, or a hostile string read as empty."""
    for kind, name in CUSTOM.items():
        CustomField.objects.create(name=name, label=name, type=kind)
    today = dt.date(2026, 12, 6)
    seen: set[str] = set()
    for i, value in enumerate(VALUES):
        local = value if value and value.lower() not in seen else f"c{i}{value}"
        seen.add(local.lower())
        attributes = {
            "score": [i, i + 0.5, value][i % 3],
            "born": [str(today - dt.timedelta(days=i)), value][i % 2],
        }
        if i % 4:
            attributes["nick"] = VALUES[(i + 5) % len(VALUES)]
        if i % 3:
            attributes["vip"] = bool(i % 2)
        Contact.objects.create(
            email=f"{local}@x.test",
            first_name=value,
            last_name=VALUES[(i + 3) % len(VALUES)],
            attributes=attributes,
            bounce_count=i % 3,
            last_opened_at=None if i % 2 else dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        )
    # Engagement (contacts.Engagement): most contacts clicked a link holding a hostile value or a decoy.
    from contacts.services import EngagementHit, engagement_record

    engagement_record(
        EngagementHit(
            c.pk, 1, "clicked", dt.datetime(2026, 1, 1, tzinfo=dt.UTC), url=f"https://x.test/{c.first_name}"
        )
        for c in Contact.objects.all()
        if c.pk % 5
    )
    news = MailingList.objects.create(name="News")
    for contact in Contact.objects.all()[:5]:
        Subscription.objects.create(contact=contact, mailing_list=news, status="confirmed")
    return news


def _stored(contact: Contact, field: str):
    if field.startswith("attr:"):
        return contact.attributes.get(field[5:])
    return getattr(contact, field)


def _matched(rules) -> set[int]:
    from django.db import connection

    sql, params = selectors.segment_contact_ids_sql_for_rules(rules)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        ids = {row[0] for row in cursor.fetchall()}
    assert selectors.segment_count(rules) == len(ids)
    return ids


def _cases():
    assert set(CUSTOM) == set(FieldType.values), "a new custom field type: add it to CUSTOM"
    fields = [(key, kind) for key, (_, kind, _) in segments.BUILTINS.items()]
    fields += [(f"attr:{name}", str(kind)) for kind, name in CUSTOM.items()]
    return [
        pytest.param(field, kind, op, id=f"{field}-{op}")
        for field, kind in fields
        for op in segments.OPS_BY_KIND[kind]
    ]


@pytest.mark.parametrize(("field", "kind", "op"), _cases())
def test_hostile_values_match_exactly_what_they_say(people, field, kind, op):
    contacts = list(Contact.objects.all())
    wrong = []
    for value in HOSTILE:
        rules = _rules(field, op, value)
        if kind == "text":
            assert op in TEXT_ORACLES, f"text operator {op!r} has no written expectation here"
            expected = {c.pk for c in contacts if TEXT_ORACLES[op](_stored(c, field), value)}
        elif kind == "link":
            by_id = dict(EngagementLink.objects.values_list("id", "url"))
            links: dict[int, list[str]] = {}
            for contact_id, link_id in EngagementClick.objects.values_list("contact_id", "link_id"):
                links.setdefault(contact_id, []).append(by_id[link_id])
            expected = {c.pk for c in contacts if LINK_ORACLES[op](links.get(c.pk) or [], value)}
        elif (kind, op) in VALUELESS_ORACLES:
            expected = {c.pk for c in contacts if VALUELESS_ORACLES[kind, op](_stored(c, field))}
        else:
            # A number, date, day count, status or list: no hostile string is one; refused before SQL.
            with pytest.raises(SegmentError) as refused:
                _matched(rules)
            assert refused.value.group == 0 and refused.value.condition == 0
            continue
        got = _matched(rules)
        if got != expected:
            names = {c.pk: c.email for c in contacts}
            wrong.append((value, sorted(names[i] for i in got ^ expected)))
    assert wrong == [], f"{field} {op}: contacts matched wrongly (value, differing contacts): {wrong}"


def test_every_text_operator_has_a_written_expectation():
    # A new valueless operator of another kind fails the main test: it expects a refusal there.
    assert set(segments.TEXT_OPS) == set(TEXT_ORACLES)


@pytest.mark.parametrize("value", HOSTILE)
def test_a_saved_segment_with_a_hostile_value_counts_and_lists_the_right_contacts(
    people, api_client_for, value
):
    client = api_client_for("admin", ["contacts:read", "contacts:write"])
    rules = {"match": "any", "groups": [
        {"conditions": [{"field": "first_name", "op": "contains", "value": value}]},
        {"conditions": [{"field": "email", "op": "starts_with", "value": value}]},
    ]}  # fmt: skip
    created = client.post("/api/v1/segments/", {"name": "hostile", "rules": rules}, format="json")
    assert created.status_code == 201, created.content
    segment_id = created.json()["id"]
    expected = {
        c.email
        for c in Contact.objects.all()
        if value.lower() in c.first_name.lower() or c.email.lower().startswith(value.lower())
    }
    assert client.get(f"/api/v1/segments/{segment_id}/count").json()["count"] == len(expected)
    members = client.get(f"/api/v1/segments/{segment_id}/members/?limit=100").json()
    listed = {row["email"] for row in members["results"]}
    assert listed == expected
    assert Contact.objects.count() == len(VALUES)  # and nothing was dropped
