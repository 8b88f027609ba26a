from django.contrib import admin

from templates.models import EmailTemplate, TemplateVersion


@admin.register(EmailTemplate)
class EmailTemplateAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "subject", "transactional", "archived", "updated_at")
    list_filter = ("kind", "transactional", "archived")
    search_fields = ("name", "subject")
    # Saving here would skip validation and versioning: the dashboard editor is the way to edit.
    readonly_fields = [f.name for f in EmailTemplate._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(TemplateVersion)
class TemplateVersionAdmin(admin.ModelAdmin):
    list_display = ("template", "number", "note", "created_by", "created_at")
    search_fields = ("template__name", "note")
    readonly_fields = [f.name for f in TemplateVersion._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
