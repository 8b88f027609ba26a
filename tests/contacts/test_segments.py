"""Segment rules compile to SQL that matches what they say, and refuse anything else."""

import datetime as dt

import pytest
from django.utils import timezone

from contacts import segments, selectors
from contacts.models import Contact, CustomField, MailingList, Subscription
from contacts.segments import SegmentError, compile_rules

pytestmark = pytest.mark.django_db


def one(field, op, value=""):
    return {"groups": [{"conditions": [{"field": field, "op": op, "value": value}]}]}


def emails(rules):
    sql, params = selectors.segment_contact_ids_sql_for_rules(rules)
    return set(Contact.objects.filter(id__in=_ids(sql, params)).values_list("email", flat=True))


def _ids(sql, params):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


@pytest.fixture
def people():
    CustomField.objects.create(name="score", label="Score", type="number")
    CustomField.objects.create(name="born", label="Born", type="date")
    CustomField.objects.create(name="vip", label="VIP", type="boolean")
    CustomField.objects.create(name="city", label="City", type="text")
    now = timezone.now()
    Contact.objects.create(
        email="ann@example.com",
        first_name="Ann",
        attributes={"score": 80, "born": "1990-05-01", "vip": True, "city": "Oslo"},
        last_opened_at=now - dt.timedelta(days=3),
    )
    Contact.objects.create(
        email="bob@example.org",
        first_name="Bob",
        attributes={"score": 20.5, "born": "2001-01-01", "vip": False},
        last_opened_at=now - dt.timedelta(days=60),
        status="unsubscribed",
    )
    Contact.objects.create(
        email="cy@example.com", attributes={"score": "n/a", "born": "someday", "city": "50%_off"}
    )
    news = MailingList.objects.create(name="News")
    Subscription.objects.create(
        contact=Contact.objects.get(email="bob@example.org"), mailing_list=news, status="confirmed"
    )
    return news


def test_operators_by_kind(people):
    assert emails(one("attr:score", "gt", "50")) == {"ann@example.com"}
    assert emails(one("attr:score", "lte", "20.5")) == {"bob@example.org"}
    assert emails(one("attr:score", "is_empty")) == {"cy@example.com"}  # a string is not a number
    assert emails(one("attr:born", "before", "2000-01-01")) == {"ann@example.com"}
    assert emails(one("attr:vip", "is_true")) == {"ann@example.com"}
    assert emails(one("attr:vip", "is_false")) == {"bob@example.org"}
    assert emails(one("attr:city", "contains", "%_")) == {"cy@example.com"}  # wildcards are literal
    assert emails(one("email", "ends_with", "@EXAMPLE.COM")) == {"ann@example.com", "cy@example.com"}
    assert emails(one("first_name", "is_empty")) == {"cy@example.com"}
    assert emails(one("status", "neq", "active")) == {"bob@example.org"}
    assert emails(one("last_opened_at", "in_last_days", "30")) == {"ann@example.com"}
    assert emails(one("last_opened_at", "not_in_last_days", "30")) == {"bob@example.org", "cy@example.com"}
    assert emails(one("list", "in", people.pk)) == {"bob@example.org"}
    assert emails(one("list", "not_in", people.pk)) == {"ann@example.com", "cy@example.com"}


def test_and_or_groups(people):
    rules = {
        "match": "any",
        "groups": [
            {
                "match": "all",
                "conditions": [
                    {"field": "attr:score", "op": "gt", "value": "50"},
                    {"field": "attr:vip", "op": "is_true"},
                ],
            },
            {
                "match": "any",
                "conditions": [
                    {"field": "email", "op": "starts_with", "value": "cy"},
                    {"field": "email", "op": "eq", "value": "nobody@x.org"},
                ],
            },
        ],
    }
    assert emails(rules) == {"ann@example.com", "cy@example.com"}
    rules["match"] = "all"
    assert emails(rules) == set()
    assert selectors.segment_count(rules) == 0
    assert selectors.segment_count({}) == 3


@pytest.mark.parametrize(
    "rules,message",
    [
        (one("attr:nope", "eq", "1"), "no custom field 'nope'"),
        (one("password", "eq", "1"), "unknown field 'password'"),
        (one("email", "gt", "1"), "operator 'gt' does not apply"),
        (one("attr:score", "gt", "1; DROP TABLE contacts_contact"), "is not a number"),
        (one("attr:score", "gt", "NaN"), "not a finite number"),
        (one("attr:score", "gt", "1" + "0" * 140_000), "more than 100 digits"),
        (one("attr:score", "gt", "0." + "1" * 500), "more than 100 digits"),
        (one("attr:born", "before", "yesterday"), "is not a date"),
        (one("last_opened_at", "in_last_days", "-1"), "between 0 and 36500"),
        (one("status", "eq", "deleted"), "is not a contact status"),
        (one("list", "in", "all"), "choose a list"),
        (
            {"match": "xor", "groups": [{"conditions": [{"field": "email", "op": "is_empty"}]}]},
            "match must be",
        ),
        ({"groups": "nope"}, "groups must be a list"),
        ({"groups": [{"conditions": [{"field": "email", "op": "is_empty"}] * 51}]}, "at most 50"),
    ],
)
def test_refused_rules_name_the_problem(people, rules, message):
    with pytest.raises(SegmentError, match=message):
        compile_rules(rules)


def test_field_names_never_reach_sql_unchecked(people):
    CustomField.objects.create(name="x'y", label="evil", type="text")  # a name no form would allow
    with pytest.raises(SegmentError):
        compile_rules(one("attr:x'y", "eq", "1"))


# --- Evaluation order: conditions run cheapest first; which contacts match must not change. ---

POOL = [
    ("attr:score", "gt", "50"),
    ("attr:score", "neq", "50"),  # JSON null is "≠ 50"; a missing key or a string is not
    ("attr:score", "lte", "50"),
    ("attr:score", "is_empty", ""),
    ("attr:vip", "is_true", ""),
    ("attr:vip", "is_false", ""),
    ("attr:city", "neq", "oslo"),
    ("attr:city", "not_contains", "o"),
    ("attr:born", "after", "1995-01-01"),
    ("first_name", "starts_with", "a"),
    ("first_name", "starts_with", "ä"),  # only the database's lower() knows Ä
    ("first_name", "contains", "Ë"),
    ("first_name", "not_contains", "n"),
    ("first_name", "neq", "ann"),
    ("first_name", "is_empty", ""),
    ("last_name", "ends_with", "SEN"),
    ("email", "starts_with", "a"),
    ("email", "ends_with", ".org"),
    ("status", "neq", "active"),
    ("bounce_count", "gt", "0"),
    ("last_opened_at", "not_in_last_days", "30"),
    ("list", "in", None),
    ("list", "not_in", None),
]


@pytest.fixture
def crowd(people):
    """Awkward values next to `people`: JSON nulls, missing keys, wrong types, non-ASCII names."""
    Contact.objects.create(
        email="ada@example.org", first_name="ÄDA", last_name="Jensen", attributes={"score": None}
    )
    Contact.objects.create(
        email="al@example.com", first_name="al", attributes={"score": 50, "vip": None, "city": None}
    )
    Contact.objects.create(
        email="zoe@example.com", first_name="Zoë", last_name="Eriksen", attributes={"score": [60]}
    )
    Contact.objects.create(
        email="ari@example.net", first_name="Ari", bounce_count=2, attributes={"score": 51.5, "city": "Lyon"}
    )
    Contact.objects.create(email="nn@example.com", first_name="Nina", status="bounced", attributes=[1, 2])
    for email, status in [
        ("ada@example.org", "confirmed"),
        ("al@example.com", "unconfirmed"),
        ("ari@example.net", "confirmed"),
    ]:
        Subscription.objects.create(
            contact=Contact.objects.get(email=email), mailing_list=people, status=status
        )
    return people


def _rule(field, op, value, list_id):
    return {"field": field, "op": op, "value": list_id if field == "list" else value}


def test_reordering_never_changes_which_contacts_match(crowd):
    import random

    conditions = [_rule(*cond, crowd.pk) for cond in POOL]
    alone = [emails({"groups": [{"conditions": [cond]}]}) for cond in conditions]
    everyone = emails({})
    assert len(set(map(frozenset, alone))) > 15  # the pool tells contacts apart
    rng = random.Random(3)
    for _ in range(150):
        groups, expected_groups = [], []
        for _ in range(rng.randint(1, 3)):
            picked = rng.sample(range(len(conditions)), rng.randint(1, 5))
            match = rng.choice(["all", "any"])
            sets = [alone[i] for i in picked]
            expected_groups.append(set.intersection(*sets) if match == "all" else set.union(*sets))
            groups.append({"match": match, "conditions": [conditions[i] for i in picked]})
        match = rng.choice(["all", "any"])
        rules = {"match": match, "groups": groups}
        expected = set.intersection(*expected_groups) if match == "all" else set.union(*expected_groups)
        assert emails(rules) == expected, rules
        assert selectors.segment_count(rules) == len(expected), rules
        # As an excluded segment: audience_sql negates it after mapping NULL to false.
        condition, params = compile_rules(rules)
        excluded = _ids(f"SELECT c.id FROM contacts_contact c WHERE NOT coalesce({condition}, FALSE)", params)
        assert (
            set(Contact.objects.filter(id__in=excluded).values_list("email", flat=True))
            == everyone - expected
        )


@pytest.mark.parametrize("shortcut", [True, False])
def test_names_compare_through_the_databases_lower(crowd, monkeypatch, shortcut):
    if not shortcut:  # as in a database whose locale lowers ASCII its own way (Turkish: I -> ı)
        monkeypatch.setattr(segments, "_ASCII_LOWER", "not what lower() gives")
    assert emails(one("first_name", "starts_with", "ä")) == {"ada@example.org"}
    assert emails(one("first_name", "eq", "äda")) == {"ada@example.org"}
    assert emails(one("first_name", "contains", "Ë")) == {"zoe@example.com"}
    assert emails(one("first_name", "starts_with", "A")) == {
        "ann@example.com",
        "al@example.com",
        "ari@example.net",
    }
    assert emails(one("first_name", "starts_with", "aR")) == {"ari@example.net"}
    # Both sides of the letter in byte order: "al" after "a", the capitals before it, "z"'s last.
    assert emails(one("first_name", "starts_with", "z")) == {"zoe@example.com"}
    assert emails(one("first_name", "starts_with", "N")) == {"nn@example.com"}
    assert emails(one("first_name", "starts_with", "al")) == {"al@example.com"}
    assert emails(one("first_name", "starts_with", "äd")) == {"ada@example.org"}
    assert emails(one("first_name", "starts_with", "_")) == set()  # a literal underscore
    assert emails(one("first_name", "starts_with", "")) == set(
        Contact.objects.values_list("email", flat=True)
    )
    assert emails(one("last_name", "starts_with", "e")) == {"zoe@example.com"}
    assert "ada@example.org" not in emails(one("first_name", "neq", "ÄdA"))
    assert "zoe@example.com" not in emails(one("first_name", "not_contains", "ë"))
    assert emails(one("last_name", "ends_with", "SEN")) == {"ada@example.org", "zoe@example.com"}
    assert emails(one("email", "ends_with", ".ORG")) == {"bob@example.org", "ada@example.org"}
    assert emails(one("email", "contains", "I@")) == {"ari@example.net"}


def test_a_name_is_tested_before_the_attributes_it_would_save_reading(crowd):
    from django.db import connection

    rules = {
        "groups": [
            {
                "conditions": [
                    {"field": "attr:score", "op": "gt", "value": "50"},
                    {"field": "list", "op": "in", "value": crowd.pk},
                    {"field": "first_name", "op": "starts_with", "value": "a"},
                ]
            }
        ]
    }
    condition, params = compile_rules(rules)
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN SELECT count(*) FROM contacts_contact c WHERE {condition}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    # The planner puts the jsonpath test first when they are separate quals (it prices it lower).
    scan_filter = next(line for line in plan.splitlines() if "Filter:" in line and "@?" in line)
    assert scan_filter.index("lower(") < scan_filter.index("@?"), plan
    assert selectors.segment_count(rules) == 1  # ari: ada has no score > 50, al is unconfirmed
