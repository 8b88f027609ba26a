from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "campaigns"

    def ready(self) -> None:
        from django.conf import settings

        from campaigns.selectors import a_campaign_was_sent
        from mailplatform import beat, firstrun

        # Starts due campaigns, decides A/B tests and runs the deliverability guard.
        beat.every(settings.CAMPAIGNS_TICK_SECONDS, "campaigns.tasks.tick", name="campaigns-tick")
        firstrun.step(50, "Send a campaign", "campaigns:index", a_campaign_was_sent)
