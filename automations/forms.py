"""Dashboard forms: the automation's settings, a step's settings (fields shown by kind), a recipe."""

from __future__ import annotations

from typing import Any

from django import forms

from automations.models import Automation, EntryPolicy, Step, StepKind, Trigger

UNITS = [("60", "minutes"), ("3600", "hours"), ("86400", "days")]
WEEKDAYS = [
    (str(i), d)
    for i, d in enumerate(["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"])
]


def _lists():
    from contacts.models import MailingList

    return MailingList.objects.order_by("name")


def _segments():
    from contacts.models import Segment

    return Segment.objects.order_by("name")


def _templates():
    from templates.models import EmailTemplate

    return EmailTemplate.objects.filter(kind=EmailTemplate.Kind.TEMPLATE, archived=False).order_by("name")


def _fields(kind: str = "") -> list[tuple[str, str]]:
    from contacts.models import CustomField

    fields = CustomField.objects.order_by("name")
    if kind:
        fields = fields.filter(type=kind)
    return [(f.name, f.label or f.name) for f in fields]


class AutomationForm(forms.ModelForm):
    class Meta:
        model = Automation
        fields = [
            "name", "trigger", "trigger_list", "trigger_segment", "trigger_field", "trigger_hour", "trigger_event",
            "trigger_campaign_id", "entry_policy", "entry_days", "exit_segment", "exit_on_unsubscribe",
            "from_email", "from_name",
        ]  # fmt: skip
        labels = {
            "trigger_list": "List (joined a list)",
            "trigger_segment": "Segment (entered a segment)",
            "trigger_field": "Date field (a date comes round)",
            "trigger_hour": "At local hour",
            "trigger_event": "Event name (an event was posted)",
            "trigger_campaign_id": "Campaign id (opened or clicked)",
            "exit_segment": "Exit when the contact enters",
            "exit_on_unsubscribe": "End the run when the contact unsubscribes from the list",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["trigger_field"] = forms.ChoiceField(
            choices=[("", "—"), *_fields("date")], required=False, label=self.Meta.labels["trigger_field"]
        )

    def changes(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        for name in ("trigger_list", "trigger_segment", "exit_segment"):
            value = data.pop(name)
            data[f"{name}_id"] = value.pk if value is not None else None
        return data


class StepForm(forms.Form):
    """Every setting a step may have; the page shows only those of the step's kind (FIELDS_BY_KIND)."""

    template = forms.ModelChoiceField(queryset=None, required=False, empty_label="Choose a template")
    mode = forms.ChoiceField(
        choices=[("duration", "for a time"), ("weekday", "until a weekday and time"), ("date_field", "until a date field")],
        required=False, label="Wait",
    )  # fmt: skip
    amount = forms.IntegerField(min_value=0, required=False, initial=1)
    unit = forms.ChoiceField(choices=UNITS, required=False, initial="86400")
    weekday = forms.ChoiceField(choices=WEEKDAYS, required=False)
    time = forms.CharField(
        required=False, initial="09:00", max_length=5, help_text="HH:MM in the contact's time zone"
    )
    condition = forms.ChoiceField(
        choices=[("opened", "opened the previous mail"), ("clicked", "clicked in the previous mail"),
                 ("field", "a field"), ("segment", "is in a segment"), ("event", "an event happened")],
        required=False, label="Continue if the contact",
    )  # fmt: skip
    deadline_days = forms.IntegerField(min_value=0, required=False, initial=3, label="Within (days)")
    field = forms.ChoiceField(choices=[], required=False)
    op = forms.ChoiceField(
        choices=[("equals", "equals"), ("not_equals", "does not equal"), ("is_set", "is set")], required=False
    )
    value = forms.CharField(required=False, max_length=500)
    segment_id = forms.ModelChoiceField(queryset=None, required=False, label="Segment")
    event = forms.CharField(required=False, max_length=100, label="Event name")
    percent = forms.IntegerField(
        min_value=0, max_value=100, required=False, initial=50, label="Share that continues (%)"
    )
    list_id = forms.ModelChoiceField(queryset=None, required=False, label="List")
    url = forms.URLField(required=False, label="Webhook URL", assume_scheme="https")
    otherwise = forms.ChoiceField(choices=[], required=False, label="Otherwise go to")

    def __init__(
        self, *args: Any, step: Step | None = None, later: list[Step] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["template"].queryset = _templates()
        self.fields["segment_id"].queryset = _segments()
        self.fields["list_id"].queryset = _lists()
        self.fields["field"].choices = [("", "—"), *_fields()]
        self.fields["otherwise"].choices = [
            ("", "the end"),
            *[(s.key, f"step {s.position}: {s.get_kind_display()}") for s in later or []],
        ]
        if step is not None and not self.is_bound:
            self.initial.update(initial_for(step))

    def values(self, kind: str) -> tuple[int | None, dict[str, Any]]:
        """(template id, config) for a step of this kind."""
        data = self.cleaned_data
        template = data.get("template")
        config: dict[str, Any] = {}
        for name in FIELDS_BY_KIND.get(kind, ()):
            value = data.get(name)
            if name in ("segment_id", "list_id"):
                value = value.pk if value is not None else None
            if name in ("template", "amount", "unit", "deadline_days"):
                continue
            config[name] = value
        if kind == StepKind.WAIT and (data.get("mode") or "duration") == "duration":
            config["seconds"] = int(data.get("amount") or 0) * int(data.get("unit") or 86400)
        if kind == StepKind.BRANCH and data.get("condition") in ("opened", "clicked", None, ""):
            config["deadline_seconds"] = int(data.get("deadline_days") or 0) * 86400
        return (template.pk if template is not None else None), config


FIELDS_BY_KIND = {
    StepKind.SEND: ("template",),
    StepKind.WAIT: ("mode", "amount", "unit", "weekday", "time", "field"),
    StepKind.BRANCH: (
        "condition",
        "deadline_days",
        "field",
        "op",
        "value",
        "segment_id",
        "event",
        "otherwise",
    ),
    StepKind.SPLIT: ("percent", "otherwise"),
    StepKind.UPDATE_FIELD: ("field", "value"),
    StepKind.ADD_LIST: ("list_id",),
    StepKind.REMOVE_LIST: ("list_id",),
    StepKind.WEBHOOK: ("url",),
    StepKind.END: (),
}


def initial_for(step: Step) -> dict[str, Any]:
    config = dict(step.config or {})
    initial: dict[str, Any] = {**config, "template": step.template_id}
    seconds = int(config.get("seconds", 0) or 0)
    for unit, _ in reversed(UNITS):
        if seconds and seconds % int(unit) == 0:
            initial.update(amount=seconds // int(unit), unit=unit)
            break
    if "deadline_seconds" in config:
        initial["deadline_days"] = int(config["deadline_seconds"]) // 86400
    return initial


def describe(step: Step) -> str:
    """One line that says what the step does, for the flow."""
    config = step.config or {}
    kind = step.kind
    if kind == StepKind.SEND:
        return (
            f"Send “{step.template.name}”"
            if step.template_id and step.template
            else "Send (no template chosen)"
        )
    if kind == StepKind.WAIT:
        mode = config.get("mode", "duration")
        if mode == "weekday":
            return f"Wait until {WEEKDAYS[int(config.get('weekday', 0))][1]} {config.get('time', '09:00')} (contact's time)"
        if mode == "date_field":
            return f"Wait until the date in {config.get('field')} at {config.get('time', '09:00')}"
        seconds = int(config.get("seconds", 0))
        for unit, name in reversed(UNITS):
            if seconds and seconds % int(unit) == 0:
                return f"Wait {seconds // int(unit)} {name}"
        return "Wait 0 minutes"
    if kind == StepKind.BRANCH:
        condition = config.get("condition", "opened")
        if condition in ("opened", "clicked"):
            days = int(config.get("deadline_seconds", 0)) // 86400
            return f"If they {condition} the previous mail within {days} days"
        if condition == "field":
            return f"If {config.get('field')} {config.get('op', 'equals').replace('_', ' ')} {config.get('value', '')}".strip()
        if condition == "segment":
            return f"If in segment #{config.get('segment_id')}"
        return f"If the event “{config.get('event')}” happened"
    if kind == StepKind.SPLIT:
        return f"Random split: {config.get('percent', 50)}% continue"
    if kind == StepKind.UPDATE_FIELD:
        return f"Set {config.get('field')} to “{config.get('value', '')}”"
    if kind in (StepKind.ADD_LIST, StepKind.REMOVE_LIST):
        return f"{step.get_kind_display()} #{config.get('list_id')}"
    if kind == StepKind.WEBHOOK:
        return f"Call {config.get('url')}"
    return "End"


class RecipeForm(forms.Form):
    trigger_list = forms.ModelChoiceField(
        queryset=None, required=False, label="List", empty_label="Choose a list"
    )
    trigger_segment = forms.ModelChoiceField(
        queryset=None, required=False, label="Segment of inactive contacts"
    )
    trigger_field = forms.ChoiceField(choices=[], required=False, label="Birthday field")
    from_email = forms.EmailField(
        required=False, label="From address", help_text="Blank: the platform's default."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["trigger_list"].queryset = _lists()
        self.fields["trigger_segment"].queryset = _segments()
        self.fields["trigger_field"].choices = [("", "—"), *_fields("date")]


class EnrolForm(forms.Form):
    segment = forms.ModelChoiceField(queryset=None, required=False, label="Everyone in segment")
    mailing_list = forms.ModelChoiceField(queryset=None, required=False, label="Everyone on list")
    emails = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), label="Or these addresses"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["segment"].queryset = _segments()
        self.fields["mailing_list"].queryset = _lists()


__all__ = ["AutomationForm", "EntryPolicy", "RecipeForm", "StepForm", "Trigger", "describe"]
