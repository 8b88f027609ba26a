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
    role = forms.ChoiceField(choices=Role.choices)


class UserRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
