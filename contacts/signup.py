"""Signup forms and what keeps bots out of them (and out of the API's public subscribe path).

A submission passes, in order, or is refused with a SignupRefused that says why, storing nothing:

1. the honeypot: a field people never see (`website`) must stay empty;
2. limits per client address and per email address (SIGNUP_PER_IP_PER_HOUR,
   SIGNUP_PER_ADDRESS_PER_HOUR), counted in Redis so they hold across processes;
3. the proof of work (ALTCHA, `altcha` on PyPI; the MIT widget is vendored in
   contacts/static/contacts/): a challenge HMAC-signed with a key derived from SECRET_KEY, for this
   form, expiring after SIGNUP_MAX_AGE_SECONDS; each solved challenge is accepted once (Redis);
   or, with SIGNUP_CAPTCHA and its keys, hCaptcha or Cloudflare Turnstile verified with the provider;
4. the signed render time: the challenge carries the time it was issued (signed with it), and the
   hosted pages also render a signed `_ts`; a post sooner than SIGNUP_MIN_SECONDS after it (too fast
   for a person) or later than SIGNUP_MAX_AGE_SECONDS is refused;
5. the fields: a valid address, names without URLs or markup (a known trick to spam through
   confirmation mails), the consent box ticked when the form asks for it.

Then every list of the form gets `services.public_subscribe`, which answers the same whether the
address is new, known, already subscribed or blocked.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from typing import Any

import altcha
from django.conf import settings
from django.core import signing
from django.core.cache import cache

from mailplatform.errors import Invalid

STAMP_SALT = "contacts.signup.rendered"
HONEYPOT = "website"


class SignupRefused(Invalid):
    default_code = "signup_refused"
    default_field = "form"


# A name may not carry a link or markup: "Win $$$ at cheap-pills.example" in a first name lands in
# the confirmation mail's "Hi ...," and turns the platform into a spam relay.
_NAME_REFUSED = re.compile(
    r"(://|www\.|[<>{}\[\]]|&#|\b[a-z0-9-]{2,}\.(?:com|net|org|info|biz|ru|cn|io|xyz|top|co|me|link|click|"
    r"online|site|shop|store|app|dev|tk|ml|ga|cf|gq|us|uk|de)\b)",
    re.IGNORECASE,
)


def check_name(value: str, field: str) -> str:
    text = " ".join((value or "").split())
    if len(text) > 100:
        raise SignupRefused("a name is at most 100 characters", field=field)
    if _NAME_REFUSED.search(text):
        raise SignupRefused("a name may not contain a web address or markup", field=field)
    return text


def _secret() -> str:
    return hmac.new(settings.SECRET_KEY.encode(), b"posthorn.signup.altcha", hashlib.sha256).hexdigest()


def render_stamp(form_key: str) -> str:
    """A signed "rendered now" for the hosted pages' hidden `_ts` field."""
    return signing.dumps({"f": form_key, "t": time.time()}, salt=STAMP_SALT)


def _check_age(issued: float, now: float) -> None:
    age = now - issued
    if age < settings.SIGNUP_MIN_SECONDS:
        raise SignupRefused("that was too fast for a person: wait a moment and send the form again")
    if age > settings.SIGNUP_MAX_AGE_SECONDS:
        raise SignupRefused("this form is too old: reload the page and send it again")


def check_stamp(value: str, form_key: str, now: float) -> None:
    try:
        data = signing.loads(value, salt=STAMP_SALT)
    except signing.BadSignature:
        raise SignupRefused("the form's signature is missing or wrong: reload the page") from None
    if not isinstance(data, dict) or data.get("f") != form_key:
        raise SignupRefused("the form's signature is missing or wrong: reload the page")
    _check_age(float(data.get("t", 0)), now)


def challenge(form_key: str) -> dict[str, Any]:
    """A new proof-of-work challenge for one form, as the widget fetches it (JSON)."""
    now = time.time()
    issued = altcha.create_challenge(
        "SHA-256",
        settings.SIGNUP_POW_COST,
        hmac_secret=_secret(),
        expires_at=int(now + settings.SIGNUP_MAX_AGE_SECONDS),
        data={"f": form_key, "t": str(int(now))},
    )
    return issued.to_dict()


def check_proof(payload: str, form_key: str, now: float) -> None:
    """The widget's solved challenge: signed by us, for this form, in time, and used only once."""
    if not payload:
        raise SignupRefused("the anti-robot check was not done: wait for it to finish, then send the form")
    try:
        result = altcha.verify_solution(payload, _secret())
    except Exception:  # a payload that does not even parse
        raise SignupRefused("the anti-robot check failed: reload the page") from None
    if not result.verified:
        if result.expired:
            raise SignupRefused("this form is too old: reload the page and send it again")
        raise SignupRefused("the anti-robot check failed: reload the page")
    parsed = altcha.Payload.from_base64(payload) if isinstance(payload, str) else payload
    data = parsed.challenge.parameters.data or {}
    if data.get("f") != form_key:
        raise SignupRefused("the anti-robot check was for another form: reload the page")
    _check_age(float(data.get("t", 0)), now)
    # Once only: a solved challenge replayed (by a bot that solved one and posts it many times).
    key = f"signup:pow:{parsed.challenge.signature}"
    if not cache.add(key, 1, timeout=settings.SIGNUP_MAX_AGE_SECONDS + 60):
        raise SignupRefused("this anti-robot check was already used: reload the page")


# Third-party challenges (switched on with SIGNUP_CAPTCHA and its keys): the form field their widget
# fills, their script, and their verification endpoint.
PROVIDERS = {
    "hcaptcha": (
        "h-captcha-response",
        "https://js.hcaptcha.com/1/api.js",
        "https://api.hcaptcha.com/siteverify",
    ),
    "turnstile": (
        "cf-turnstile-response",
        "https://challenges.cloudflare.com/turnstile/v0/api.js",
        "https://challenges.cloudflare.com/turnstile/v0/siteverify",
    ),
}


def third_party() -> str:
    """The third-party challenge in use ("hcaptcha", "turnstile"), or "" (ALTCHA or none)."""
    provider = settings.SIGNUP_CAPTCHA
    if provider and settings.SIGNUP_CAPTCHA_SITE_KEY and settings.SIGNUP_CAPTCHA_SECRET:
        return provider
    return ""


def check_third_party(provider: str, token: str, ip_address: str | None) -> None:
    """Ask hCaptcha / Turnstile whether this response token is a solved challenge (once: they refuse
    a token used before)."""
    import json
    import urllib.parse
    import urllib.request

    if not token:
        raise SignupRefused("the anti-robot check was not done: wait for it to finish, then send the form")
    _, _, endpoint = PROVIDERS[provider]
    body = {"secret": settings.SIGNUP_CAPTCHA_SECRET, "response": token}
    if ip_address:
        body["remoteip"] = ip_address
    request = urllib.request.Request(endpoint, data=urllib.parse.urlencode(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 -- a fixed https endpoint
            verdict = json.loads(answer.read().decode())
    except (OSError, ValueError):
        raise SignupRefused("the anti-robot check could not be verified just now: try again") from None
    if not verdict.get("success"):
        raise SignupRefused("the anti-robot check failed: reload the page")


def _over_limit(key: str, limit: int) -> bool:
    cache.add(key, 0, timeout=3600)
    try:
        return cache.incr(key) > limit
    except ValueError:
        return False


def check_limits(*, ip_address: str | None, email: str) -> None:
    if ip_address and _over_limit(f"signup:ip:{ip_address}", settings.SIGNUP_PER_IP_PER_HOUR):
        raise SignupRefused("too many signups from your network: try again in an hour", code="rate_limited")
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    if _over_limit(f"signup:address:{digest}", settings.SIGNUP_PER_ADDRESS_PER_HOUR):
        raise SignupRefused("too many signups for this address: try again in an hour", code="rate_limited")


@dataclass(frozen=True)
class Submission:
    email: str
    first_name: str = ""
    last_name: str = ""


def check_submission(
    form: Any, data: Any, *, ip_address: str | None, now: float | None = None, pow_required: bool = True
) -> Submission:
    """Every defence, in order; the checked fields, or SignupRefused. `form` is a SignupForm."""
    from contacts.validation import EmailError, check_email

    now = time.time() if now is None else now
    key = str(form.public_id)
    if str(data.get(HONEYPOT, "")).strip():
        raise SignupRefused("this submission looks automated and was not accepted")
    email = str(data.get("email", "")).strip()
    check_limits(ip_address=ip_address, email=email)
    provider = third_party()
    altcha_on = pow_required and settings.SIGNUP_ALTCHA and not provider
    if provider and pow_required:
        check_third_party(provider, str(data.get(PROVIDERS[provider][0], "")), ip_address)
    if altcha_on:
        check_proof(str(data.get("altcha", "")), key, now)
    # The render time is signed into the ALTCHA challenge; a third-party token expires on its own, so
    # there the snippet (static HTML on another site) may post without `_ts`; our pages send one.
    if data.get("_ts") or not (altcha_on or provider):
        check_stamp(str(data.get("_ts", "")), key, now)
    try:
        email = check_email(email)
    except EmailError as exc:
        raise SignupRefused(str(exc), field="email") from None
    if getattr(form, "refuse_flagged", False):
        from contacts.validation import address_flags

        flags = address_flags(email)
        if "role" in flags:
            raise SignupRefused(
                "please sign up with a personal address, not a role address like info@", field="email"
            )
        if "disposable" in flags:
            raise SignupRefused(
                "please sign up with an address you keep, not a disposable one", field="email"
            )
    first = check_name(str(data.get("first_name", "")), "first_name") if form.ask_first_name else ""
    last = check_name(str(data.get("last_name", "")), "last_name") if form.ask_last_name else ""
    if form.names_required and ((form.ask_first_name and not first) or (form.ask_last_name and not last)):
        raise SignupRefused("please fill in your name", field="first_name")
    if form.consent_text and not data.get("consent"):
        raise SignupRefused("please tick the box to agree", field="consent")
    return Submission(email=email, first_name=first, last_name=last)


def widget() -> dict[str, str]:
    """What the form pages draw: {"kind": "altcha" | "hcaptcha" | "turnstile" | "", ...}."""
    provider = third_party()
    if provider:
        _, script, _ = PROVIDERS[provider]
        css = "h-captcha" if provider == "hcaptcha" else "cf-turnstile"
        origin = "/".join(script.split("/")[:3])
        return {
            "kind": provider,
            "script": script,
            "css": css,
            "site_key": settings.SIGNUP_CAPTCHA_SITE_KEY,
            "origin": origin,
        }
    return {"kind": "altcha" if settings.SIGNUP_ALTCHA else ""}
