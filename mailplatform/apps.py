from django.apps import AppConfig


class MailplatformConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "mailplatform"
    verbose_name = "Platform"
