"""One way forms are drawn on the dashboard: Django's form rendering with our two templates.

`{{ form }}` and `{{ form.field.as_field_group }}` both draw a field as its label, help and
errors together with the input, so an error always sits under the field it is about.
"""

from __future__ import annotations

from django.forms.renderers import DjangoTemplates


class DashboardFormRenderer(DjangoTemplates):
    form_template_name = "mailplatform/forms/form.html"
    field_template_name = "mailplatform/forms/field.html"
