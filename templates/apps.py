from django.apps import AppConfig


class TemplatesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "templates"
    # "templates" as a label would clash with nothing in Django, but reads badly in admin URLs.
    label = "email_templates"
    verbose_name = "Email templates"
