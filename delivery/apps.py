from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "delivery"

    def ready(self) -> None:
        from contacts.signals import confirmation_requested
        from delivery.receivers import send_confirmation

        confirmation_requested.connect(send_confirmation, dispatch_uid="delivery.send_confirmation")

        # A SIGTERM'd worker tells its runners to hand back their work (delivery.liveness).
        from celery.signals import worker_ready, worker_shutting_down

        from delivery import liveness

        worker_shutting_down.connect(
            liveness.worker_shutting_down, dispatch_uid="delivery.worker_shutting_down"
        )
        worker_ready.connect(liveness.worker_ready, dispatch_uid="delivery.worker_ready")
