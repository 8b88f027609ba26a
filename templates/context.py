"""The data a template sees for one recipient: plain values only, never a model or a setting.

Variables (documented in the editor's help):
  contact.email, contact.first_name, contact.last_name, contact.<custom field>
  unsubscribe_url, preferences_url, view_in_browser_url
  org.name, org.postal_address, org.logo_url, org.from_email, org.reply_to, org.website
  any key of `extra` (transactional sends pass their data here, e.g. order.number)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mailplatform.errors import Invalid
from templates.liquid_env import plain_data

URL_NAMES = ("unsubscribe_url", "preferences_url", "view_in_browser_url")
CONTACT_FIELDS = ("email", "first_name", "last_name")
RESERVED = frozenset({"contact", "org", *URL_NAMES})
# The organisation's details (mailplatform.selectors.org_data), as {{ org.<name> }}.
ORG_FIELDS = ("name", "postal_address", "logo_url", "from_email", "reply_to", "website")
RESERVED_DATA = frozenset({"contact"})

# Shown in the editor's help and used by the preview when no contact is chosen.
VARIABLE_HELP: tuple[tuple[str, str], ...] = (
    ("contact.email", "The recipient's email address"),
    ("contact.first_name", 'First name (may be empty: use | default: "there")'),
    ("contact.last_name", "Last name"),
    ("contact.<field>", "Any custom field of the contact, e.g. contact.city"),
    ("unsubscribe_url", "One-click unsubscribe link for this recipient (required in marketing mail)"),
    ("preferences_url", "The recipient's subscription preferences page"),
    ("view_in_browser_url", "This message as a web page"),
    ("org.name", "Your organisation's name (Settings → Organisation)"),
    ("org.postal_address", "Your postal address (bulk mail must show one)"),
    ("org.logo_url", "Your logo's address"),
    ("org.website", "Your public web address"),
    ("<name>", "Data passed with a transactional send, e.g. order.number"),
)

SAMPLE_CONTACT: dict[str, Any] = {
    "email": "ada@example.com",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "city": "London",
    "company": "Analytical Engines Ltd",
}
SAMPLE_URLS = {
    "unsubscribe_url": "https://example.com/u/sample-unsubscribe",
    "preferences_url": "https://example.com/u/sample-preferences",
    "view_in_browser_url": "https://example.com/t/sample-view",
}


_SCALARS = frozenset({str, int, float, bool, type(None)})
_NESTED = ("fields", "attributes", "custom_fields")
_EMPTY_URLS = dict.fromkeys(URL_NAMES, "")
_EMPTY_ORG = dict.fromkeys(ORG_FIELDS, "")
SAMPLE_ORG = {
    "name": "Example Ltd",
    "postal_address": "1 Example Street, Exampletown",
    "logo_url": "https://example.com/logo.png",
    "from_email": "news@example.com",
    "reply_to": "hello@example.com",
    "website": "https://example.com",
}


def recipient_context(
    *,
    contact: Mapping[str, Any],
    urls: Mapping[str, str],
    extra: Mapping[str, Any] | None = None,
    org: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Build the context for one recipient from plain mappings.

    `contact` holds email, first_name, last_name and custom fields (a nested "fields",
    "attributes" or "custom_fields" mapping is flattened into contact.*); `urls` the
    per-recipient links. Anything that is not plain data is copied into plain data, so a
    template can never reach a Python object. Called once per recipient: kept lean.
    """
    flat: dict[str, Any] = {"email": "", "first_name": "", "last_name": ""}
    nested = []
    for key, value in contact.items():
        if key in _NESTED and isinstance(value, Mapping):
            nested.append(value)
        elif type(value) in _SCALARS and type(key) is str:
            flat[key] = value
        else:
            flat[str(key)] = plain_data(value, 1)
    for mapping in nested:
        for name, value in mapping.items():
            # Standard fields win over a custom field that happens to share their name.
            if name not in flat or name not in contact and flat[name] == "":
                flat[str(name)] = value if type(value) in _SCALARS else plain_data(value, 1)
    context: dict[str, Any] = {
        "contact": flat,
        "org": dict(org) if org is not None else _EMPTY_ORG,
        **_EMPTY_URLS,
    }
    for name, url in urls.items():
        if name in RESERVED_DATA:
            raise Invalid(f"'{name}' is not a URL name", code="reserved_name", field="data")
        context[str(name)] = url if type(url) is str else str(url)
    if extra:
        clash = RESERVED & set(extra)
        if clash:
            raise Invalid(
                f"extra data may not use the reserved names: {', '.join(sorted(clash))}",
                code="reserved_name",
                field="data",
            )
        for key, value in extra.items():
            context[str(key)] = plain_data(value)
    return context


def sample_context(
    contact: Mapping[str, Any] | None = None, org: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The preview's context: sample data, or the given contact's plain data (and the organisation's
    details when given: mailplatform.selectors.org_data)."""
    return recipient_context(contact=contact or SAMPLE_CONTACT, urls=SAMPLE_URLS, org=org or SAMPLE_ORG)
