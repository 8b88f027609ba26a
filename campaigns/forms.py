"""Forms of the campaign wizard: each step saves through campaigns.services.campaign_update."""

from __future__ import annotations

import zoneinfo
from functools import lru_cache
from typing import Any

from django import forms

from campaigns.models import Campaign, WinnerMetric


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
    ab_test_percent = forms.IntegerField(
        min_value=1, max_value=100, label="A/B test share (% of the audience)"
    )
    ab_metric = forms.ChoiceField(choices=WinnerMetric.choices, label="A/B winner by")
    ab_wait_minutes = forms.IntegerField(
        min_value=1, max_value=60 * 24 * 14, label="A/B test runs for (minutes)"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["relays"].queryset = _relays()

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
                    "ab_test_percent",
                    "ab_metric",
                    "ab_wait_minutes",
                )
            },  # fmt: skip
            "relays": list(campaign.relays.values_list("pk", flat=True)),
        }

    def changes(self) -> dict[str, Any]:
        return dict(self.cleaned_data)


@lru_cache(maxsize=1)
def timezone_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in sorted(zoneinfo.available_timezones()) if "/" in name or name == "UTC"]


class ScheduleForm(forms.Form):
    local_time = forms.DateTimeField(
        label="Send at", widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"],
    )  # fmt: skip
    timezone = forms.ChoiceField(label="Time zone", initial="UTC")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["timezone"].choices = timezone_choices()


class TestSendForm(forms.Form):
    email = forms.EmailField(label="Send a test to")
    variant = forms.CharField(required=False, max_length=1)
