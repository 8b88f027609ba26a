"""Forms of the campaign wizard: each step saves through campaigns.services.campaign_update."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from campaigns.models import Campaign, WinnerMetric
from mailplatform.locales import timezone_groups


def _templates():
    from templates.models import EmailTemplate

    return EmailTemplate.objects.filter(kind=EmailTemplate.Kind.TEMPLATE, archived=False).order_by("name")


def _lists():
    from contacts.models import MailingList

    return MailingList.objects.order_by("name")


def _segments():
    from contacts.models import Segment

    return Segment.objects.order_by("name")


def _relays():
    from delivery.models import Relay

    return Relay.objects.filter(enabled=True).order_by("name")


VARIANT_LABELS = "BCD"


class ContentForm(forms.Form):
    name = forms.CharField(max_length=200)
    subject = forms.CharField(max_length=998, required=False, help_text="Blank: the template's subject.")
    preheader = forms.CharField(max_length=300, required=False)
    template = forms.ModelChoiceField(queryset=None, empty_label="Choose a template")
    ab_test = forms.BooleanField(required=False, label="A/B test: send variants to a test share first")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["template"].queryset = _templates()
        for label in VARIANT_LABELS:
            self.fields[f"variant_{label}_subject"] = forms.CharField(
                max_length=998, required=False, label=f"Variant {label} subject"
            )
            self.fields[f"variant_{label}_template"] = forms.ModelChoiceField(
                queryset=_templates(), required=False, label=f"Variant {label} template",
                empty_label="Same template as A",
            )  # fmt: skip

    @classmethod
    def initial_for(cls, campaign: Campaign) -> dict[str, Any]:
        initial: dict[str, Any] = {
            "name": campaign.name,
            "subject": campaign.subject,
            "preheader": campaign.preheader,
            "template": campaign.template_id,
            "ab_test": campaign.ab_test,
        }
        for variant in campaign.variants.exclude(label="A"):
            initial[f"variant_{variant.label}_subject"] = variant.subject
            initial[f"variant_{variant.label}_template"] = variant.template_id
        return initial

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        arms = [
            {
                "subject": data.get(f"variant_{label}_subject", ""),
                "template": data.get(f"variant_{label}_template"),
            }
            for label in VARIANT_LABELS
        ]
        arms = [arm for arm in arms if arm["subject"] or arm["template"]]
        if data.get("ab_test") and not arms:
            raise forms.ValidationError(
                "An A/B test needs at least variant B: give it a subject or a template."
            )
        data["variants"] = [{"subject": "", "template": None}, *arms] if data.get("ab_test") else []
        return data

    def changes(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "name": data["name"],
            "subject": data["subject"],
            "preheader": data["preheader"],
            "template": data["template"],
            "ab_test": data["ab_test"],
            "variants": data["variants"],
        }


class AudienceForm(forms.Form):
    lists = forms.ModelMultipleChoiceField(queryset=None, widget=forms.CheckboxSelectMultiple)
    segment = forms.ModelChoiceField(queryset=None, required=False, empty_label="Everyone on the lists")
    exclude_lists = forms.ModelMultipleChoiceField(
        queryset=None, required=False, widget=forms.CheckboxSelectMultiple, label="Exclude lists"
    )
    frequency_cap_hours = forms.IntegerField(
        min_value=0, max_value=24 * 90, initial=0, label="Frequency cap (hours)",
        help_text="Skip contacts mailed in the last N hours; 0 turns the cap off.",
    )  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["lists"].queryset = _lists()
        self.fields["exclude_lists"].queryset = _lists()
        self.fields["segment"].queryset = _segments()

    @classmethod
    def initial_for(cls, campaign: Campaign) -> dict[str, Any]:
        return {
            "lists": list(campaign.lists.values_list("pk", flat=True)),
            "exclude_lists": list(campaign.exclude_lists.values_list("pk", flat=True)),
            "segment": campaign.segment_id,
            "frequency_cap_hours": campaign.frequency_cap_hours,
        }

    def changes(self) -> dict[str, Any]:
        return dict(self.cleaned_data)


class SettingsForm(forms.Form):
    from_email = forms.EmailField(max_length=254, label="From address")
    from_name = forms.CharField(max_length=200, required=False, label="From name")
    reply_to = forms.EmailField(max_length=254, required=False, label="Reply-to")
    relays = forms.ModelMultipleChoiceField(
        queryset=None, required=False, widget=forms.CheckboxSelectMultiple,
        help_text="None chosen: every enabled relay.",
    )  # fmt: skip
    track_opens = forms.BooleanField(required=False, label="Track opens (invisible image)")
    track_clicks = forms.BooleanField(required=False, label="Track clicks (links through this platform)")
    utm_enabled = forms.BooleanField(
        required=False, label="Add UTM tags to tracked links",
        help_text="So your web analytics can tell visits from this campaign apart. Links that carry "
        "their own utm_ values keep them.",
    )  # fmt: skip
    utm_source = forms.CharField(max_length=100, required=False, label="utm_source")
    utm_medium = forms.CharField(max_length=100, required=False, label="utm_medium")
    utm_campaign = forms.CharField(
        max_length=100,
        required=False,
        label="utm_campaign",
        help_text="Empty: made from the campaign's name.",
    )
    ab_test_percent = forms.IntegerField(
        min_value=1, max_value=100, label="A/B test share (% of the audience)"
    )
    ab_metric = forms.ChoiceField(choices=WinnerMetric.choices, label="A/B winner by")
    ab_wait_minutes = forms.IntegerField(
        min_value=1, max_value=60 * 24 * 14, label="A/B test runs for (minutes)"
    )

    window_start = forms.TimeField(
        required=False, label="Send only from", widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        help_text="Optional sending window: outside it mail waits in the queue and goes when it opens.",
    )  # fmt: skip
    window_end = forms.TimeField(
        required=False, label="Send only until", widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        help_text="Earlier than the start: the window runs over midnight.",
    )  # fmt: skip
    window_timezone = forms.ChoiceField(label="Sending window's time zone", required=False)

    AB_FIELDS = ("ab_test_percent", "ab_metric", "ab_wait_minutes")

    def __init__(self, *args: Any, ab_test: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["relays"].queryset = _relays()
        self.fields["window_timezone"].choices = [
            ("contact", "Each contact's own time zone"),
            *timezone_choices(),
        ]
        if not ab_test:  # no A/B test: its settings are neither shown nor changed
            for name in self.AB_FIELDS:
                del self.fields[name]

    @classmethod
    def initial_for(cls, campaign: Campaign) -> dict[str, Any]:
        return {
            **{
                name: getattr(campaign, name)
                for name in (
                    "from_email",
                    "from_name",
                    "reply_to",
                    "track_opens",
                    "track_clicks",
                    "utm_enabled",
                    "utm_source",
                    "utm_medium",
                    "utm_campaign",
                    "ab_test_percent",
                    "ab_metric",
                    "ab_wait_minutes",
                    "window_start",
                    "window_end",
                    "window_timezone",
                )
            },  # fmt: skip
            "relays": list(campaign.relays.values_list("pk", flat=True)),
        }

    def changes(self) -> dict[str, Any]:
        return dict(self.cleaned_data)


def timezone_choices() -> list[tuple[str, list[tuple[str, str]]]]:
    """Grouped by region (an <optgroup> each), the city as people write it: not ~600 raw IDs."""
    return timezone_groups()


class ScheduleForm(forms.Form):
    local_time = forms.DateTimeField(
        label="Send at", widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"],
    )  # fmt: skip
    timezone = forms.ChoiceField(label="Time zone", initial="UTC")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["timezone"].choices = timezone_choices()


TEST_SEND_MAX_ADDRESSES = 5


class TestSendForm(forms.Form):
    to = forms.CharField(
        label="Send a test to", max_length=1300,
        help_text=f"Up to {TEST_SEND_MAX_ADDRESSES} addresses, separated by commas or spaces.",
    )  # fmt: skip
    as_contact = forms.EmailField(
        required=False, max_length=254, label="As the contact",
        help_text="Merge fields are filled from this contact; blank: the audience's first contact.",
    )  # fmt: skip
    variant = forms.CharField(required=False, max_length=1)

    def clean_to(self) -> list[str]:
        addresses = list(dict.fromkeys(a for a in re.split(r"[\s,;]+", self.cleaned_data["to"]) if a))
        if not addresses:
            raise forms.ValidationError("Enter at least one address.")
        if len(addresses) > TEST_SEND_MAX_ADDRESSES:
            raise forms.ValidationError(f"At most {TEST_SEND_MAX_ADDRESSES} addresses per test.")
        bad = []
        for address in addresses:
            try:
                validate_email(address)
            except ValidationError:
                bad.append(address)
        if bad:
            raise forms.ValidationError(f"Not an email address: {', '.join(bad)}.")
        return addresses


class ConfirmForm(forms.Form):
    """The last step before a campaign goes out (now or scheduled): the recipient count the person
    was shown must still be the count, and above CAMPAIGNS_CONFIRM_TYPED_ABOVE they type the count
    or the campaign's name. Checked here, on the server: a click alone never mails thousands."""

    shown_count = forms.IntegerField(
        widget=forms.HiddenInput, min_value=0,
        error_messages={"required": "Confirm on this page: it names what will be sent to whom."},
    )  # fmt: skip
    typed = forms.CharField(required=False, max_length=300)

    def __init__(self, *args: Any, campaign: Campaign, count: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.campaign = campaign
        self.count = count
        self.fields["shown_count"].initial = count
        self.needs_typing = count > settings.CAMPAIGNS_CONFIRM_TYPED_ABOVE
        if self.needs_typing:
            typed = self.fields["typed"]
            typed.required = True
            typed.label = f"To confirm, type {count} (the number of recipients) or the campaign's name"
            typed.error_messages["required"] = f"Type {count} or the campaign's name to confirm."
            typed.widget.attrs.update(autocomplete="off", inputmode="text")
        else:
            del self.fields["typed"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        shown = data.get("shown_count")
        if shown is not None and shown != self.count:
            # Not the hidden field's error: the whole confirmation is about another audience now.
            raise forms.ValidationError(
                f"The audience changed from {shown} to {self.count} recipients since you looked: "
                "check the numbers below and confirm again."
            )
        return data

    def clean_typed(self) -> str:
        typed = self.cleaned_data.get("typed", "").strip()
        as_number = typed.replace(",", "").replace(".", "").replace(" ", "").replace("\u202f", "")
        if as_number == str(self.count) or typed.casefold() == self.campaign.name.strip().casefold():
            return typed
        raise forms.ValidationError(f"That is neither {self.count} nor the campaign's name.")
