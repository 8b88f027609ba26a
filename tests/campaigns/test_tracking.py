"""Open and click tracking end to end: links rewritten in the sent mail, signed tokens, no open
redirect, Redis buffer flushed in batches, machine opens and clicks flagged and counted apart."""

from __future__ import annotations

import datetime as dt
import email
import re
from email import policy

import pytest
from django.test import Client
from django.utils import timezone

from campaigns import services
from delivery import selectors as delivery_selectors
from delivery import tracking
from delivery.engine import drain
from delivery.models import MessageEvent

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_tracking_buffer")]

HUMAN_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120 Safari/537.36"


def _html_of(raw: bytes) -> str:
    message = email.message_from_bytes(raw, policy=policy.default)
    return message.get_body(preferencelist=("html",)).get_content()


def _sent(campaign_factory, relay_server, **fields):
    campaign = campaign_factory(2, **fields)
    services.campaign_start(campaign.pk)
    campaign.refresh_from_db()
    drain(campaign.mailing_id, seconds=20)
    return campaign, [_html_of(m.content) for m in relay_server.received]


def _text_of(raw: bytes) -> str:
    message = email.message_from_bytes(raw, policy=policy.default)
    return message.get_body(preferencelist=("plain",)).get_content()


def _links(html: str) -> list[str]:
    return re.findall(r'href="([^"]+)"', html)


def test_sent_mail_has_signed_click_links_and_a_pixel(campaign_factory, relay_server, settings):
    campaign, bodies = _sent(campaign_factory, relay_server)
    assert len(bodies) == 2
    for html in bodies:
        links = _links(html)
        tracked = [link for link in links if link.startswith(f"{settings.SITE_URL}/t/c/")]
        assert len(tracked) == 2  # the two literal links; the unsubscribe link stays as it is
        assert any("/delivery/u/" in link for link in links)
        assert re.search(r'<img src="http://[^"]+/t/o/[^"]+\.gif" width="1"', html)
    # Each recipient has their own token.
    assert _links(bodies[0])[0] != _links(bodies[1])[0]
    # The plain-text part's copies of those links go through the same click URLs.
    text = _text_of(relay_server.received[0].content)
    html_links = _links(_html_of(relay_server.received[0].content))
    assert f"[See the spring sale]({html_links[0]})" in text and "shop.example.com" not in text


def test_click_redirects_only_to_the_mailing_url_and_records_after_flush(
    campaign_factory, relay_server, settings
):
    campaign, bodies = _sent(campaign_factory, relay_server)
    # Old enough that the click is not "too fast" for a human.
    from delivery.models import Message

    Message.objects.update(sent_at=timezone.now() - dt.timedelta(minutes=5))
    link = _links(bodies[0])[0].removeprefix(settings.SITE_URL)
    client = Client(HTTP_USER_AGENT=HUMAN_UA)
    response = client.get(link)
    assert response.status_code == 302
    # The campaign's UTM tags are added on the way (on by default for campaigns).
    assert (
        response["Location"]
        == "https://shop.example.com/spring?a=1&b=2&utm_source=newsletter&utm_medium=email&utm_campaign=spring-sale"
    )
    assert not MessageEvent.objects.filter(kind="clicked").exists()  # buffered, not yet written
    assert tracking.buffered_count() == 1
    assert tracking.tracking_flush() == 1
    event = MessageEvent.objects.get(kind="clicked")
    assert event.data["url"] == "https://shop.example.com/spring?a=1&b=2" and "machine" not in event.data
    figures = delivery_selectors.mailing_figures([campaign.mailing_id])
    assert figures["human_clicks"] == 1 and figures["unique_clicks"] == 1
    assert (
        delivery_selectors.link_clicks([campaign.mailing_id])[0]["url"]
        == "https://shop.example.com/spring?a=1&b=2"
    )
    # The contact's engagement row for the mailing: received, opened (a click is an open), clicked.
    from contacts.models import Engagement

    row = Engagement.objects.get(mailing_id=campaign.mailing_id, contact_id=event.message.contact_id)
    assert row.sent_at and row.opened_at and row.clicked_at
    from contacts.models import EngagementClick, EngagementLink

    click = EngagementClick.objects.get(contact_id=row.contact_id)
    assert not click.machine
    assert EngagementLink.objects.get(id=click.link_id).url == "https://shop.example.com/spring?a=1&b=2"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda path: path[:-3] + ("A" if path[-3] != "A" else "B") + path[-2:],  # tampered signature
        lambda path: re.sub(r"/c/([0-9a-z]+)\.", lambda m: f"/c/{m.group(1)}0.", path),  # other mailing
        lambda path: path[: path.rindex("/")] + "/9",  # a link index the mailing does not have
        lambda path: path + "?next=https://evil.example.net/",
    ],
)
def test_tampered_tokens_record_nothing_and_redirect_nowhere(
    campaign_factory, relay_server, settings, mangle
):
    _, bodies = _sent(campaign_factory, relay_server)
    path = mangle(_links(bodies[0])[0].removeprefix(settings.SITE_URL))
    response = Client().get(path)
    if "?next=" in path:  # a query string changes nothing: still the mailing's own URL
        assert (
            response["Location"]
            == "https://shop.example.com/spring?a=1&b=2&utm_source=newsletter&utm_medium=email&utm_campaign=spring-sale"
        )
        return
    assert response.status_code == 404 and "Location" not in response
    assert tracking.buffered_count() == 0


def test_open_pixel_always_answers_an_image_and_flags_machines(campaign_factory, relay_server, settings):
    from delivery.models import Message

    campaign, bodies = _sent(campaign_factory, relay_server)
    Message.objects.update(sent_at=timezone.now() - dt.timedelta(minutes=5))
    pixels = [
        re.search(r'<img src="([^"]+\.gif)"', html).group(1).removeprefix(settings.SITE_URL)
        for html in bodies
    ]
    assert Client(HTTP_USER_AGENT=HUMAN_UA).get(pixels[0]).status_code == 200
    Client(
        HTTP_USER_AGENT="Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
    ).get(pixels[1])
    forged = Client().get("/t/o/1.1.AAAAAAAAAAA.gif")
    assert forged.status_code == 200 and forged["Content-Type"] == "image/gif"
    assert tracking.tracking_flush() == 2
    figures = delivery_selectors.mailing_figures([campaign.mailing_id])
    assert figures["unique_opens"] == 2 and figures["human_opens"] == 1 and figures["machine_opens"] == 1
    flagged = MessageEvent.objects.get(kind="opened", data__machine="gmail-proxy")
    assert flagged.data["ua"].endswith("GoogleImageProxy)")


def test_scanner_clicks_are_kept_but_counted_apart(campaign_factory, relay_server, settings):
    campaign, bodies = _sent(campaign_factory, relay_server)
    link = _links(bodies[0])[1].removeprefix(settings.SITE_URL)
    Client(HTTP_USER_AGENT=HUMAN_UA).head(link)  # HEAD: a scanner checking the link
    Client(HTTP_USER_AGENT=HUMAN_UA).get(link)  # seconds after delivery: too fast for a person
    Client(HTTP_USER_AGENT="Mimecast URL Protect").get(link)
    assert tracking.tracking_flush() == 3
    reasons = sorted(MessageEvent.objects.filter(kind="clicked").values_list("data__machine", flat=True))
    assert reasons == ["head-request", "scanner:mimecast", "too-fast"]
    figures = delivery_selectors.mailing_figures([campaign.mailing_id])
    assert figures["unique_clicks"] == 1 and figures["human_clicks"] == 0 and figures["machine_clicks"] == 3
    # Engagement keeps them apart too: a machine click, no human one.
    from contacts.models import Engagement

    row = Engagement.objects.get(mailing_id=campaign.mailing_id, machine_clicked_at__isnull=False)
    assert row.clicked_at is None and row.opened_at is None
    from contacts.models import EngagementClick

    assert set(
        EngagementClick.objects.filter(contact_id=row.contact_id).values_list("machine", flat=True)
    ) == {True}


def test_tracking_switched_off_leaves_the_mail_alone(campaign_factory, relay_server):
    _, bodies = _sent(campaign_factory, relay_server, track_opens=False, track_clicks=False)
    assert "https://shop.example.com/spring?a=1&amp;b=2" in bodies[0]
    assert "/t/" not in bodies[0]


def test_templates_with_logic_are_tracked_too(make_audience, relay_server, settings):
    from templates.services import template_create

    logic = template_create(
        name="Logic",
        subject="Hello",
        html="<html><body>{% if contact.first_name %}<p>Hi {{ contact.first_name }}</p>{% endif %}"
        '<a href="https://shop.example.com/x">Shop</a> <a href="{{ unsubscribe_url }}">Unsubscribe</a></body></html>',
    )
    campaign = services.campaign_create(
        name="Logic", template=logic, lists=[make_audience(1)], utm_enabled=False
    )
    services.campaign_start(campaign.pk)
    campaign.refresh_from_db()
    drain(campaign.mailing_id, seconds=20)
    html = _html_of(relay_server.received[0].content)
    link = next(link for link in _links(html) if "/t/c/" in link)
    assert Client().get(link.removeprefix(settings.SITE_URL))["Location"] == "https://shop.example.com/x"
    assert "/t/o/" in html
    text = _text_of(relay_server.received[0].content)
    assert f"[Shop]({link})" in text


def test_an_expired_link_records_nothing_and_redirects_nowhere(campaign_factory, relay_server, settings):
    from delivery.models import Mailing

    campaign, bodies = _sent(campaign_factory, relay_server)
    settings.DELIVERY_RETENTION_DAYS = 30
    Mailing.objects.filter(pk=campaign.mailing_id).update(created_at=timezone.now() - dt.timedelta(days=31))
    tracking._link_cache.clear()
    response = Client().get(_links(bodies[0])[0].removeprefix(settings.SITE_URL))
    assert response.status_code == 404 and "Location" not in response
    assert "not valid or has expired" in response.content.decode()
    assert tracking.buffered_count() == 0


def test_utm_tags_per_campaign_editable_and_none_for_transactional(
    campaign_factory, relay_server, settings, marketer_client
):
    """Issue #14: tracked links get UTM tags per campaign (editable in the settings step; a
    link's own utm_ values win); transactional mail gets none."""
    from django.urls import reverse

    from delivery import tracking as delivery_tracking

    campaign = campaign_factory(1)
    page = marketer_client.get(reverse("campaigns:step", args=[campaign.pk, "settings"])).content.decode()
    assert 'name="utm_enabled"' in page and 'name="utm_source"' in page
    response = marketer_client.post(
        reverse("campaigns:step", args=[campaign.pk, "settings"]),
        {
            "from_email": "news@example.com", "track_opens": "on", "track_clicks": "on", "utm_enabled": "on",
            "utm_source": "posthorn", "utm_medium": "email", "utm_campaign": "spring-2026",
        },
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:3000]
    services.campaign_start(campaign.pk)
    campaign.refresh_from_db()
    drain(campaign.mailing_id, seconds=20)
    link = _links(_html_of(relay_server.received[0].content))[0].removeprefix(settings.SITE_URL)
    assert Client(HTTP_USER_AGENT=HUMAN_UA).get(link)["Location"] == (
        "https://shop.example.com/spring?a=1&b=2&utm_source=posthorn&utm_medium=email&utm_campaign=spring-2026"
    )
    assert delivery_tracking.with_utm(
        "https://x.example/?utm_source=own", {"utm_source": "n", "utm_medium": "e"}
    ) == ("https://x.example/?utm_source=own&utm_medium=e")
    assert delivery_tracking.with_utm("mailto:a@example.com", {"utm_source": "n"}) == "mailto:a@example.com"

    from delivery.transactional import _standing_mailing_for_template

    standing = _standing_mailing_for_template(campaign.template_id, campaign.template.current_version_id)
    assert (
        delivery_tracking.click_target(standing.pk, "https://shop.example.com/x")
        == "https://shop.example.com/x"
    )
