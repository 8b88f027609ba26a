"""Dashboard forms for templates."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.db.models import Q

from mailplatform import jsonlimits
from templates.models import EmailTemplate, SourceFormat
from templates.starters import STARTERS

BODY_LABELS = {
    SourceFormat.HTML: "HTML",
    SourceFormat.MJML: "MJML",
    SourceFormat.MARKDOWN: "Markdown",
    SourceFormat.BLOCKS: "Block document",
}

MAX_PREVIEW_DATA = 64 * 1024


class TemplateForm(forms.Form):
    name = forms.CharField(max_length=200)
    subject = forms.CharField(max_length=998, required=False)
    preheader = forms.CharField(
        max_length=300,
        required=False,
        help_text="Shown after the subject in most inboxes; hidden in the body.",
    )
    layout = forms.ModelChoiceField(
        queryset=EmailTemplate.objects.none(), required=False, empty_label="No base layout"
    )
    html = forms.CharField(widget=forms.Textarea(attrs={"rows": 24, "spellcheck": "false"}), label="HTML")
    # Changed only through "switch mode" (templates.formats.switch_format); the preview reads it.
    source_format = forms.ChoiceField(choices=SourceFormat.choices, required=False, widget=forms.HiddenInput)
    text = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}),
        required=False,
        label="Plain-text part",
        help_text="Leave empty to derive it from the HTML.",
    )
    transactional = forms.BooleanField(
        required=False,
        label="Transactional",
        help_text="Receipts, password resets: sent to one person on request, no unsubscribe link required.",
    )
    note = forms.CharField(max_length=300, required=False, label="Version note")

    def __init__(self, *args: Any, template: EmailTemplate | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        source_format = template.source_format if template is not None else SourceFormat.HTML
        self.fields["html"].label = BODY_LABELS.get(source_format, "HTML")
        if source_format == SourceFormat.BLOCKS:
            # The block editor (blocks.js) keeps this in step with the blocks on the page.
            self.fields["html"].widget.attrs.update(hidden=True, rows=4)
        if source_format != SourceFormat.HTML:
            self.fields["text"].help_text = "Leave empty to derive it from the compiled HTML."
        usable = Q(archived=False)
        if template is not None and template.layout_id:
            usable |= Q(pk=template.layout_id)  # an archived layout in use stays selectable
        layouts = EmailTemplate.objects.filter(usable, kind=EmailTemplate.Kind.LAYOUT)
        if template is not None:
            layouts = layouts.exclude(pk=template.pk)
        if template is not None and template.kind == EmailTemplate.Kind.LAYOUT:
            del self.fields["layout"]  # layouts do not nest
        else:
            self.fields["layout"].queryset = layouts.order_by("name")


class PreviewForm(TemplateForm):
    """The editor's unsaved content plus the data to render it with."""

    name = forms.CharField(max_length=200, required=False)
    html = forms.CharField(required=False)
    part = forms.ChoiceField(choices=[("html", "HTML"), ("text", "Text")], required=False)
    preview_data = forms.CharField(required=False, max_length=MAX_PREVIEW_DATA)

    def clean_preview_data(self) -> dict[str, Any] | None:
        raw = self.cleaned_data.get("preview_data") or ""
        if not raw.strip():
            return None
        try:
            data = jsonlimits.loads(raw)
        except jsonlimits.JSONTooDeep as exc:
            raise forms.ValidationError(f"Preview data is not accepted: {exc}") from None
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(
                f"Preview data is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("contact", {}), dict):
            raise forms.ValidationError(
                'Preview data must be an object like {"contact": {"first_name": "Ada"}}'
            )
        return data


class NewTemplateForm(forms.Form):
    # Blank templates, one per source format: key, name, description.
    BLANK_FORMATS = [
        ("blocks", "Blank: blocks", "Drag headings, text, images, buttons and columns; no HTML needed."),
        ("mjml", "Blank: MJML", "Responsive e-mail markup, compiled on the server."),
        (
            "markdown",
            "Blank: Markdown",
            "Plain writing with # headings, **bold** and [links](...), in a layout.",
        ),
    ]
    name = forms.CharField(max_length=200)
    starter = forms.ChoiceField(
        choices=[
            ("", "Blank"),
            ("layout", "Base layout"),
            *((key, name) for key, name, _ in BLANK_FORMATS),
            *((k, s.name) for k, s in STARTERS.items()),
        ],
        required=False,
    )
