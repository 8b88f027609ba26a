"""Signup forms and their bot defences, through the public URLs as a browser or a bot would post:
honeypot, signed render time, per-address and per-IP limits in Redis, the ALTCHA proof of work
(solved here with the altcha library, as the widget does), names with URLs, and the embeds."""

from __future__ import annotations

import altcha
import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from contacts import services
from contacts.models import Contact, MailingList, SignupForm, Subscription

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_limits(settings):
    settings.SIGNUP_MIN_SECONDS = 0
    settings.SIGNUP_POW_COST = 50  # cheap to solve in the test; the widget's is SIGNUP_POW_COST
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def signup(admin_user):
    news = MailingList.objects.create(name="News", opt_in="double")
    return services.signup_form_save(
        None,
        by=admin_user,
        lists=[news],
        name="Newsletter signup",
        ask_first_name=True,
        consent_text="I agree to receive the newsletter.",
        allowed_origins="http://127.0.0.1:8123",
    )


def solved(client: Client, form: SignupForm) -> str:
    response = client.get(reverse("contacts:signup-challenge", args=[form.public_id]))
    assert response.status_code == 200 and response["Access-Control-Allow-Origin"] == "*"
    challenge = altcha.v2.Challenge.from_dict(response.json())
    solution = altcha.solve_challenge(challenge)
    return altcha.Payload(challenge, solution).to_base64()


def post(client: Client, form: SignupForm, **fields):
    data = {"email": "ann@example.com", "first_name": "Ann", "consent": "1", "website": "", **fields}
    if "altcha" not in fields:
        data["altcha"] = solved(client, form)
    return client.post(reverse("contacts:signup-submit", args=[form.public_id]), data)


def test_a_cross_origin_post_without_csrf_cookie_signs_up(signup, django_capture_on_commit_callbacks):
    client = Client(enforce_csrf_checks=True, HTTP_ORIGIN="http://127.0.0.1:8123")
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, signup)
    assert response.status_code == 200 and b'id="signup-done"' in response.content
    contact = Contact.objects.get(email="ann@example.com")
    assert contact.first_name == "Ann" and "signup form Newsletter signup" in contact.consent_detail
    assert Subscription.objects.get(contact=contact).status == "unconfirmed"  # double opt-in: a mail asks
    from delivery.models import Message

    assert Message.objects.filter(email="ann@example.com", mailing__meta__system="confirmation").exists()
    # A second signup of the same address says the same, and changes nothing.
    again = post(client, signup)
    assert again.status_code == 200 and again.content == response.content
    assert Contact.objects.count() == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"website": "http://spam.example"}, "looks automated"),
        ({"altcha": ""}, "anti-robot check was not done"),
        ({"altcha": "bm90IGEgcGF5bG9hZA=="}, "anti-robot check failed"),
        ({"first_name": "Win at cheap-pills.com"}, "web address or markup"),
        ({"first_name": "<a href=x>Ann</a>"}, "web address or markup"),
        ({"first_name": "Visit https://x.example"}, "web address or markup"),
        ({"consent": ""}, "tick the box"),
        ({"email": "not an address"}, ""),
    ],
)
def test_refusals_say_why_and_store_nothing(signup, fields, message):
    response = post(Client(), signup, **fields)
    assert response.status_code == 400
    assert message.encode() in response.content and b"Nothing was stored" in response.content
    assert not Contact.objects.exists()


def test_a_forged_challenge_signature_is_refused(signup):
    client = Client()
    response = client.get(reverse("contacts:signup-challenge", args=[signup.public_id]))
    data = response.json()
    data["signature"] = "0" * len(data["signature"])  # a challenge we did not sign
    challenge = altcha.v2.Challenge.from_dict(data)
    payload = altcha.Payload(challenge, altcha.solve_challenge(challenge)).to_base64()
    assert post(client, signup, altcha=payload).status_code == 400
    assert not Contact.objects.exists()


def test_a_solved_challenge_is_accepted_once(signup):
    client = Client()
    payload = solved(client, signup)
    assert post(client, signup, altcha=payload).status_code == 200
    replay = post(client, signup, altcha=payload, email="bob@example.com")
    assert replay.status_code == 400 and b"already used" in replay.content
    assert not Contact.objects.filter(email="bob@example.com").exists()


def test_a_challenge_for_another_form_is_refused(signup, admin_user):
    other = services.signup_form_save(None, by=admin_user, lists=list(signup.lists.all()), name="Other")
    client = Client()
    response = post(client, signup, altcha=solved(client, other))
    assert response.status_code == 400 and b"another form" in response.content


def test_too_fast_and_too_old_are_refused(signup, settings):
    client = Client()
    settings.SIGNUP_MIN_SECONDS = 30
    response = post(client, signup)
    assert response.status_code == 400 and b"oo fast" in response.content
    settings.SIGNUP_MIN_SECONDS = 0
    from contacts.signup import render_stamp

    stamp = render_stamp(str(signup.public_id))
    settings.SIGNUP_MAX_AGE_SECONDS = -1  # everything is older than that
    response = post(client, signup, _ts=stamp)
    assert response.status_code == 400 and b"oo old" in response.content
    assert not Contact.objects.exists()


def test_a_forged_render_stamp_is_refused(signup):
    response = post(Client(), signup, _ts="eyJmIjoiYSJ9:forged:sig")
    assert response.status_code == 400 and b"signature is missing or wrong" in response.content


def test_a_flood_from_one_address_or_network_is_limited(signup, settings):
    settings.SIGNUP_PER_ADDRESS_PER_HOUR = 2
    client = Client()
    assert post(client, signup).status_code == 200
    assert post(client, signup).status_code == 200
    flood = post(client, signup)
    assert flood.status_code == 429 and b"oo many signups for this address" in flood.content
    settings.SIGNUP_PER_IP_PER_HOUR = 3
    refused = post(client, signup, email="other@example.com")
    assert refused.status_code == 429 and b"oo many signups from your network" in refused.content
    assert not Contact.objects.filter(email="other@example.com").exists()


def test_the_embeds(signup, admin_client):
    hosted = Client().get(reverse("contacts:signup", args=[signup.public_id]))
    assert hosted.status_code == 200 and hosted["X-Frame-Options"] == "DENY"
    assert "altcha-widget" in hosted.content.decode() and "blob:" in hosted["Content-Security-Policy"]
    frame = Client().get(reverse("contacts:signup-frame", args=[signup.public_id]))
    assert "X-Frame-Options" not in frame
    assert "frame-ancestors 'self' http://127.0.0.1:8123" in frame["Content-Security-Policy"]
    page = admin_client.get(reverse("contacts:signup-form-edit", args=[signup.pk])).content.decode()
    assert (
        "/submit/" in page
        and "csrfmiddlewaretoken" not in page.split('id="code-html"')[1].split("</textarea>")[0]
    )
    assert "&lt;iframe src=" in page


def test_allowed_origins_are_checked(signup, admin_user):
    from mailplatform.errors import Invalid

    with pytest.raises(Invalid, match="not an origin"):
        services.signup_form_save(
            signup, by=admin_user, lists=list(signup.lists.all()), allowed_origins="https://x.example/path"
        )


def test_the_lists_own_subscribe_page_refuses_names_with_links():
    news = MailingList.objects.create(name="Weekly", opt_in="double", is_public=True)
    url = reverse("contacts:subscribe", args=[news.public_id])
    spam = Client().post(url, {"email": "x@example.com", "first_name": "Cheap pills at pills.example.com"})
    assert spam.status_code == 400 and b"web address" in spam.content
    assert not Contact.objects.filter(email="x@example.com").exists()
    assert Client().post(url, {"email": "y@example.com", "first_name": "Yvonne"}).status_code == 200


@pytest.mark.parametrize("provider", ["hcaptcha", "turnstile"])
def test_hcaptcha_or_turnstile_can_be_switched_on_with_their_keys(signup, settings, monkeypatch, provider):
    """Their HTTPS verification API is mocked (a third party); the rest is ours and real."""
    import io
    import json
    import urllib.request

    from contacts.signup import PROVIDERS

    settings.SIGNUP_CAPTCHA = provider
    settings.SIGNUP_CAPTCHA_SITE_KEY = "site-key-1"
    settings.SIGNUP_CAPTCHA_SECRET = "secret-1"
    field, script, endpoint = PROVIDERS[provider]
    asked = []

    def fake_urlopen(request, timeout):
        asked.append((request.full_url, request.data.decode()))
        return io.BytesIO(json.dumps({"success": "good-token" in request.data.decode()}).encode())

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    page = Client().get(reverse("contacts:signup", args=[signup.public_id]))
    html = page.content.decode()
    assert 'data-sitekey="site-key-1"' in html and script in html and "altcha-widget" not in html
    origin = "/".join(script.split("/")[:3])
    assert origin in page["Content-Security-Policy"]
    url = reverse("contacts:signup-submit", args=[signup.public_id])
    base = {"email": "ann@example.com", "consent": "1"}
    refused = Client().post(url, {**base, field: "bad-token"})
    assert refused.status_code == 400 and b"anti-robot check failed" in refused.content
    assert Client().post(url, base).status_code == 400  # no token at all
    assert not Contact.objects.exists()
    assert Client().post(url, {**base, field: "good-token"}).status_code == 200
    assert Contact.objects.filter(email="ann@example.com").exists()
    assert asked[0][0] == endpoint and "secret=secret-1" in asked[0][1]


def test_role_and_disposable_addresses_are_flagged_and_a_form_may_refuse_them(
    signup, admin_client, admin_user
):
    from contacts.validation import address_flags

    assert address_flags("postmaster@example.org") == ["role"]
    assert address_flags("Info+news@Example.org") == ["role"]
    assert address_flags("ann@mailinator.com") == ["disposable"]
    assert address_flags("ann@example.org") == []
    # Kept by default (flagged on the contact's page) ...
    assert post(Client(), signup, email="info@example.org").status_code == 200
    contact = Contact.objects.get(email="info@example.org")
    page = admin_client.get(reverse("contacts:detail", args=[contact.pk])).content.decode()
    assert 'data-address-flag="role"' in page
    # ... or refused, when the form says so.
    services.signup_form_save(signup, by=admin_user, lists=list(signup.lists.all()), refuse_flagged=True)
    refused = post(Client(), signup, email="ann@mailinator.com")
    assert refused.status_code == 400 and b"disposable" in refused.content
    assert not Contact.objects.filter(email="ann@mailinator.com").exists()
    assert post(Client(), signup, email="sales@example.org").status_code == 400
