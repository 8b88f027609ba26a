"""Issue #12, Tests: every state-changing admin view (users, roles, API key limits, relays, identities,
warm-up, DNS checks, bounce policy, mailboxes, API keys, webhooks) refuses a POST from each lesser role
and from an anonymous visitor, and nothing in the database changes: every table's rows are compared
before and after. Each POST is then made by an admin, and must change something, so a body that the
view would refuse anyway cannot make a test pass.

Which roles are lesser comes from the hand-written truth (tests/permission_truth.py).
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tests.dbstate import changed_tables, db_fingerprint
from tests.permission_truth import CAPABILITY_ROLES, DASHBOARD

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(admin_user, make_user):
    """What an admin has set up: another user, a relay, an identity, a warm-up schedule, a bounce
    mailbox, the admin's API key and a webhook."""
    from delivery.bounces.mailboxes import mailbox_set_password
    from delivery.bounces.models import BounceMailbox
    from delivery.identities import identity_save
    from delivery.relays import relay_save
    from delivery.warmup import warmup_save
    from mailplatform.models import WebhookEndpoint
    from mailplatform.services import api_key_create

    relay = relay_save(by=admin_user, password="relay-pw", name="Main", host="smtp.example.com", port=587)
    identity = identity_save(address="example.com", by=admin_user)
    schedule = warmup_save(domain="news.example.com", caps="50, 100", by=admin_user)
    mailbox = BounceMailbox(name="Bounces", host="imap.example.com", port=993, username="u")
    mailbox_set_password(mailbox, "mailbox-pw")
    mailbox.save()
    key, _ = api_key_create(user=admin_user, name="admin's key", scopes=["contacts:read"])
    hook = WebhookEndpoint.objects.create(url="https://hooks.example.com/in", event_types=["bounced"])
    return {
        "user": make_user("marketer", "target"),
        "relay": relay,
        "identity": identity,
        "schedule": schedule,
        "mailbox": mailbox,
        "key": key,
        "hook": hook,
    }


RELAY_FORM = {"name": "Evil", "host": "attacker.example.net", "port": 25, "security": "none", "username": "",
              "max_connections": 3, "per_second": 10, "burst": 0, "per_hour": 0, "per_day": 0, "weight": 100,
              "enabled": "on"}  # fmt: skip
MAILBOX_FORM = {"name": "Evil", "protocol": "imap", "host": "attacker.example.net", "port": 993, "security": "tls",
                "username": "u", "folder": "INBOX", "max_per_poll": 100}  # fmt: skip

# route name, the objects in its URL, the body; the body is one that an admin's POST acts on.
POSTS = [
    ("users", [], {"username": "intruder", "email": "i@example.com", "role": "admin"}),
    ("user-update", ["user"], {"role": "admin"}),
    ("user-update", ["user"], {"active": "0"}),
    ("api-key-limits", [], {"role": "developer", "developer-scopes": ["contacts:write", "send"]}),
    ("api-keys", [], {"name": "stolen", "scopes": ["contacts:read"]}),
    ("api-key-revoke", ["key"], {}),
    ("webhooks", [], {"url": "https://attacker.example.net/hook", "event_types": ["bounced"]}),
    ("webhook-detail", ["hook"], {"action": "toggle"}),
    ("webhook-detail", ["hook"], {"action": "delete"}),
    ("delivery:relay-create", [], RELAY_FORM),
    ("delivery:relay-edit", ["relay"], RELAY_FORM),
    ("delivery:relay-delete", ["relay"], {}),
    ("delivery:identities", [], {"address": "attacker.example.net"}),
    ("delivery:identity-dkim", ["identity"], {"dkim_selector": "evil"}),
    ("delivery:identity-delete", ["identity"], {}),
    ("delivery:warmup", [], {"domain": "other.example.com", "caps": "1, 2", "enabled": "on"}),
    ("delivery:warmup-edit", ["schedule"], {"domain": "news.example.com", "caps": "1", "enabled": "on"}),
    ("delivery:warmup-delete", ["schedule"], {}),
    (
        "bounces:policy",
        [],
        {
            "soft_bounce_threshold": 1,
            "soft_bounce_window_days": 1,
            "block_alert_threshold": 1,
            "keep_raw_days": 1,
        },
    ),  # fmt: skip
    ("bounces:mailbox-new", [], {**MAILBOX_FORM, "password": "attacker-pw"}),
    ("bounces:mailbox-edit", ["mailbox"], MAILBOX_FORM),
]
# Admin-only actions whose admin POST talks to the network (SMTP, IMAP, DNS) and so is not run
# here as the control; the refusal is checked all the same.
NETWORK_ONLY = [
    ("delivery:relay-test", ["relay"], {}),
    ("bounces:mailbox-poll", ["mailbox"], {}),
    ("dnsauth:check-now", [], {}),
]


def _ids(case):
    name, objects, body = case
    return (
        f"{name}-{'-'.join(f'{k}={v}' for k, v in body.items() if k in ('action', 'role', 'active'))}".strip(
            "-"
        )
    )


def _lesser(name: str) -> list[str]:
    capability = DASHBOARD[name]
    return [
        "anonymous",
        *(role for role in ("marketer", "developer") if role not in CAPABILITY_ROLES[capability]),
    ]


def _post(client, name, objects, body, world):
    url = reverse(name, args=[world[obj].pk for obj in objects])
    return client.post(url, body)


@pytest.mark.parametrize("case", POSTS + NETWORK_ONLY, ids=[_ids(c) for c in POSTS + NETWORK_ONLY])
def test_lesser_roles_are_refused_and_nothing_changes(case, world, make_user, admin_client):
    name, objects, body = case
    lesser = _lesser(name)
    assert lesser != ["anonymous"] or name in ("api-keys", "api-key-revoke", "webhooks", "webhook-detail"), (
        f"{name}: no lesser dashboard role"
    )
    for role in lesser:
        client = Client()
        if role != "anonymous":
            client.force_login(make_user(role, f"{role}-{name}-{len(body)}"))
        before = db_fingerprint()
        response = _post(client, name, objects, body, world)
        if role == "anonymous":
            assert response.status_code == 302 and response.url.startswith(reverse("login")), (role, name)
        else:
            assert response.status_code == 403, (role, name, response.status_code)
        assert changed_tables(before) == [], f"{role}'s refused POST to {name} changed the database"
    if case in NETWORK_ONLY:
        return
    # The control: the same POST by an admin acts, so the body is one the view would carry out.
    before = db_fingerprint()
    response = _post(admin_client, name, objects, body, world)
    assert response.status_code in (200, 302), (name, response.status_code)
    assert changed_tables(before), f"an admin's POST to {name} changed nothing: the test body is wrong"


# --- the roles that hold the capability still may not act on what is not theirs ---


def test_a_developer_cannot_revoke_an_admins_key(world, developer_client):
    before = db_fingerprint()
    response = developer_client.post(reverse("api-key-revoke", args=[world["key"].pk]))
    assert response.status_code == 404
    assert changed_tables(before) == []


def test_a_developer_cannot_mint_a_key_above_the_ceiling_nor_raise_it(world, developer_client):
    before = db_fingerprint()
    assert (
        developer_client.post(reverse("api-keys"), {"name": "x", "scopes": ["contacts:write"]}).status_code
        == 200
    )
    assert (
        developer_client.post(
            reverse("api-key-limits"), {"role": "developer", "developer-scopes": ["contacts:write"]}
        ).status_code
        == 403
    )
    assert changed_tables(before) == []
