from django.contrib import admin

from delivery.models import Mailing, Message, MessageEvent, Relay, SendingIdentity


@admin.register(Relay)
class RelayAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "host",
        "port",
        "security",
        "enabled",
        "weight",
        "consecutive_failures",
        "backed_off_until",
    ]
    # The encrypted password is never shown; set it from the dashboard's relay form.
    exclude = ["password_encrypted"]
    readonly_fields = [
        "last_error",
        "last_error_at",
        "last_success_at",
        "consecutive_failures",
        "capabilities",
    ]


@admin.register(SendingIdentity)
class SendingIdentityAdmin(admin.ModelAdmin):
    list_display = ["address", "dkim_selector", "enabled"]
    exclude = ["dkim_private_key_encrypted"]
    readonly_fields = ["dkim_public_key"]


@admin.register(Mailing)
class MailingAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "kind", "state", "send_group", "created_at"]
    list_filter = ["kind", "state"]
    # A Mailing is a snapshot: nothing but its state changes after creation.
    readonly_fields = [f.name for f in Mailing._meta.fields if f.name != "state"]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["id", "email", "mailing", "state", "attempts", "smtp_code", "sent_at"]
    list_filter = ["state"]
    search_fields = ["=email"]
    raw_id_fields = ["mailing", "contact", "relay"]
    show_full_result_count = False  # counting 100M rows per page view is not an option

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(MessageEvent)
class MessageEventAdmin(admin.ModelAdmin):
    list_display = ["id", "message", "kind", "at"]
    list_filter = ["kind"]
    raw_id_fields = ["message", "mailing"]
    show_full_result_count = False
