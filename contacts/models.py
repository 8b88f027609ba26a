"""Contacts, typed custom fields, lists and subscriptions, segments, suppressions and imports.

The contact table is the hot one (a million rows and more): its indexes are the few that the
audience query, the dashboard's keyset pagination and its prefix search need, because every
extra index is paid for on every import.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

from mailplatform.locales import LANGUAGE_MAX, TIMEZONE_MAX


class ContactStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    BOUNCED = "bounced", "Bounced"
    COMPLAINED = "complained", "Complained"
    BLOCKLISTED = "blocklisted", "Blocklisted"


# Statuses that stop transactional mail too (a marketing unsubscribe does not).
UNDELIVERABLE_STATUSES = (ContactStatus.BOUNCED, ContactStatus.COMPLAINED, ContactStatus.BLOCKLISTED)
# Statuses an import or a form never turns back into `active` by itself.
PROTECTED_STATUSES = (
    ContactStatus.UNSUBSCRIBED,
    ContactStatus.BOUNCED,
    ContactStatus.COMPLAINED,
    ContactStatus.BLOCKLISTED,
)


class ConsentSource(models.TextChoices):
    IMPORT = "import", "Import"
    FORM = "form", "Subscribe form"
    API = "api", "API"
    DASHBOARD = "dashboard", "Dashboard"


# What a person or an import sets on a contact, as shown back (status is set by what happens).
CONTACT_OWN_FIELDS = ("email", "first_name", "last_name", "attributes", "language", "timezone", "status")


class Contact(models.Model):
    id = models.BigAutoField(primary_key=True)
    email = models.CharField(max_length=320)
    first_name = models.CharField(max_length=200, blank=True, default="")
    last_name = models.CharField(max_length=200, blank=True, default="")
    # Custom field values by CustomField.name, stored as JSON numbers, booleans and ISO dates.
    attributes = models.JSONField(default=dict, blank=True)
    # Standard attributes that later features read (localised content, send-time windows): a
    # BCP 47 tag and an IANA zone, checked by mailplatform.locales. Empty: the install's default
    # (settings.DEFAULT_LANGUAGE / DEFAULT_TIMEZONE), so changing the default moves every contact
    # that never said otherwise. Read them through `effective_language` / `effective_timezone`.
    language = models.CharField(max_length=LANGUAGE_MAX, blank=True, default="")
    timezone = models.CharField(max_length=TIMEZONE_MAX, blank=True, default="")
    status = models.CharField(max_length=16, choices=ContactStatus.choices, default=ContactStatus.ACTIVE)
    # Consent evidence: when, how and from where the person agreed to be mailed.
    consent_at = models.DateTimeField(null=True, blank=True)
    consent_source = models.CharField(max_length=16, choices=ConsentSource.choices, blank=True, default="")
    consent_ip = models.GenericIPAddressField(null=True, blank=True)
    consent_detail = models.CharField(max_length=300, blank=True, default="")
    # Engagement, written by delivery through contacts.services.
    last_sent_at = models.DateTimeField(null=True, blank=True)
    last_opened_at = models.DateTimeField(null=True, blank=True)
    last_clicked_at = models.DateTimeField(null=True, blank=True)
    bounce_count = models.IntegerField(default=0)
    soft_bounce_count = models.IntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # In the database this index is built with text_pattern_ops (migration 0003), so it
            # serves equality and prefix search ("ali%") under any collation: one index, not two,
            # to maintain on import. (Django renders OpClass here inside extra parentheses.)
            models.UniqueConstraint(Lower("email"), name="contacts_contact_email_lower_uniq")
        ]
        indexes = [
            # Partial: only contacts that are not active, so imports of active contacts skip it,
            # and "show me the bounced" stays fast at a million rows.
            models.Index(
                fields=["status", "id"], name="contacts_inactive_idx", condition=~models.Q(status="active")
            )
        ]

    def __str__(self) -> str:
        return self.email

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    def own_values(self) -> dict[str, Any]:
        """The contact's own fields by name, as the API and the GDPR export show them."""
        return {name: getattr(self, name) for name in CONTACT_OWN_FIELDS}

    @property
    def effective_language(self) -> str:
        return self.language or settings.DEFAULT_LANGUAGE

    @property
    def effective_timezone(self) -> str:
        return self.timezone or settings.DEFAULT_TIMEZONE


class FieldType(models.TextChoices):
    TEXT = "text", "Text"
    NUMBER = "number", "Number"
    DATE = "date", "Date"
    BOOLEAN = "boolean", "Yes/no"


class CustomField(models.Model):
    """A declared attribute: its type decides how values are stored and how segments compare them."""

    name = models.SlugField(max_length=64, unique=True, help_text="Key in the contact's attributes.")
    label = models.CharField(max_length=200)
    type = models.CharField(max_length=16, choices=FieldType.choices, default=FieldType.TEXT)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.label or self.name


class OptIn(models.TextChoices):
    SINGLE = "single", "Single opt-in"
    DOUBLE = "double", "Double opt-in"


class MailingList(models.Model):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True, default="")
    opt_in = models.CharField(max_length=8, choices=OptIn.choices, default=OptIn.DOUBLE)
    is_public = models.BooleanField(default=False, help_text="Public lists have a subscribe page.")
    # The public pages name a list by this, so list ids cannot be walked.
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class SubscriptionStatus(models.TextChoices):
    UNCONFIRMED = "unconfirmed", "Unconfirmed"
    CONFIRMED = "confirmed", "Confirmed"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"


class Subscription(models.Model):
    id = models.BigAutoField(primary_key=True)
    # No database foreign keys here: PostgreSQL checks them row by row at commit, which cost an
    # import of a million subscriptions ~10 s. Deletes cascade through the ORM (contact erasure,
    # list deletion); every reader joins through contacts, so an orphan could never be mailed.
    contact = models.ForeignKey(
        Contact, on_delete=models.CASCADE, related_name="subscriptions", db_constraint=False
    )
    # The unique (mailing_list, contact) index serves lookups by list: no separate index here.
    mailing_list = models.ForeignKey(
        MailingList,
        on_delete=models.CASCADE,
        related_name="subscriptions",
        db_index=False,
        db_constraint=False,
    )
    status = models.CharField(
        max_length=16, choices=SubscriptionStatus.choices, default=SubscriptionStatus.UNCONFIRMED
    )
    source = models.CharField(max_length=32, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # Covering the status: a segment's "on the list" test and the audience query probe
            # (mailing_list, contact, status) from the index alone, never the table (an index-only
            # scan, ~40,000 probes for a segment at a million contacts). No extra index to maintain.
            models.UniqueConstraint(
                fields=["mailing_list", "contact"], include=["status"], name="contacts_subscription_uniq"
            )
        ]
        # A contact's own subscriptions use the contact foreign key's index. Every extra index
        # slows imports.

    def __str__(self) -> str:
        return f"{self.contact_id} on {self.mailing_list_id}: {self.status}"


class Segment(models.Model):
    """Saved rules, compiled to SQL by contacts.segments (never raw SQL from the user).

    rules = {"match": "all"|"any", "groups": [{"match": "all"|"any", "conditions": [
        {"field": "email"|"first_name"|...|"attr:<name>"|"list"|"last_opened_at"..., "op": "...",
         "value": ...}]}]}
    """

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True, default="")
    rules = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class SuppressionKind(models.TextChoices):
    ADDRESS = "address", "Address"
    DOMAIN = "domain", "Domain"


class Suppression(models.Model):
    """Never mail this address, or any address at this domain, whatever its contact says."""

    value = models.CharField(max_length=320, help_text="Lower-cased address or domain.")
    kind = models.CharField(max_length=8, choices=SuppressionKind.choices, default=SuppressionKind.ADDRESS)
    reason = models.CharField(max_length=300, blank=True, default="")
    source = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["kind", "value"], name="contacts_suppression_uniq")]

    def __str__(self) -> str:
        return f"{self.kind} {self.value}"


class ImportMode(models.TextChoices):
    UPSERT = "upsert", "Add new and update existing"
    ADD = "add", "Add new only"
    UNSUBSCRIBE = "unsubscribe", "Unsubscribe these addresses"
    BLOCKLIST = "blocklist", "Blocklist these addresses"


class ImportStatus(models.TextChoices):
    DRAFT = "draft", "Waiting for column mapping"
    PENDING = "pending", "Waiting"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ContactImport(models.Model):
    """One import of a CSV file: its settings, progress and outcome (bad rows in report_path)."""

    filename = models.CharField(max_length=255)
    path = models.CharField(max_length=500, help_text="The uploaded file under var/media.")
    mode = models.CharField(max_length=16, choices=ImportMode.choices, default=ImportMode.UPSERT)
    mailing_lists = models.ManyToManyField(MailingList, blank=True, related_name="imports")
    # CSV header -> target ("email", "first_name", "last_name", "attr:<name>", or "" to skip).
    mapping = models.JSONField(default=dict, blank=True)
    # Role (info@ …) and disposable-domain addresses: kept (and flagged) or dropped to the bad rows.
    drop_flagged = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=ImportStatus.choices, default=ImportStatus.PENDING)
    total_bytes = models.BigIntegerField(default=0)
    processed_bytes = models.BigIntegerField(default=0)
    rows = models.IntegerField(default=0)
    created = models.IntegerField(default=0)
    updated = models.IntegerField(default=0)
    unchanged = models.IntegerField(default=0)
    invalid = models.IntegerField(default=0)
    duplicates = models.IntegerField(default=0)
    protected = models.IntegerField(default=0)
    error = models.TextField(blank=True, default="")
    report_path = models.CharField(max_length=500, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"import #{self.pk} {self.filename}"

    @property
    def percent(self) -> int:
        if self.status == ImportStatus.DONE:
            return 100
        if not self.total_bytes:
            return 0
        return min(99, int(self.processed_bytes * 100 / self.total_bytes))


class Engagement(models.Model):
    """What one contact did with one mailing: received, opened, clicked.

    Written by delivery through contacts.services (`contacts_record_sent` with the mailing, and
    `engagement_record` from the tracking flush); segments read it (contacts.segments' received /
    opened / clicked rules). One compact row per (mailing, contact), never one per event: a
    contact who opens ten times is one row. The mailing is delivery's id, kept as a plain number
    so that contacts stays a leaf. `opened_at` / `clicked_at` are the first human hit (a click
    counts as an open); `machine_*` the first hit delivery classed as a scanner or privacy proxy.
    The links clicked are in EngagementClick.
    """

    pk = models.CompositePrimaryKey("mailing_id", "contact_id")
    mailing_id = models.BigIntegerField()
    contact_id = models.BigIntegerField()
    sent_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    machine_opened_at = models.DateTimeField(null=True, blank=True)
    machine_clicked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # "Opened / clicked mailing X" reads only the rows that did (index-only, in contact order);
            # "received mailing X" is the primary key's (any row proves the mail arrived).
            models.Index(
                fields=["mailing_id", "contact_id"],
                name="contacts_eng_opened",
                condition=models.Q(opened_at__isnull=False),
            ),
            models.Index(
                fields=["mailing_id", "contact_id"],
                name="contacts_eng_clicked",
                condition=models.Q(clicked_at__isnull=False),
            ),
            # Machine hits are asked for rarely; this stays small.
            models.Index(
                fields=["machine_opened_at"],
                name="contacts_eng_machine_open",
                condition=models.Q(machine_opened_at__isnull=False),
            ),
            # A contact's own rows (erasure, "any mailing" rules with machine hits).
            models.Index(fields=["contact_id"], name="contacts_eng_contact"),
        ]

    def __str__(self) -> str:
        return f"contact {self.contact_id} / mailing {self.mailing_id}"


class EngagementLink(models.Model):
    """A URL some contact clicked, once (few rows: the campaigns' links)."""

    id = models.BigAutoField(primary_key=True)
    url = models.TextField(unique=True)

    def __str__(self) -> str:
        return self.url


class EngagementClick(models.Model):
    """Who clicked which link, once per (link, contact, human or machine), whatever the mailing.

    "Clicked a link containing x" finds the few URLs containing x in EngagementLink, then reads
    this table's primary key alone (an index-only scan, in contact order): no engagement row is
    visited. Written with the Engagement rows by contacts.services.engagement_record.
    """

    pk = models.CompositePrimaryKey("link_id", "machine", "contact_id")
    link_id = models.BigIntegerField()
    machine = models.BooleanField(default=False)
    contact_id = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["contact_id"], name="contacts_engclick_contact")]

    def __str__(self) -> str:
        return f"contact {self.contact_id} clicked link {self.link_id}"


class SignupForm(models.Model):
    """A subscribe form for one or more lists, embeddable on other sites (contacts.signup).

    Each list's own opt-in decides single or double opt-in. Three ways to use it: the hosted page,
    an iframe (only the allowed origins may frame it: CSP frame-ancestors) and a plain HTML snippet
    that posts cross-origin with no CSRF cookie; every submission passes the bot defences.
    """

    name = models.CharField(max_length=200)
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    lists = models.ManyToManyField(MailingList, related_name="signup_forms")
    ask_first_name = models.BooleanField(default=True)
    ask_last_name = models.BooleanField(default=False)
    names_required = models.BooleanField(default=False, help_text="The name fields asked must be filled in.")
    consent_text = models.TextField(
        blank=True, default="", help_text="Shown beside a checkbox the person must tick; empty: no checkbox."
    )
    thank_you = models.TextField(
        blank=True, default="Thank you. If this is a new subscription, check your inbox to confirm it."
    )
    redirect_url = models.URLField(blank=True, default="", help_text="After signing up, go here instead.")
    refuse_flagged = models.BooleanField(
        default=False,
        verbose_name="Refuse role and disposable addresses",
        help_text="postmaster@, info@ … and throwaway domains: refused here instead of flagged.",
    )
    # Origins (https://www.example.com), one per line, that may show the form in an iframe.
    allowed_origins = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def origins(self) -> list[str]:
        return [line.strip() for line in self.allowed_origins.splitlines() if line.strip()]
