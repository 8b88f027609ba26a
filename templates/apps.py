from django.apps import AppConfig


class TemplatesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "templates"
    # "templates" as a label would clash with nothing in Django, but reads badly in admin URLs.
    label = "email_templates"
    verbose_name = "Email templates"

    def ready(self) -> None:
        from mailplatform import firstrun
        from templates.selectors import templates_exist

        firstrun.step(30, "Create an email template", "templates:index", templates_exist)
