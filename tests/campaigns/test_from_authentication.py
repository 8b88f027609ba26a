"""A campaign warns when DNS fails for its From domain, and refuses to start when told to."""

from __future__ import annotations

import pytest
from django.urls import reverse

from mailplatform.errors import PlatformError as ValidationError
from tests.dnsauth.conftest import dns_zone  # noqa: F401  (the loopback DNS server fixture)


@pytest.fixture
def checked_identity(db, dns_zone):  # noqa: F811
    from delivery import identities as services
    from delivery.dnsauth.services import dns_check_identity

    identity = services.identity_generate_dkim(services.identity_save(address="shop.test"), selector="ph1")
    dns_check_identity(identity)  # nothing published yet: it fails
    return identity


def test_the_review_page_warns_when_the_from_domain_fails(
    marketer_client, campaign_factory, checked_identity
):
    campaign = campaign_factory(2, from_email="news@shop.test")
    page = marketer_client.get(reverse("campaigns:step", args=[campaign.pk, "review"])).content.decode()
    assert 'id="from-dns"' in page
    assert "shop.test fails its DNS checks" in page
    assert "DKIM key in DNS matches the stored key for shop.test" in page
    # a warning, not a refusal, unless the setting says so
    from campaigns.selectors import campaign_problems

    assert not any("fails its DNS checks" in p for p in campaign_problems(campaign))


def test_a_failing_from_is_refused_when_so_configured_and_sent_once_fixed(
    settings,
    campaign_factory,
    checked_identity,
    dns_zone,  # noqa: F811
):
    from campaigns.selectors import campaign_problems
    from campaigns.services import campaign_start
    from delivery.dnsauth.services import dns_check_identity

    settings.CAMPAIGNS_REFUSE_UNAUTHENTICATED_FROM = True
    campaign = campaign_factory(2, from_email="news@shop.test")
    assert any("shop.test fails its DNS checks" in p for p in campaign_problems(campaign))
    with pytest.raises(ValidationError, match="fails its DNS checks"):
        campaign_start(campaign.pk)
    for item in dns_check_identity(checked_identity).items:
        if item["status"] != "pass" and item["record_value"]:
            dns_zone.replace(item["record_name"], item["record_type"], item["record_value"])
    assert dns_check_identity(checked_identity).status == "pass"
    assert campaign_problems(campaign) == []
