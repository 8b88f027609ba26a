"""Public subscribe, confirm and preference pages: signed links, no enumeration, bots, CSRF."""

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from contacts import services, tokens
from contacts.models import Contact, ContactStatus, MailingList, Subscription, SubscriptionStatus
from contacts.signals import confirmation_requested

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def weekly():
    return MailingList.objects.create(
        name="Weekly", opt_in="double", is_public=True, description="Once a week"
    )


@pytest.fixture
def requested():
    calls = []

    def receiver(sender, subscription_id, confirm_url, **kwargs):
        calls.append((subscription_id, confirm_url))

    confirmation_requested.connect(receiver)
    yield calls
    confirmation_requested.disconnect(receiver)


def _subscribe(client, mailing_list, email, **extra):
    return client.post(
        reverse("contacts:subscribe", args=[mailing_list.public_id]), {"email": email, **extra}
    )


def test_double_opt_in_journey(client, weekly, requested, django_capture_on_commit_callbacks):
    assert (
        "Once a week" in client.get(reverse("contacts:subscribe", args=[weekly.public_id])).content.decode()
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = _subscribe(client, weekly, "Reader@Example.com", first_name="Rea")
    assert response.status_code == 200 and "confirm" in response.content.decode()
    subscription = Subscription.objects.get()
    assert subscription.status == SubscriptionStatus.UNCONFIRMED
    # The token carries a timestamp, so compare what it names rather than its exact text.
    assert [pk for pk, _ in requested] == [subscription.pk]
    url = requested[0][1]
    assert tokens.confirm_subscription_id(url.rstrip("/").rsplit("/", 1)[1]) == subscription.pk
    assert url.startswith("http://") and "/contacts/p/confirm/" in url
    path = url.split("://", 1)[1].split("/", 1)[1]
    # A link scanner's GET confirms nothing.
    assert client.get("/" + path).status_code == 200
    assert Subscription.objects.get().status == SubscriptionStatus.UNCONFIRMED
    done = client.post("/" + path)
    assert done.status_code == 200 and "You are subscribed to Weekly" in done.content.decode()
    subscription.refresh_from_db()
    contact = subscription.contact
    assert subscription.status == SubscriptionStatus.CONFIRMED and subscription.confirmed_at
    assert contact.consent_source == "form" and contact.consent_ip == "127.0.0.1" and contact.consent_at


def test_single_opt_in_confirms_at_once_and_sends_nothing(
    client, requested, django_capture_on_commit_callbacks
):
    daily = MailingList.objects.create(name="Daily", opt_in="single", is_public=True)
    with django_capture_on_commit_callbacks(execute=True):
        _subscribe(client, daily, "s@example.com")
    assert Subscription.objects.get().status == SubscriptionStatus.CONFIRMED and requested == []


def test_private_and_unknown_lists_have_no_page(client):
    private = MailingList.objects.create(name="Staff", is_public=False)
    assert client.get(reverse("contacts:subscribe", args=[private.public_id])).status_code == 404
    assert _subscribe(client, private, "x@example.com").status_code == 404
    assert client.get("/contacts/p/subscribe/00000000-0000-0000-0000-000000000000/").status_code == 404


def test_same_answer_whatever_the_address(client, weekly, django_capture_on_commit_callbacks):
    Contact.objects.create(email="blocked@example.com", status=ContactStatus.BLOCKLISTED)
    services.suppression_add("supp@example.com", reason="r", source="test")
    confirmed = Contact.objects.create(email="member@example.com")
    Subscription.objects.create(contact=confirmed, mailing_list=weekly, status="confirmed")
    bodies = set()
    for email in ["new@example.com", "blocked@example.com", "supp@example.com", "member@example.com"]:
        with django_capture_on_commit_callbacks(execute=True):
            response = _subscribe(client, weekly, email)
        assert response.status_code == 200
        bodies.add(response.content.decode())
    assert len(bodies) == 1
    assert not Contact.objects.filter(email="supp@example.com").exists()
    assert not Subscription.objects.filter(contact__email="blocked@example.com").exists()


def test_honeypot_and_rate_limit(client, weekly, settings):
    bot = _subscribe(client, weekly, "bot@example.com", website="http://spam")
    assert bot.status_code == 200 and not Contact.objects.exists()
    settings.CONTACTS_SUBSCRIBE_RATE_PER_HOUR = 3
    statuses = [_subscribe(client, weekly, f"r{i}@example.com").status_code for i in range(5)]
    assert statuses[:2] == [200, 200] and statuses[-1] == 429
    assert Contact.objects.count() == 2


def test_invalid_address_shows_form_error(client, weekly):
    response = _subscribe(client, weekly, "nope")
    assert response.status_code == 200 and "errorlist" in response.content.decode()
    assert not Contact.objects.exists()


def test_forged_or_expired_tokens(client, weekly, settings):
    contact = Contact.objects.create(email="c@example.com")
    subscription = Subscription.objects.create(contact=contact, mailing_list=weekly)
    good = tokens.confirm_token(subscription.pk)
    forged = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    assert client.post(reverse("contacts:confirm", args=[forged])).status_code == 404
    other_id = tokens.preferences_token(subscription.pk)  # a token of the other kind
    assert client.post(reverse("contacts:confirm", args=[other_id])).status_code == 404
    assert client.get(reverse("contacts:preferences", args=["1:abc"])).status_code == 404
    assert (
        client.get(reverse("contacts:preferences", args=[tokens.confirm_token(contact.pk)])).status_code
        == 404
    )
    settings.CONTACTS_CONFIRM_MAX_AGE_DAYS = 0
    assert tokens.confirm_subscription_id(good) is None
    settings.CONTACTS_CONFIRM_MAX_AGE_DAYS = 7
    assert tokens.confirm_subscription_id(good) == subscription.pk
    subscription.delete()
    assert client.post(reverse("contacts:confirm", args=[good])).status_code == 404


def test_preferences_choose_lists_and_unsubscribe_all(client, weekly):
    monthly = MailingList.objects.create(name="Monthly", is_public=True)
    staff = MailingList.objects.create(name="Staff", is_public=False)
    hidden = MailingList.objects.create(name="Hidden", is_public=False)
    contact = Contact.objects.create(email="p@example.com")
    for mailing_list in (weekly, staff):
        Subscription.objects.create(contact=contact, mailing_list=mailing_list, status="confirmed")
    url = tokens.preferences_url(contact.pk)
    assert url.startswith("http") and url.endswith("/")
    path = reverse("contacts:preferences", args=[tokens.preferences_token(contact.pk)])
    page = client.get(path).content.decode()
    assert "Weekly" in page and "Monthly" in page and "Staff" in page and "Hidden" not in page
    client.post(path, {"lists": [str(monthly.pk), str(hidden.pk)]})
    states = dict(Subscription.objects.filter(contact=contact).values_list("mailing_list__name", "status"))
    assert states == {"Weekly": "unsubscribed", "Staff": "unsubscribed", "Monthly": "confirmed"}
    client.post(path, {"unsubscribe_all": "1"})
    contact.refresh_from_db()
    assert contact.status == ContactStatus.UNSUBSCRIBED
    assert not Subscription.objects.filter(contact=contact, status="confirmed").exists()
    # Ticking a list again is the person's own consent: it lifts the unsubscribe.
    client.post(path, {"lists": [str(weekly.pk)]})
    contact.refresh_from_db()
    assert contact.status == ContactStatus.ACTIVE


def test_public_posts_need_csrf(weekly):
    strict = Client(enforce_csrf_checks=True)
    contact = Contact.objects.create(email="z@example.com")
    assert (
        strict.post(
            reverse("contacts:subscribe", args=[weekly.public_id]), {"email": "a@example.com"}
        ).status_code
        == 403
    )
    path = reverse("contacts:preferences", args=[tokens.preferences_token(contact.pk)])
    assert strict.post(path, {"unsubscribe_all": "1"}).status_code == 403
    contact.refresh_from_db()
    assert contact.status == ContactStatus.ACTIVE


def test_public_views_are_marked_public():
    from django.urls import resolve

    for name, args in [
        ("subscribe", ["00000000-0000-0000-0000-000000000000"]),
        ("confirm", ["x"]),
        ("preferences", ["x"]),
    ]:
        assert resolve(reverse(f"contacts:{name}", args=args)).func.public_endpoint is True
