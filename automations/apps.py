from django.apps import AppConfig


class AutomationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "automations"

    def ready(self) -> None:
        from django.conf import settings

        from automations.receivers import list_joined, messages_engaged
        from automations.selectors import scheduler_backlog_metrics
        from contacts.signals import subscription_confirmed
        from delivery.signals import messages_engaged as engaged_signal
        from mailplatform import beat, metrics

        # Joined a list (confirmed, on a double opt-in list): contacts sends, automations listens.
        subscription_confirmed.connect(list_joined, dispatch_uid="automations.list_joined")
        # A person opened or clicked a message: delivery sends, automations wakes the run waiting on it.
        engaged_signal.connect(messages_engaged, dispatch_uid="automations.messages_engaged")
        beat.every(settings.AUTOMATIONS_TICK_SECONDS, "automations.tasks.tick", name="automations-tick")
        beat.every(
            settings.AUTOMATIONS_TRIGGERS_SECONDS, "automations.tasks.triggers", name="automations-triggers"
        )
        metrics.register("automations", scheduler_backlog_metrics)
