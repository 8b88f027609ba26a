"""Email templates and their saved versions."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class SourceFormat(models.TextChoices):
    """What the `html` field holds (templates.formats turns each into HTML)."""

    HTML = "html", "HTML"
    MJML = "mjml", "MJML"
    MARKDOWN = "markdown", "Markdown"
    BLOCKS = "blocks", "Blocks"


def _no_attachments() -> list:
    return []


class EmailTemplate(models.Model):
    class Kind(models.TextChoices):
        TEMPLATE = "template", "Template"
        LAYOUT = "layout", "Base layout"

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.TEMPLATE)
    subject = models.CharField(max_length=998, blank=True)
    preheader = models.CharField(max_length=300, blank=True)
    # The body in `source_format`: HTML, MJML, Markdown, or a block document (JSON).
    html = models.TextField()
    source_format = models.CharField(max_length=20, choices=SourceFormat.choices, default=SourceFormat.HTML)
    # Empty: the text part is derived from the HTML when the template compiles.
    text = models.TextField(blank=True)
    # Files sent with every message: metadata only, the bytes are in media storage (content-addressed).
    attachments = models.JSONField(default=_no_attachments, blank=True)
    layout = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        limit_choices_to={"kind": "layout"},
    )
    current_version = models.ForeignKey(
        "TemplateVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Transactional mail (receipts, password resets) needs no unsubscribe link.
    transactional = models.BooleanField(default=False)
    starter = models.CharField(max_length=100, blank=True, help_text="The starter it was created from")
    archived = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["archived", "kind", "name"])]

    def __str__(self) -> str:
        return self.name


class TemplateVersion(models.Model):
    """One save of a template, kept whole so any version can be compiled, compared or restored."""

    template = models.ForeignKey(EmailTemplate, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    name = models.CharField(max_length=200)
    subject = models.CharField(max_length=998, blank=True)
    preheader = models.CharField(max_length=300, blank=True)
    html = models.TextField()
    source_format = models.CharField(max_length=20, choices=SourceFormat.choices, default=SourceFormat.HTML)
    text = models.TextField(blank=True)
    attachments = models.JSONField(default=_no_attachments, blank=True)
    layout = models.ForeignKey(
        EmailTemplate, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    transactional = models.BooleanField(default=False)
    note = models.CharField(max_length=300, blank=True)
    uses_logic = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["template", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["template", "number"], name="email_template_version_number_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.number}"
