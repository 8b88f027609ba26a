from django.apps import AppConfig


class BouncesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "delivery.bounces"
    label = "bounces"
    verbose_name = "Bounces and complaints"

    def ready(self) -> None:
        from anymail.signals import tracking
        from django.conf import settings

        from mailplatform import beat

        beat.every(
            settings.BOUNCE_POLL_SECONDS,
            "delivery.bounces.tasks.bounce_mailboxes_poll",
            name="bounce-mailboxes-poll",
        )

        from delivery.bounces.webhooks import handle_tracking

        tracking.connect(handle_tracking, dispatch_uid="bounces.anymail_tracking")
