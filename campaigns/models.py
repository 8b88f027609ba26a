"""Campaigns: what a marketer sends, to whom and when; delivery sends the Mailings they start."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone


class CampaignState(models.TextChoices):
    DRAFT = "draft", "Draft"
    SCHEDULED = "scheduled", "Scheduled"
    SENDING = "sending", "Sending"
    PAUSED = "paused", "Paused"
    SENT = "sent", "Sent"
    CANCELLED = "cancelled", "Cancelled"
    FAILED = "failed", "Failed"


EDITABLE_STATES = frozenset({CampaignState.DRAFT, CampaignState.SCHEDULED})


class WinnerMetric(models.TextChoices):
    OPENS = "opens", "Unique human opens"
    CLICKS = "clicks", "Unique human clicks"


class Campaign(models.Model):
    State = CampaignState

    name = models.CharField(max_length=200)
    subject = models.CharField(max_length=998, blank=True, help_text="Blank: the template's subject.")
    preheader = models.CharField(max_length=300, blank=True, help_text="Blank: the template's preheader.")
    template = models.ForeignKey(
        "email_templates.EmailTemplate", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    from_email = models.CharField(max_length=254, blank=True)
    from_name = models.CharField(max_length=200, blank=True)
    reply_to = models.CharField(max_length=254, blank=True)

    lists = models.ManyToManyField("contacts.MailingList", blank=True, related_name="+")
    segment = models.ForeignKey(
        "contacts.Segment", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    exclude_lists = models.ManyToManyField("contacts.MailingList", blank=True, related_name="+")
    relays = models.ManyToManyField("delivery.Relay", blank=True, related_name="+")
    track_opens = models.BooleanField(default=True)
    track_clicks = models.BooleanField(default=True)
    # UTM tags added to tracked links when a person clicks (delivery.tracking.with_utm): on for
    # campaigns, editable per campaign; transactional mail has none.
    utm_enabled = models.BooleanField(default=True)
    utm_source = models.CharField(max_length=100, blank=True, default="newsletter")
    utm_medium = models.CharField(max_length=100, blank=True, default="email")
    utm_campaign = models.CharField(
        max_length=100, blank=True, help_text="Empty: made from the campaign's name."
    )
    frequency_cap_hours = models.PositiveIntegerField(
        default=0, help_text="Skip contacts mailed in the last N hours; 0 turns the cap off."
    )

    # Sending window: mail goes out only between these times of day (over midnight when the end is
    # earlier), in this zone or, "contact", in each contact's own (delivery.windows). None: any time.
    window_start = models.TimeField(null=True, blank=True)
    window_end = models.TimeField(null=True, blank=True)
    window_timezone = models.CharField(max_length=64, blank=True, default="contact")

    scheduled_at = models.DateTimeField(null=True, blank=True)
    schedule_timezone = models.CharField(max_length=64, blank=True, default="UTC")
    # Set when the platform missed the scheduled time by more than the allowed lateness.
    hold_reason = models.TextField(blank=True)

    # A/B test: variants get a test share of the audience; the winner goes to the rest.
    ab_test = models.BooleanField(default=False)
    ab_test_percent = models.PositiveSmallIntegerField(default=20)
    ab_metric = models.CharField(max_length=8, choices=WinnerMetric.choices, default=WinnerMetric.OPENS)
    ab_wait_minutes = models.PositiveIntegerField(default=240)
    ab_decided_at = models.DateTimeField(null=True, blank=True)
    winner = models.ForeignKey("Variant", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    state = models.CharField(max_length=12, choices=CampaignState.choices, default=CampaignState.DRAFT)
    state_reason = models.TextField(blank=True)
    # A person resumed after the guard paused it: the guard does not pause it again.
    guard_overridden = models.BooleanField(default=False)
    # The Mailing that goes to the (rest of the) audience: the whole send, or the A/B winner.
    mailing = models.ForeignKey(
        "delivery.Mailing", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    cloned_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Published to the public archive (campaigns.archive) by a person; None: not in it.
    archived_at = models.DateTimeField(null=True, blank=True)
    # A follow-up made by "Resend to non-openers": the campaign it follows up ...
    resend_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # ... and segment rules (contacts.segments' format) ANDed into the audience when it is planned:
    # for a resend, "received the original's mail and did not open it (human hits)".
    audience_rules = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["state", "scheduled_at"], name="campaign_due")]

    def __str__(self) -> str:
        return self.name

    @property
    def send_group(self) -> str:
        return f"campaign:{self.pk}"

    @property
    def starting(self) -> bool:
        """Due now and waiting for a worker to snapshot it and plan its audience."""
        return (
            self.state == CampaignState.SCHEDULED
            and not self.hold_reason
            and self.scheduled_at is not None
            and self.scheduled_at <= timezone.now()
        )

    @property
    def editable(self) -> bool:
        return self.state in EDITABLE_STATES and not self.starting

    @property
    def deletable(self) -> bool:
        """Never started: nothing was sent, so no report or ledger rows would lose their campaign."""
        return (
            self.started_at is None
            and self.mailing_id is None
            and not self.starting
            and (self.state in EDITABLE_STATES or self.state == CampaignState.FAILED)
        )


class Variant(models.Model):
    """One arm of an A/B test: its own subject and/or template; blank means the campaign's."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="variants")
    label = models.CharField(max_length=1)
    subject = models.CharField(max_length=998, blank=True)
    template = models.ForeignKey(
        "email_templates.EmailTemplate", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    mailing = models.ForeignKey(
        "delivery.Mailing", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["campaign", "label"]
        constraints = [models.UniqueConstraint(fields=["campaign", "label"], name="campaign_variant_label")]

    def __str__(self) -> str:
        return f"Variant {self.label}"


class GuardLimits(models.Model):
    """The deliverability guard's limits, set by an admin (one row; Django admin)."""

    hard_bounce_percent = models.DecimalField(max_digits=5, decimal_places=2, default=Decimal("5.00"))
    complaint_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("0.10"),
        help_text="Gmail asks bulk senders to stay under 0.3%.",
    )
    min_messages = models.PositiveIntegerField(
        default=100, help_text="Rates are judged once a campaign has sent at least this many messages."
    )
    window = models.PositiveIntegerField(
        default=2000, help_text="The rates are over a campaign's first N messages."
    )
    per_domain = models.BooleanField(
        default=True,
        help_text="Judge each receiving domain group (Gmail, Microsoft, Yahoo/AOL, ...) on its own and "
        "pause only the group over the limits; the rest of the campaign goes on.",
    )

    class Meta:
        verbose_name = "deliverability guard limits"
        verbose_name_plural = "deliverability guard limits"

    def __str__(self) -> str:
        return f"hard bounces {self.hard_bounce_percent}%, complaints {self.complaint_percent}%"

    @classmethod
    def current(cls) -> GuardLimits:
        limits = cls.objects.order_by("pk").first()
        return limits or cls()
