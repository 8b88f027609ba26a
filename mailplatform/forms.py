from django import forms
from django.contrib.auth.forms import AuthenticationForm

from mailplatform.roles import Role
from mailplatform.services import login_failed, login_is_locked, login_succeeded


class ThrottledAuthenticationForm(AuthenticationForm):
    """Refuses further attempts for a while after repeated failures, per account and per address."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "locked": "Too many failed logins. Wait a few minutes and try again.",
    }

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        ip_address = self.request.META.get("REMOTE_ADDR") if self.request else None
        if login_is_locked(username, ip_address):
            raise forms.ValidationError(self.error_messages["locked"], code="locked")
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            login_failed(username, ip_address)
            raise
        login_succeeded(username)
        return cleaned


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
