"""The review page scores the campaign's message with SpamAssassin, rules in plain words."""

from __future__ import annotations

from django.urls import reverse

from tests.templates.test_spamcheck import spamassassin  # noqa: F401  (skips where absent)


def test_the_review_page_loads_the_spamassassin_card(marketer_client, campaign_factory, spamassassin):  # noqa: F811
    campaign = campaign_factory(2)
    review = marketer_client.get(reverse("campaigns:step", args=[campaign.pk, "review"])).content.decode()
    fragment_url = reverse("campaigns:spam-check", args=[campaign.pk])
    assert f'hx-get="{fragment_url}"' in review and 'hx-trigger="load"' in review
    card = marketer_client.get(fragment_url).content.decode()
    assert 'data-testid="spam-score"' in card
    assert "points" in card and "Local rules only" in card
    # the message is built as delivery sends it: text and HTML, so no "HTML only" penalty
    assert 'data-rule="MIME_HTML_ONLY"' not in card


def test_the_spam_card_is_for_people_who_manage_campaigns(developer_client, campaign_factory):
    campaign = campaign_factory(1)
    assert developer_client.get(reverse("campaigns:spam-check", args=[campaign.pk])).status_code == 403
