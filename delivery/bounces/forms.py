from __future__ import annotations

from django import forms

from delivery.bounces.models import BounceMailbox, BouncePolicy


class PolicyForm(forms.ModelForm):
    class Meta:
        model = BouncePolicy
        fields = [
            "soft_bounce_threshold",
            "soft_bounce_window_days",
            "block_alert_threshold",
            "keep_raw_days",
        ]

    def clean_soft_bounce_threshold(self) -> int:
        value = self.cleaned_data["soft_bounce_threshold"]
        if not 1 <= value <= 100:
            raise forms.ValidationError("Between 1 and 100 soft bounces.")
        return value

    def clean_soft_bounce_window_days(self) -> int:
        value = self.cleaned_data["soft_bounce_window_days"]
        if not 1 <= value <= 365:
            raise forms.ValidationError("Between 1 and 365 days.")
        return value


class MailboxForm(forms.ModelForm):
    password = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        required=False,
        help_text="Stored encrypted and never shown again; leave empty to keep the current one.",
    )

    class Meta:
        model = BounceMailbox
        fields = [
            "name",
            "protocol",
            "host",
            "port",
            "security",
            "verify_certificate",
            "username",
            "folder",
            "delete_processed",
            "max_per_poll",
            "enabled",
        ]

    def clean_host(self) -> str:
        host = self.cleaned_data["host"].strip()
        if not host or any(c in host for c in " /\\@\r\n"):
            raise forms.ValidationError("A host name or IP address, without scheme or path.")
        return host

    def clean_port(self) -> int:
        port = self.cleaned_data["port"]
        if not 1 <= port <= 65535:
            raise forms.ValidationError("A port between 1 and 65535.")
        return port

    def clean(self):
        cleaned = super().clean()
        if not self.instance.pk and not cleaned.get("password"):
            self.add_error("password", "A new mailbox needs its password.")
        return cleaned
