from django.apps import AppConfig


class ContactsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "contacts"

    def ready(self) -> None:
        from contacts.selectors import (
            contact_merge_data,
            contacts_exist,
            custom_field_names,
            import_backlog_metrics,
        )
        from mailplatform import beat, firstrun, lookups, metrics

        # Templates renders previews for a real contact without importing contacts.
        lookups.offer(lookups.CONTACT_MERGE_DATA, contact_merge_data)
        # ...and checks a template's contact.<key> against the custom fields that exist.
        lookups.offer(lookups.CUSTOM_FIELD_NAMES, custom_field_names)
        beat.every(5, "contacts.webhook_tasks.forward_subscriptions", name="webhook-forward-contacts")
        metrics.register("contacts", import_backlog_metrics)
        firstrun.step(20, "Import your contacts", "contacts:imports", contacts_exist)
