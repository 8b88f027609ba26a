from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm, PasswordChangeForm, PasswordResetForm
from django.contrib.auth.tokens import default_token_generator
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from mailplatform.locales import timezone_groups
from mailplatform.roles import Role
from mailplatform.services import login_failed, login_succeeded, login_wait_seconds, password_reset_allowed
from mailplatform.signals import password_reset_requested


class TimezoneInput(forms.TextInput):
    """A time-zone box that suggests as one types (a datalist of the zones, labelled region and
    city): "berl" offers Europe/Berlin. Any IANA name the form's check accepts may be typed."""

    template_name = "mailplatform/forms/timezone_input.html"

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        list_id = f"{context['widget']['attrs'].get('id') or name}-zones"
        context["widget"]["attrs"]["list"] = list_id
        context["widget"]["attrs"].setdefault("autocomplete", "off")
        context["list_id"] = list_id
        context["zone_groups"] = timezone_groups()
        return context


def _client_address(request) -> str | None:
    # ClientAddressMiddleware has already replaced a trusted proxy's address with the client's.
    return request.META.get("REMOTE_ADDR") if request is not None else None


def _locked_error(wait: int) -> forms.ValidationError:
    return forms.ValidationError(
        "Too many failed logins. Wait %(seconds)s seconds and try again.",
        code="locked",
        params={"seconds": wait},
    )


class ThrottledAuthenticationForm(AuthenticationForm):
    """The dashboard's login, the only one (Django admin sends its visitors here).

    After repeated failures for one account from one address each further try waits longer
    (mailplatform.services.login_wait_seconds); while it waits the password is not even checked,
    so a guess in that time learns nothing.
    """

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        ip_address = _client_address(self.request)
        wait = login_wait_seconds(username, ip_address)
        if wait:
            raise _locked_error(wait)
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            login_failed(username, ip_address)
            raise
        login_succeeded(username, ip_address)
        return cleaned


class ThrottledPasswordChangeForm(PasswordChangeForm):
    """Changing a password checks the old one: the same throttle as the login (a stolen session
    must not become a way to guess the password)."""

    def __init__(self, user, *args, request=None, **kwargs):
        self.request = request
        super().__init__(user, *args, **kwargs)

    def clean_old_password(self):
        ip_address = _client_address(self.request)
        wait = login_wait_seconds(self.user.get_username(), ip_address)
        if wait:
            raise _locked_error(wait)
        try:
            old_password = super().clean_old_password()
        except forms.ValidationError:
            login_failed(self.user.get_username(), ip_address)
            raise
        login_succeeded(self.user.get_username(), ip_address)
        return old_password


class PlatformPasswordResetForm(PasswordResetForm):
    """Asks for a reset link. The answer is the same whether or not the address has an account;
    the link goes out through the transactional path (delivery connects the signal), is valid for
    PASSWORD_RESET_TIMEOUT and works once (the token covers the password it replaces)."""

    def save(self, *, request=None, **kwargs) -> None:  # Django's signature; the mail is ours
        email = self.cleaned_data["email"]
        if not password_reset_allowed(email, _client_address(request)):
            return
        for user in self.get_users(email):
            path = reverse(
                "password_reset_confirm",
                kwargs={"uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
                        "token": default_token_generator.make_token(user)},
            )  # fmt: skip
            password_reset_requested.send(
                sender=type(self), user_id=user.pk, email=user.email, reset_url=settings.SITE_URL + path
            )


class UserCreateForm(forms.Form):
    username = forms.RegexField(regex=r"^[\w.@+-]{1,150}$", max_length=150)
    email = forms.EmailField()
    # The least role first: a person gets more only when someone chooses it.
    role = forms.ChoiceField(
        choices=[
            (Role.DEVELOPER, Role.DEVELOPER.label),
            (Role.MARKETER, Role.MARKETER.label),
            (Role.ADMIN, Role.ADMIN.label),
        ],
        initial=Role.DEVELOPER,
        help_text="Developer: reads everything, manages API keys and webhooks. Marketer: also contacts, "
        "templates and campaigns. Admin: also users, relays and settings.",
    )


class UserRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class ScopeCeilingForm(forms.Form):
    """One non-admin role's API key ceiling (Settings > API key limits)."""

    scopes = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple, required=False, label="Their keys may carry"
    )

    def __init__(self, *args, role: str, **kwargs):
        from mailplatform.scopes import SCOPES, ceiling_choices, scope_ceiling

        super().__init__(*args, prefix=role, **kwargs)
        self.fields["scopes"].choices = [
            (name, f"{name} — {SCOPES[name].description}") for name in ceiling_choices()
        ]
        self.fields["scopes"].initial = sorted(scope_ceiling(role))


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What uses this key, e.g. 'signup form on example.com'.")
    scopes = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple)
    expires_in_days = forms.IntegerField(
        min_value=1, max_value=3650, required=False, help_text="Leave empty for a key that does not expire."
    )
    rate_limit_per_minute = forms.IntegerField(
        min_value=1, max_value=100_000, required=False, help_text="Empty: the platform default."
    )

    def __init__(self, *args, role: str, **kwargs):
        super().__init__(*args, **kwargs)
        from mailplatform.scopes import SCOPES, grantable_scopes

        # Only the scopes this role may grant are offered; the service checks again.
        self.fields["scopes"].choices = [
            (name, f"{name} — {SCOPES[name].description}") for name in grantable_scopes(role)
        ]


class WebhookCreateForm(forms.Form):
    url = forms.URLField(label="URL", max_length=2000, assume_scheme="https")
    description = forms.CharField(max_length=200, required=False)
    event_types = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from mailplatform.webhooks import EVENT_TYPES

        self.fields["event_types"].choices = [(e, e) for e in EVENT_TYPES]


class OrganisationForm(forms.ModelForm):
    logo_url = forms.URLField(required=False, assume_scheme="https", label="Logo URL")
    public_base_url = forms.URLField(required=False, assume_scheme="https", label="Public web address")

    class Meta:
        from mailplatform.models import Organisation

        model = Organisation
        fields = [
            "name",
            "postal_address",
            "logo_url",
            "default_from_email",
            "default_reply_to",
            "public_base_url",
        ]
        widgets = {"postal_address": forms.Textarea(attrs={"rows": 3})}
        help_texts = {
            "default_from_email": "New campaigns start with it. The platform's own mail (confirmations, "
            "password resets) goes from it only while an enabled sending identity allows it.",
            "default_reply_to": "New campaigns start with it.",
        }
