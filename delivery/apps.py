from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "delivery"

    def ready(self) -> None:
        from contacts.signals import confirmation_requested
        from delivery.receivers import send_confirmation

        confirmation_requested.connect(send_confirmation, dispatch_uid="delivery.send_confirmation")
