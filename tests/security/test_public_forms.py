"""Issue #12: the public subscribe form of a single opt-in list turned a contact who had unsubscribed
back into an active subscriber, with the attacker's IP as consent. Now only a confirmation mail the
person clicks brings them back, and the page never shows whether an address is known."""

from __future__ import annotations

import ipaddress
import secrets

import pytest

from contacts.models import Contact, ContactStatus, MailingList, Subscription, SubscriptionStatus

pytestmark = pytest.mark.django_db


def _address() -> str:
    # The form's per-address limit lives in Redis across tests: every post from an address of its own.
    return str(ipaddress.IPv6Address("2001:db8:1::") + secrets.randbits(64))


@pytest.fixture
def single():
    return MailingList.objects.create(name="News", opt_in="single", is_public=True)


@pytest.fixture
def subscribe(client, django_capture_on_commit_callbacks):
    def post(mailing_list, email: str):
        # The confirmation mail is queued after commit, as in production.
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(
                f"/contacts/p/subscribe/{mailing_list.public_id}/",
                {"email": email, "first_name": "Mallory"},
                REMOTE_ADDR=_address(),
            )

    return post


def _confirmation_messages(contact):
    from delivery.models import Message

    return list(Message.objects.filter(contact_id=contact.pk, mailing__meta__system="confirmation"))


def _contact(email: str, status: str) -> Contact:
    return Contact.objects.create(email=email, first_name="Ann", status=status)


@pytest.mark.parametrize("opt_in", ["single", "double"])
def test_an_unsubscribed_contact_comes_back_only_by_clicking_the_confirmation(client, subscribe, opt_in):
    mailing_list = MailingList.objects.create(name=f"List {opt_in}", opt_in=opt_in, is_public=True)
    ann = _contact("ann@example.org", ContactStatus.UNSUBSCRIBED)
    response = subscribe(mailing_list, "ann@example.org")
    assert response.status_code == 200
    ann.refresh_from_db()
    assert ann.status == ContactStatus.UNSUBSCRIBED and ann.consent_ip is None and ann.first_name == "Ann"
    assert not Subscription.objects.filter(contact=ann, status=SubscriptionStatus.CONFIRMED).exists()
    # The person gets a confirmation mail, through the transactional path...
    (message,) = _confirmation_messages(ann)
    confirm_path = "/" + message.data["confirm_url"].split("://", 1)[1].split("/", 1)[1]
    # ...and only their click (a POST from the page the link opens) brings them back.
    assert client.post(confirm_path, REMOTE_ADDR="2001:db8:2::1").status_code == 200
    ann.refresh_from_db()
    assert ann.status == ContactStatus.ACTIVE and ann.consent_ip == "2001:db8:2::1"


def test_a_list_level_unsubscribe_is_not_undone_by_the_form(client, subscribe, single):
    ann = _contact("ann@example.org", ContactStatus.ACTIVE)
    Subscription.objects.create(contact=ann, mailing_list=single, status=SubscriptionStatus.UNSUBSCRIBED)
    subscribe(single, "ann@example.org")
    assert Subscription.objects.get(contact=ann, mailing_list=single).status != SubscriptionStatus.CONFIRMED
    assert len(_confirmation_messages(ann)) == 1


@pytest.mark.parametrize(
    "status", [ContactStatus.BOUNCED, ContactStatus.COMPLAINED, ContactStatus.BLOCKLISTED]
)
def test_bounced_complained_and_blocklisted_contacts_are_never_changed_by_the_form(
    client, subscribe, single, status
):
    ann = _contact("ann@example.org", status)
    subscribe(single, "ann@example.org")
    ann.refresh_from_db()
    assert ann.status == status
    assert not Subscription.objects.filter(contact=ann).exists()
    assert not _confirmation_messages(ann)


def test_the_answer_is_the_same_for_known_unknown_and_blocked_addresses(client, subscribe, single):
    _contact("gone@example.org", ContactStatus.UNSUBSCRIBED)
    _contact("bounced@example.org", ContactStatus.BOUNCED)
    _contact("active@example.org", ContactStatus.ACTIVE)
    pages = {
        email: subscribe(single, email)
        for email in ("new@example.org", "gone@example.org", "bounced@example.org", "active@example.org")
    }
    statuses = {response.status_code for response in pages.values()}
    bodies = {response.content for response in pages.values()}
    assert statuses == {200} and len(bodies) == 1


def test_a_new_address_on_a_single_opt_in_list_is_still_subscribed_at_once(client, subscribe, single):
    subscribe(single, "new@example.org")
    contact = Contact.objects.get(email="new@example.org")
    assert Subscription.objects.get(contact=contact).status == SubscriptionStatus.CONFIRMED
