"""The web version: every message's "view in browser" link, in real mail sent through a loopback
relay, opens that recipient's message (the snapshot with their data), noindex, untracked; and the
template check that fails a link to an empty or unfilled address."""

from __future__ import annotations

import email
import re
from email import policy

import pytest
from django.test import Client

from campaigns import selectors, services
from delivery import tracking
from delivery.engine import drain
from delivery.models import MessageEvent
from templates.compiler import compile_template
from templates.services import template_create, template_update
from templates.starters import STARTERS

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_tracking_buffer")]

HTML = """<html><head><title>Spring</title></head><body>
<p><a href="{{ view_in_browser_url }}">View in browser</a></p>
<p>Hi {{ contact.first_name }}, spring is here.</p>
<p><a href="https://shop.example.com/spring">See the spring sale</a></p>
<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
</body></html>"""


def _html(raw: bytes) -> str:
    return (
        email.message_from_bytes(raw, policy=policy.default).get_body(preferencelist=("html",)).get_content()
    )


def _view_link(html: str) -> str:
    return re.search(r'<a href="([^"]+)">View in browser</a>', html).group(1)


@pytest.fixture
def sent(campaign_factory, relay_server):
    template = template_create(name="Web", subject="Spring", html=HTML)
    campaign = campaign_factory(2)
    services.campaign_update(campaign.pk, template=template)
    services.campaign_start(campaign.pk)
    campaign.refresh_from_db()
    for mailing_id in selectors.campaign_mailing_ids(campaign):
        drain(mailing_id, seconds=20)
    mails = {item.rcpt_tos[0]: _html(item.content) for item in relay_server.received}
    assert len(mails) == 2
    return campaign, template, mails


def test_each_message_links_to_its_own_web_version(sent, settings):
    campaign, template, mails = sent
    html = mails["person0@example.org"]
    link = _view_link(html)
    assert link.startswith(f"{settings.SITE_URL}/delivery/v/") and link != _view_link(
        mails["person1@example.org"]
    )
    # Edited after the send: the web version still shows what was sent (the snapshot).
    template_update(template.pk, html=HTML.replace("spring is here", "summer is here"))
    response = Client().get(link.removeprefix(settings.SITE_URL))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Hi P0, spring is here." in page and "P1" not in page
    assert '<meta name="robots" content="noindex, nofollow">' in page
    assert response["X-Robots-Tag"] == "noindex, nofollow"
    assert (
        "sandbox" in response["Content-Security-Policy"]
        and "script-src" not in response["Content-Security-Policy"]
    )
    # Not tracked again: no pixel, links as written, nothing buffered or recorded.
    assert "/t/o/" not in page and "/t/c/" not in page
    assert 'href="https://shop.example.com/spring"' in page
    assert "/t/c/" in html  # (the mail itself was tracked)
    unsubscribe = re.search(r'<a href="([^"]+)">Unsubscribe</a>', html).group(1)
    assert f'href="{unsubscribe}"' in page  # the recipient's own unsubscribe link
    assert tracking.buffered_count() == 0 and not MessageEvent.objects.filter(kind="opened").exists()


@pytest.mark.parametrize(
    "mangle",
    [
        lambda path: path.replace("/v/", "/v/1"),  # another id, a signature that is not its own
        lambda path: path[:-3] + ("a" if path[-3] != "a" else "b") + path[-2:],  # tampered signature
    ],
)
def test_a_forged_link_shows_nothing(sent, settings, mangle):
    _, _, mails = sent
    path = mangle(_view_link(mails["person0@example.org"]).removeprefix(settings.SITE_URL))
    response = Client().get(path)
    assert response.status_code == 404 and "spring" not in response.content.decode()
    assert (
        Client().post(_view_link(mails["person0@example.org"]).removeprefix(settings.SITE_URL)).status_code
        == 405
    )


def _checks(html: str, *, custom_fields=None, transactional=False):
    from templates.checks import compiled_checks

    compiled = compile_template(subject="s", html=html)
    return {
        c.code: c for c in compiled_checks(compiled, custom_fields=custom_fields, transactional=transactional)
    }


UNSUB = '<a href="{{ unsubscribe_url }}">Unsubscribe</a>'


@pytest.mark.parametrize(
    "link",
    [
        '<a href="">View in browser</a>',
        '<a href="  ">Shop</a>',
        "<a href>Shop</a>",
        '<a href="{{ contact.homepage }}">Your page</a>',  # a field nothing fills
        '<a href="{{ web_url }}">View in browser</a>',  # a name that is not one of ours
    ],
)
def test_a_link_to_an_empty_or_unfilled_address_fails_the_checks(link):
    checks = _checks(f"<p>{link}</p>{UNSUB}")
    assert checks["empty_link"].severity == "error"
    if "web_url" not in link:  # (a transactional send may pass web_url as data: not flagged there)
        assert _checks(f"<p>{link}</p>", transactional=True)["empty_link"].severity == "warning"


@pytest.mark.parametrize(
    "link",
    [
        '<a href="{{ view_in_browser_url }}">View in browser</a>',
        '<a href="{{ preferences_url }}">Preferences</a>',
        '<a href="https://example.com/">Shop</a>',
        '<a href="{{ contact.homepage }}">Your page</a>',  # declared below: every contact may hold one
    ],
)
def test_filled_links_pass(link):
    assert "empty_link" not in _checks(f"<p>{link}</p>{UNSUB}", custom_fields=["homepage"])


@pytest.mark.parametrize("key", sorted(STARTERS))
def test_no_starter_links_to_an_empty_address(key):
    from templates.selectors import template_checks

    starter = STARTERS[key]
    template = template_create(
        name=starter.name,
        subject=starter.subject,
        html=starter.html,
        source_format=starter.source_format,
        transactional=starter.transactional,
    )
    assert "empty_link" not in {
        c.code for c in template_checks(template, transactional=starter.transactional)
    }
    if not starter.transactional:  # the marketing starters carry a working "View in browser" link
        from templates.services import template_compile

        assert "view_in_browser_url" in template_compile(template.pk).fields
