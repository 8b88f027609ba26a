from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models

from mailplatform.roles import Role


class User(AbstractUser):
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MARKETER)

    def save(self, *args, **kwargs):
        # Django admin access follows the role, so the two can never disagree.
        self.is_staff = self.role == Role.ADMIN
        self.is_superuser = self.role == Role.ADMIN
        super().save(*args, **kwargs)


class ScopeCeiling(models.Model):
    """The most an API key of a non-admin role may do, set by an admin (Settings > API key limits).

    No row for a role: its default, the scopes matching what the role may do in the dashboard
    (mailplatform.scopes.default_ceiling). Read through mailplatform.scopes.scope_ceiling.
    """

    role = models.CharField(max_length=16, choices=Role.choices, unique=True)
    scopes = models.JSONField(default=list)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return f"API key ceiling for {self.role}"


class AuditEntry(models.Model):
    """Who did what to what. Written through mailplatform.services.audit_record only."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    actor_label = models.CharField(
        max_length=200, help_text="Kept when the user is deleted; 'system' for tasks."
    )
    action = models.CharField(max_length=100, db_index=True)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=100, blank=True)
    target_label = models.CharField(max_length=300, blank=True)
    details = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_label} {self.action} {self.target_label}"


class CapturedMessage(models.Model):
    """A message the local capture relay received (the embedded default's outbox)."""

    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    mail_from = models.CharField(max_length=998)
    recipients = models.JSONField(default=list)
    subject = models.CharField(max_length=998, blank=True)
    message_id = models.CharField(max_length=998, blank=True)
    size = models.PositiveIntegerField()
    raw = models.BinaryField()
    # A "Send a test" message (it carries X-Posthorn-Test), marked in the list and filterable.
    is_test = models.BooleanField(default=False)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.subject or '(no subject)'} -> {', '.join(self.recipients)}"


class ApiKey(models.Model):
    """A developer's key for the REST API. Only a hash of the secret is kept; the prefix names it.

    The full key reads `phk_<prefix>_<secret>`: the prefix is shown in the dashboard and logs so a
    leaked key can be found and revoked, the secret is shown once at creation.
    """

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64, help_text="SHA-256 of the full key, hex.")
    scopes = models.JSONField(default=list)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    rate_limit_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests per minute; empty means the platform default."
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} (phk_{self.prefix})"

    @property
    def display_prefix(self) -> str:
        return f"phk_{self.prefix}"


class WebhookEndpoint(models.Model):
    """A URL that wants to hear about some event types; deliveries are signed with its secret."""

    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    event_types = models.JSONField(default=list)
    secret_encrypted = models.TextField(help_text="The signing secret, encrypted with the platform key.")
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    """One event on its way to one endpoint: the log the developer reads, and the retry state."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RETRYING = "retrying", "Retrying"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event_id = models.UUIDField()
    event_type = models.CharField(max_length=40)
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    last_response = models.CharField(max_length=1000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["endpoint", "-created_at"], name="webhook_delivery_endpoint"),
            models.Index(fields=["status", "next_attempt_at"], name="webhook_delivery_due"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} -> {self.endpoint_id} ({self.status})"


class WebhookCursor(models.Model):
    """How far a forwarder has turned an app's event rows into webhook deliveries."""

    name = models.CharField(max_length=100, unique=True)
    state = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name


class Organisation(models.Model):
    """Who sends the mail (one row, admins edit it under Settings): templates see it as {{ org.* }}.

    CAN-SPAM asks bulk mail for a valid postal address; {{ org.postal_address }} puts it in a footer.
    """

    name = models.CharField(max_length=200, blank=True, default="")
    postal_address = models.TextField(blank=True, default="", help_text="Required in bulk mail by CAN-SPAM.")
    logo_url = models.URLField(
        blank=True, default="", help_text="An absolute https:// address (e.g. from Media)."
    )
    default_from_email = models.EmailField(blank=True, default="", verbose_name="default From address")
    default_reply_to = models.EmailField(blank=True, default="", verbose_name="default Reply-To address")
    public_base_url = models.URLField(
        blank=True,
        default="",
        help_text="Your public web address, e.g. https://www.example.com (as {{ org.website }}).",
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name or "Organisation"
