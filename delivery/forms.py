"""Dashboard forms: relays (the password is write-only) and sending identities."""

from __future__ import annotations

from django import forms

from delivery.headers import check_header_value
from delivery.models import PORT_SECURITY, RELAY_EDITABLE_FIELDS, Relay, Security
from mailplatform.errors import Invalid


class RelayForm(forms.ModelForm):
    password = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted and never shown again. Leave blank to keep the current one.",
    )
    clear_password = forms.BooleanField(required=False, label="Remove the stored password")
    security = forms.ChoiceField(
        choices=[("", "Suggested for the port")] + list(Security.choices),
        required=False,
        help_text="Port 465: implicit TLS; 25, 587 and 2525: STARTTLS.",
    )

    class Meta:
        model = Relay
        fields = RELAY_EDITABLE_FIELDS

    def clean_host(self) -> str:
        host = self.cleaned_data["host"].strip()
        _header_checked(host, "host")
        if not host or " " in host or "/" in host:
            raise forms.ValidationError("Enter a host name or IP address, e.g. smtp.example.com")
        return host

    def clean_port(self) -> int:
        port = self.cleaned_data["port"]
        if not 1 <= port <= 65535:
            raise forms.ValidationError("A port is a number from 1 to 65535")
        return port

    def clean_security(self) -> str:
        value = self.cleaned_data.get("security") or ""
        if value:
            return value
        port = self.cleaned_data.get("port") or 587
        return PORT_SECURITY.get(port, Security.STARTTLS)

    def clean_max_connections(self) -> int:
        value = self.cleaned_data["max_connections"]
        if value < 1:
            raise forms.ValidationError("At least one connection")
        return value

    def clean_per_second(self) -> float:
        value = self.cleaned_data["per_second"]
        if value < 0:
            raise forms.ValidationError("0 for no limit, or a positive rate")
        return value


class IdentityForm(forms.Form):
    address = forms.CharField(
        max_length=254, help_text="A from address (news@example.com) or a whole domain (example.com)."
    )
    generate_dkim = forms.BooleanField(required=False, initial=True, label="Generate a DKIM key")
    dkim_selector = forms.CharField(
        required=False, max_length=63, help_text="Blank: one is chosen (phYYYYMM)."
    )

    def clean_dkim_selector(self) -> str:
        value = self.cleaned_data["dkim_selector"].strip().lower()
        if value and not all(ch.isalnum() or ch in "-_" for ch in value):
            raise forms.ValidationError("Letters, digits, - and _ only")
        return value


class LedgerSearchForm(forms.Form):
    address = forms.CharField(
        required=False, max_length=254, help_text="Exact address, or a prefix ending in *"
    )
    mailing = forms.IntegerField(required=False, min_value=1)
    state = forms.ChoiceField(
        required=False,
        choices=[("", "Any state")]
        + [(s, s) for s in ("queued", "sending", "sent", "deferred", "failed", "skipped")],
    )


class TestSendForm(forms.Form):
    to = forms.EmailField(max_length=254, label="Send a test to")
    version_id = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def clean_to(self) -> str:
        return _header_checked(self.cleaned_data["to"].strip(), "address")


def _header_checked(value: str, label: str) -> str:
    try:
        return check_header_value(value, field=label)
    except Invalid as exc:
        raise forms.ValidationError(exc.message) from None


class WarmupForm(forms.Form):
    """A warm-up schedule: a sending domain or a relay, a starter or one's own daily caps."""

    domain = forms.CharField(
        required=False,
        max_length=253,
        help_text="The From domain to warm up (e.g. news.example.com); or choose a relay instead.",
        widget=forms.TextInput(attrs={"list": "identity-domains"}),
    )
    relay = forms.ModelChoiceField(queryset=Relay.objects.all(), required=False, empty_label="(no relay)")
    starter = forms.ChoiceField(
        required=False,
        help_text="Fills the caps below when they are left empty.",
    )
    caps = forms.CharField(
        required=False,
        label="Daily caps",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="The most that may go each day, day 1 first, e.g. 50, 100, 500, 1000. After the last day there is no cap.",
    )
    starts_on = forms.DateField(
        required=False, help_text="Day 1 (UTC). Empty: today.", widget=forms.DateInput(attrs={"type": "date"})
    )
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        from delivery.warmup import STARTERS

        self.fields["starter"].choices = [("", "(my own caps)")] + [(k, v[0]) for k, v in STARTERS.items()]

    def clean(self):
        data = super().clean()
        from delivery.warmup import STARTERS

        if not (data.get("caps") or "").strip():
            starter = data.get("starter")
            if not starter:
                raise forms.ValidationError("Choose a starter or give the daily caps.")
            data["caps"] = ", ".join(str(c) for c in STARTERS[starter][1])
        return data
