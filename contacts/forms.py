"""Dashboard and public forms. Every value is checked here or in the service it reaches."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.text import slugify

from contacts.models import (
    ContactStatus,
    CustomField,
    FieldType,
    ImportMode,
    MailingList,
    Segment,
    SignupForm,
)
from contacts.segments import OPS_BY_KIND, SegmentError, available_fields
from contacts.validation import EmailError, check_contact_language, check_contact_timezone, check_email
from mailplatform.forms import TimezoneInput
from mailplatform.locales import LANGUAGE_MAX, TIMEZONE_MAX


def _email(value: str) -> str:
    try:
        return check_email(value)
    except EmailError as exc:
        raise ValidationError(str(exc)) from None


class _ContactFieldsForm(forms.Form):
    """The fields a person edits on a contact: names, language, time zone and every custom field."""

    first_name = forms.CharField(max_length=200, required=False)
    last_name = forms.CharField(max_length=200, required=False)
    language = forms.CharField(
        max_length=LANGUAGE_MAX, required=False, help_text="A language tag such as en, de-CH or pt-BR."
    )
    timezone = forms.CharField(
        max_length=TIMEZONE_MAX,
        required=False,
        label="Time zone",
        help_text="Type a city or region (Berlin, New York) and pick from the suggestions.",
        widget=TimezoneInput,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["language"].widget.attrs["placeholder"] = f"{settings.DEFAULT_LANGUAGE} (the default)"
        self.fields["timezone"].widget.attrs["placeholder"] = f"{settings.DEFAULT_TIMEZONE} (the default)"
        for field in CustomField.objects.order_by("name"):
            self.fields[f"attr_{field.name}"] = _field_input(field)

    def clean_language(self) -> str:
        return _checked(check_contact_language, self.cleaned_data["language"])

    def clean_timezone(self) -> str:
        return _checked(check_contact_timezone, self.cleaned_data["timezone"])

    def attributes(self) -> dict[str, Any]:
        return {
            name[5:]: value
            for name, value in self.cleaned_data.items()
            if name.startswith("attr_") and value not in (None, "")
        }


def _checked(check: Any, value: str) -> str:
    try:
        return check(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


class ContactForm(_ContactFieldsForm):
    email = forms.CharField(max_length=320)
    lists = forms.ModelMultipleChoiceField(queryset=MailingList.objects.all(), required=False)
    field_order = ["email", "first_name", "last_name", "language", "timezone", "lists"]

    def clean_email(self) -> str:
        return _email(self.cleaned_data["email"])


class ContactEditForm(_ContactFieldsForm):
    status = forms.ChoiceField(choices=ContactStatus.choices)
    field_order = ["first_name", "last_name", "language", "timezone", "status"]


def _field_input(field: CustomField) -> forms.Field:
    label = field.label or field.name
    if field.type == FieldType.NUMBER:
        return forms.DecimalField(label=label, required=False, max_digits=30, decimal_places=10)
    if field.type == FieldType.DATE:
        return forms.DateField(label=label, required=False, widget=forms.DateInput(attrs={"type": "date"}))
    if field.type == FieldType.BOOLEAN:
        return forms.NullBooleanField(label=label, required=False)
    return forms.CharField(label=label, required=False, max_length=10_000)


class MailingListForm(forms.ModelForm):
    class Meta:
        model = MailingList
        fields = ["name", "description", "opt_in", "is_public"]
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}


class SignupFormForm(forms.ModelForm):
    redirect_url = forms.URLField(
        required=False, assume_scheme="https", max_length=200, label="Redirect URL",
        help_text="After signing up, go here instead of the thank-you message.",
    )  # fmt: skip

    class Meta:
        model = SignupForm
        fields = [
            "name", "lists", "ask_first_name", "ask_last_name", "names_required", "consent_text",
            "thank_you", "redirect_url", "refuse_flagged", "allowed_origins",
        ]  # fmt: skip
        widgets = {
            "lists": forms.CheckboxSelectMultiple,
            "consent_text": forms.Textarea(attrs={"rows": 2}),
            "thank_you": forms.Textarea(attrs={"rows": 2}),
            "allowed_origins": forms.Textarea(attrs={"rows": 3, "placeholder": "https://www.example.com"}),
        }
        help_texts = {"allowed_origins": "Sites (one origin a line) that may show the form in an iframe."}


BUILTIN_FIELD_NAMES = ("email", "first_name", "last_name", "language", "timezone", "status")


def field_key_for(label: str) -> str:
    """The attribute key a label gives: "Loyalty Points" -> "loyalty_points"."""
    return slugify(label).replace("-", "_").strip("_")[:64]


class CustomFieldForm(forms.ModelForm):
    """A label in the marketer's words; the key (what templates write as contact.<key>) is derived
    from it unless typed, and stays editable until a contact holds a value for it."""

    name = forms.CharField(
        max_length=64, required=False, label="Key",
        help_text="Used in templates as {{ contact.<em>key</em> }} and in CSV headers. Left empty, "
        "it is made from the label (Loyalty Points → loyalty_points). Letters, digits and _.",
    )  # fmt: skip

    class Meta:
        model = CustomField
        fields = ["label", "name", "type"]

    def __init__(
        self, *args: Any, key_locked: bool = False, type_locked: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["label"].help_text = "What people see, e.g. Loyalty Points."
        self.fields["name"].widget.attrs["data-key-from"] = "id_label"
        if key_locked:
            self.fields["name"].disabled = True
            self.fields["name"].help_text = "Contacts hold values under this key, so it can no longer change."
        if type_locked:
            self.fields["type"].disabled = True
            self.fields["type"].help_text = "Contacts hold values of this type, so it can no longer change."

    def clean_name(self) -> str:
        if self.fields["name"].disabled:
            return self.instance.name
        name = (self.cleaned_data.get("name") or "").strip() or field_key_for(self.data.get("label", ""))
        name = name.replace("-", "_").replace(" ", "_")
        if not name:
            raise ValidationError("Give the field a label or a key.")
        if not re.fullmatch(r"[A-Za-z0-9_]{1,64}", name):
            raise ValidationError(f"{name!r}: a key has only letters, digits and _ (no spaces or accents).")
        if name in BUILTIN_FIELD_NAMES:
            raise ValidationError(f"{name!r} is a built-in field")
        if CustomField.objects.filter(name=name).exclude(pk=self.instance.pk).exists():
            raise ValidationError(f"There is already a field with the key {name!r}.")
        return name


class SuppressionForm(forms.Form):
    value = forms.CharField(max_length=320, label="Address or domain")
    reason = forms.CharField(max_length=300, required=False)


class SegmentForm(forms.ModelForm):
    class Meta:
        model = Segment
        fields = ["name", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}


class ImportUploadForm(forms.Form):
    file = forms.FileField(label="CSV file")

    def clean_file(self):
        upload = self.cleaned_data["file"]
        limit = settings.CONTACTS_IMPORT_MAX_MB * 1024 * 1024
        if upload.size > limit:
            raise ValidationError(f"the file is larger than {settings.CONTACTS_IMPORT_MAX_MB} MB")
        if upload.size == 0:
            raise ValidationError("the file is empty")
        return upload


class ImportStartForm(forms.Form):
    mode = forms.ChoiceField(choices=ImportMode.choices, initial=ImportMode.UPSERT)
    lists = forms.ModelMultipleChoiceField(queryset=MailingList.objects.all(), required=False)
    new_list = forms.CharField(max_length=200, required=False, label="…or a new list named")
    drop_flagged = forms.BooleanField(
        required=False,
        label="Drop role and disposable addresses",
        help_text="info@, postmaster@ … and throwaway domains go to the bad rows instead of being imported.",
    )


class SubscribeForm(forms.Form):
    email = forms.CharField(max_length=320)
    first_name = forms.CharField(max_length=200, required=False)
    # Honeypot: hidden from people by CSS; bots fill every field.
    website = forms.CharField(required=False, label="Leave this empty")

    def clean_email(self) -> str:
        return _email(self.cleaned_data["email"])


# --- Segment builder: flat form fields <-> rules JSON ---


def rules_from_post(data: Any) -> dict[str, Any]:
    """Rules from the builder's fields: match, g<i>_match, g<i>_c<j>_field/_op/_value."""
    groups = []
    for g in range(20):
        if f"g{g}_match" not in data:
            continue
        conditions = []
        for c in range(50):
            field = data.get(f"g{g}_c{c}_field")
            if field is None:
                continue
            if data.get(f"g{g}_c{c}_remove"):
                continue
            condition = {
                "field": field,
                "op": data.get(f"g{g}_c{c}_op", ""),
                "value": data.get(f"g{g}_c{c}_value", ""),
            }
            if data.get(f"g{g}_c{c}_machine"):
                condition["machine"] = True
            conditions.append(condition)
        if not data.get(f"g{g}_remove"):
            groups.append({"match": data.get(f"g{g}_match", "all"), "conditions": conditions})
    return {"match": data.get("match", "all"), "groups": groups}


def builder_context(rules: dict[str, Any], error: SegmentError | None = None) -> dict[str, Any]:
    """What the builder template needs: fields with their kinds and operators, groups to draw;
    `error` is drawn on the row of the condition it names."""
    fields = available_fields()
    kinds = {f.key: f.kind for f in fields}
    groups = []
    at = (error.group, error.condition) if error is not None else None
    for g_index, group in enumerate(rules.get("groups", [])):
        conditions = []
        for c_index, cond in enumerate(group.get("conditions", [])):
            kind = kinds.get(cond.get("field"), "text")
            ops = OPS_BY_KIND.get(kind, {})
            op = cond.get("op") if cond.get("op") in ops else next(iter(ops), "")
            row_error = str(error) if at == (g_index, c_index) else ""
            conditions.append({**cond, "op": op, "kind": kind, "ops": ops.items(), "error": row_error})
        groups.append({"match": group.get("match", "all"), "conditions": conditions})
    return {
        "match": rules.get("match", "all"),
        "groups": groups,
        "fields": fields,
        "lists": MailingList.objects.order_by("name"),
        "mailings": _mailing_choices(),
        "statuses": ContactStatus.choices,
        "mailing_groups": _mailing_groups()
        if "mailing" in {c["kind"] for g in groups for c in g["conditions"]}
        else [],
    }


def _mailing_choices() -> list[tuple[int, str]]:
    """Mailings for the engagement rules' menu, from delivery through the ground floor's lookups."""
    from mailplatform import lookups

    choices = lookups.ask(lookups.MAILING_CHOICES)
    return list(choices()) if choices else []


def _mailing_groups() -> list[tuple[str, str]]:
    from mailplatform import lookups

    groups = lookups.ask(lookups.MAILING_GROUPS)
    return list(groups()) if groups is not None else []
