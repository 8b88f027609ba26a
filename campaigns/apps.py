from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "campaigns"

    def ready(self) -> None:
        from django.conf import settings

        from mailplatform import beat

        # Starts due campaigns, decides A/B tests and runs the deliverability guard.
        beat.every(settings.CAMPAIGNS_TICK_SECONDS, "campaigns.tasks.tick", name="campaigns-tick")
