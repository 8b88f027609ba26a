"""What came back on the return path, what it meant, and the admin's policy for it.

Message, contact and mailing are referenced by id, not by foreign key: the bounce log is
append-only evidence that must outlive pruned ledger rows and erased contacts' ids.
"""

from __future__ import annotations

from django.db import models

from delivery.bounces import rules


class BouncePolicy(models.Model):
    """One row (pk=1): how bounces change a contact. Editable by admins on the Bounces page."""

    soft_bounce_threshold = models.PositiveSmallIntegerField(
        default=3, help_text="Soft bounces from this many different mailings mark the contact bounced."
    )
    soft_bounce_window_days = models.PositiveSmallIntegerField(
        default=30, help_text="Only soft bounces newer than this count; older ones expire."
    )
    block_alert_threshold = models.PositiveIntegerField(
        default=5,
        help_text="Alert the admin when a relay or sending domain collects this many blocks in a day.",
    )
    keep_raw_days = models.PositiveSmallIntegerField(
        default=90, help_text="The raw bounce messages (evidence) are kept this long."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "bounce policy"

    def __str__(self) -> str:
        return f"{self.soft_bounce_threshold} soft bounces in {self.soft_bounce_window_days} days"

    @classmethod
    def current(cls) -> BouncePolicy:
        policy, _ = cls.objects.get_or_create(pk=1)
        return policy


class InboundMessage(models.Model):
    """One message received on the return path, kept (bounded) as evidence."""

    class Source(models.TextChoices):
        SMTP = "smtp", "SMTP listener"
        PIPE = "pipe", "MTA pipe (stdin)"
        MAILBOX = "mailbox", "Mailbox poller"
        WEBHOOK = "webhook", "ESP webhook"
        SEND = "send", "Refused while sending"

    source = models.CharField(max_length=10, choices=Source.choices)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    envelope_from = models.CharField(max_length=254, blank=True)
    envelope_to = models.CharField(max_length=254, blank=True)
    subject = models.CharField(max_length=255, blank=True)
    format = models.CharField(max_length=12, blank=True)
    size = models.PositiveIntegerField(default=0)
    raw = models.BinaryField(blank=True)
    sha256 = models.CharField(max_length=64, db_index=True)
    outcome = models.CharField(max_length=20, blank=True)  # applied, forged, unattributed, none, duplicate
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.get_source_display()} #{self.pk} ({self.outcome})"


class BounceEvent(models.Model):
    """One recipient of one inbound message, classified, and what the policy did about it."""

    KIND_CHOICES = [(kind, kind.replace("_", " ")) for kind in rules.KINDS]

    inbound = models.ForeignKey(InboundMessage, null=True, blank=True, on_delete=models.SET_NULL)
    at = models.DateTimeField(db_index=True)
    source = models.CharField(max_length=10, choices=InboundMessage.Source.choices)
    kind = models.CharField(max_length=12, choices=KIND_CHOICES)
    reason = models.CharField(max_length=32, blank=True)
    status = models.CharField(max_length=16, blank=True)
    diagnostic = models.TextField(blank=True)
    recipient = models.CharField(max_length=254, blank=True)
    message_id = models.BigIntegerField(null=True, blank=True)
    mailing_id = models.BigIntegerField(null=True, blank=True)
    contact_id = models.BigIntegerField(null=True, blank=True)
    relay_id = models.BigIntegerField(null=True, blank=True)
    sending_domain = models.CharField(max_length=253, blank=True)
    attributed_by = models.CharField(max_length=12, blank=True)  # token, recipient, esp
    action = models.CharField(max_length=80, blank=True)  # what the policy did
    esp = models.CharField(max_length=20, blank=True)
    esp_event_id = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["contact_id", "kind", "at"], name="bounces_contact_kind_at"),
            models.Index(fields=["kind", "at"], name="bounces_kind_at"),
        ]
        constraints = [
            # An ESP retries webhooks: the same event id is stored once.
            models.UniqueConstraint(
                fields=["esp", "esp_event_id", "recipient"],
                condition=~models.Q(esp_event_id=""),
                name="bounces_esp_event_once",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.recipient} ({self.reason})"


class BounceMailbox(models.Model):
    """An IMAP or POP3 mailbox that receives bounces (for an MTA that cannot pipe or relay them)."""

    class Protocol(models.TextChoices):
        IMAP = "imap", "IMAP"
        POP3 = "pop3", "POP3"

    class Security(models.TextChoices):
        NONE = "none", "None (plain text, loopback only)"
        STARTTLS = "starttls", "STARTTLS"
        TLS = "tls", "Implicit TLS"

    name = models.CharField(max_length=100, unique=True)
    protocol = models.CharField(max_length=4, choices=Protocol.choices, default=Protocol.IMAP)
    host = models.CharField(max_length=255)
    port = models.PositiveIntegerField(default=993)
    security = models.CharField(max_length=8, choices=Security.choices, default=Security.TLS)
    verify_certificate = models.BooleanField(default=True)
    username = models.CharField(max_length=255)
    password_encrypted = models.TextField(blank=True, editable=False)
    folder = models.CharField(max_length=255, default="INBOX", help_text="IMAP only.")
    delete_processed = models.BooleanField(
        default=True, help_text="Delete messages once processed (otherwise IMAP marks them seen)."
    )
    max_per_poll = models.PositiveIntegerField(default=500)
    enabled = models.BooleanField(default=True)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    processed_total = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
