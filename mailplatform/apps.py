from django.apps import AppConfig


class MailplatformConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "mailplatform"
    verbose_name = "Platform"

    def ready(self) -> None:
        from mailplatform import beat

        beat.every(300, "mailplatform.tasks.webhook_sweep", name="webhook-sweep")
