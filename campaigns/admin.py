from django.contrib import admin

from campaigns.models import Campaign, GuardLimits


@admin.register(GuardLimits)
class GuardLimitsAdmin(admin.ModelAdmin):
    list_display = ("hard_bounce_percent", "complaint_percent", "min_messages", "window")

    def has_add_permission(self, request) -> bool:
        return not GuardLimits.objects.exists()


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ("name", "state", "scheduled_at", "started_at", "finished_at")
    list_filter = ("state",)
    readonly_fields = ("state", "mailing", "winner", "state_reason")
