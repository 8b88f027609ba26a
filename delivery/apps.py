from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "delivery"

    def ready(self) -> None:
        from django.conf import settings

        from contacts.signals import confirmation_requested
        from delivery import metrics as delivery_metrics
        from delivery.receivers import send_confirmation, send_password_reset
        from delivery.selectors import (
            a_test_was_sent,
            mailing_activity_sql,
            mailing_choices,
            mailing_groups,
            sending_is_set_up,
        )
        from mailplatform import beat, firstrun, lookups, metrics
        from mailplatform.signals import password_reset_requested

        confirmation_requested.connect(send_confirmation, dispatch_uid="delivery.send_confirmation")
        password_reset_requested.connect(send_password_reset, dispatch_uid="delivery.send_password_reset")
        beat.every(
            settings.DELIVERY_WATCHDOG_SECONDS, "delivery.tasks.send_watchdog", name="delivery-watchdog"
        )
        beat.every(3600, "delivery.tasks.ledger_prune", name="delivery-prune")
        beat.every(
            settings.TRACKING_FLUSH_SECONDS, "delivery.tasks.tracking_flush", name="delivery-tracking-flush"
        )
        beat.every(5, "delivery.webhook_tasks.forward_message_events", name="webhook-forward-delivery")
        metrics.register("delivery", delivery_metrics.collect)
        # The segment builder's "opened / clicked the mailing ..." menu (contacts may not import us).
        lookups.offer(lookups.MAILING_CHOICES, mailing_choices)
        # Segment rules on what a contact did with a campaign's mail (contacts cannot read the ledger).
        lookups.offer(lookups.MAILING_ACTIVITY_SQL, mailing_activity_sql)
        lookups.offer(lookups.MAILING_GROUPS, mailing_groups)
        firstrun.step(10, "Add a sending identity and a relay", "delivery:relays", sending_is_set_up)
        firstrun.step(40, "Send yourself a test", "campaigns:index", a_test_was_sent)

        # A SIGTERM'd worker tells its runners to hand back their work (delivery.liveness).
        from celery.signals import worker_ready, worker_shutting_down

        from delivery import liveness

        worker_shutting_down.connect(
            liveness.worker_shutting_down, dispatch_uid="delivery.worker_shutting_down"
        )
        worker_ready.connect(liveness.worker_ready, dispatch_uid="delivery.worker_ready")
        import atexit

        atexit.register(liveness.exit_without_teardown)
