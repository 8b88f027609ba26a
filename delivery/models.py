"""The send ledger: relays, sending identities, Mailings (immutable snapshots) and Messages.

One Message row per recipient of a send; its events (sent, bounced, opened...) hang off it.
The ledger is expected to reach 100M rows: every index here matches a query the engine or the
dashboard runs, and old rows are pruned by `delivery.ledger.prune`.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class Security(models.TextChoices):
    NONE = "none", "None (plain SMTP)"
    STARTTLS = "starttls", "STARTTLS"
    TLS = "tls", "Implicit TLS (SMTPS)"


# The port an admin picks suggests the security that usually goes with it.
PORT_SECURITY = {25: Security.STARTTLS, 465: Security.TLS, 587: Security.STARTTLS, 2525: Security.STARTTLS}


class Relay(models.Model):
    """An SMTP server mail leaves through, with its limits and health."""

    name = models.CharField(max_length=100, unique=True)
    host = models.CharField(max_length=255)
    port = models.PositiveIntegerField(default=587)
    security = models.CharField(max_length=10, choices=Security.choices, default=Security.STARTTLS)
    verify_certificate = models.BooleanField(
        default=True, help_text="Turn off only for a relay with a self-signed certificate you trust."
    )
    username = models.CharField(max_length=255, blank=True)
    # Fernet token (see mailplatform.crypto); the clear text is never shown back.
    password_encrypted = models.TextField(blank=True, editable=False)
    helo_name = models.CharField(
        max_length=255, blank=True, help_text="Name to say in EHLO; blank: this host's FQDN."
    )
    max_connections = models.PositiveIntegerField(default=4)
    per_second = models.FloatField(default=0, help_text="0 means no limit.")
    burst = models.PositiveIntegerField(
        default=0, help_text="Messages that may go at once above the per-second rate; 0: one second's worth."
    )
    per_hour = models.PositiveIntegerField(default=0, help_text="0 means no limit.")
    per_day = models.PositiveIntegerField(default=0, help_text="0 means no limit.")
    weight = models.PositiveIntegerField(default=100)
    enabled = models.BooleanField(default=True)

    # Health, written by the engine.
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    backed_off_until = models.DateTimeField(null=True, blank=True)
    capabilities = models.JSONField(default=dict, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.host}:{self.port})"

    @property
    def has_password(self) -> bool:
        return bool(self.password_encrypted)


# What an admin sets on a relay (the password is separate: write-only, encrypted).
RELAY_EDITABLE_FIELDS = [
    "name",
    "host",
    "port",
    "security",
    "verify_certificate",
    "username",
    "helo_name",
    "max_connections",
    "per_second",
    "burst",
    "per_hour",
    "per_day",
    "weight",
    "enabled",
]


class SendingIdentity(models.Model):
    """A from address (alice@example.com) or a whole domain (example.com) an admin allows, with DKIM."""

    address = models.CharField(
        max_length=254, unique=True, help_text="A full address, or a domain to allow every address in it."
    )
    dkim_selector = models.CharField(max_length=63, blank=True)
    # PEM of the private key, encrypted like relay passwords.
    dkim_private_key_encrypted = models.TextField(blank=True, editable=False)
    dkim_public_key = models.TextField(
        blank=True, editable=False, help_text="Base64 DER, for the DNS record."
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["address"]
        verbose_name_plural = "sending identities"

    def __str__(self) -> str:
        return self.address

    @property
    def domain(self) -> str:
        return self.address.rsplit("@", 1)[-1].lower()

    @property
    def is_domain(self) -> bool:
        return "@" not in self.address

    @property
    def has_dkim(self) -> bool:
        return bool(self.dkim_selector and self.dkim_private_key_encrypted)

    @property
    def dkim_dns_name(self) -> str:
        return f"{self.dkim_selector}._domainkey.{self.domain}" if self.dkim_selector else ""

    @property
    def dkim_dns_value(self) -> str:
        return f"v=DKIM1; k=rsa; p={self.dkim_public_key}" if self.dkim_public_key else ""


class Mailing(models.Model):
    """An immutable snapshot of what goes out. Only `state` (and progress stamps) change after creation."""

    class Kind(models.TextChoices):
        MARKETING = "marketing", "Marketing"
        TRANSACTIONAL = "transactional", "Transactional"

    class State(models.TextChoices):
        DRAFT = "draft", "Draft"  # created, not yet planned
        SENDING = "sending", "Sending"
        PAUSED = "paused", "Paused"
        CANCELLED = "cancelled", "Cancelled"
        DONE = "done", "Done"
        # A standing transactional Mailing is always open for new Messages.
        STANDING = "standing", "Standing (transactional)"

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.MARKETING)
    # Mailings of one campaign (A/B variants and the winner) share a send group; the ledger is
    # unique per (group, contact) so nobody gets two variants.
    send_group = models.CharField(max_length=100, db_index=True)

    from_email = models.CharField(max_length=254)
    from_name = models.CharField(max_length=200, blank=True)
    reply_to = models.CharField(max_length=254, blank=True)
    subject = models.CharField(max_length=998)
    # templates.compiler.CompiledTemplate.to_dict(): the body as it was when the send started.
    compiled = models.JSONField()
    # sha256 of `compiled`: a standing transactional Mailing is reused while the template is unchanged.
    compiled_sha = models.CharField(max_length=64, blank=True)
    # Extra headers {name: value}, checked against CR/LF and reserved names on creation.
    headers = models.JSONField(default=dict, blank=True)
    # The lists this was sent to: one-click unsubscribe leaves exactly these.
    list_ids = models.JSONField(default=list, blank=True)
    # Empty means every enabled relay.
    relays = models.ManyToManyField(Relay, blank=True, related_name="mailings")
    identity = models.ForeignKey(SendingIdentity, null=True, blank=True, on_delete=models.SET_NULL)
    track_opens = models.BooleanField(default=True)
    track_clicks = models.BooleanField(default=True)
    # Where it came from, for the caller's bookkeeping (e.g. {"campaign_id": 3, "variant": "A"}).
    template_id = models.BigIntegerField(null=True, blank=True)
    template_version_id = models.BigIntegerField(null=True, blank=True)
    meta = models.JSONField(default=dict, blank=True)

    state = models.CharField(max_length=16, choices=State.choices, default=State.DRAFT, db_index=True)
    planned_at = models.DateTimeField(null=True, blank=True)
    planned_count = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # When it was last paused (None while sending): what a runner had already handed to the relay
    # is recorded after this, and the progress says so.
    paused_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # One standing transactional Mailing per template content.
            models.UniqueConstraint(
                fields=["template_id", "compiled_sha"],
                condition=Q(state="standing"),
                name="delivery_one_standing_mailing",
            )
        ]

    def __str__(self) -> str:
        return self.name


class MessageState(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    DEFERRED = "deferred", "Deferred"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


class HoldReason(models.TextChoices):
    """Why a Message waits (state `deferred`) until its `next_attempt_at`: the ledger's one way to hold."""

    NONE = "", "Not held"
    RELAY = "relay", "Deferred by the relay"
    WINDOW = "window", "Outside the sending window"
    THROTTLED = "throttled", "Receiving domain throttled"
    WARMUP = "warmup", "Warm-up cap reached"
    # Every connection a receiving domain group may have at once is in use (DELIVERY_DOMAIN_LIMITS).
    CONNECTIONS = "connection", "Receiving domain's connections in use"
    # The deliverability guard paused one receiving domain group of the Mailing (not before: the far future).
    GUARD = "guard", "Paused by the guard for its receiving domain"
    # The contact had as much marketing mail as a frequency cap allows: it goes when the cap has room.
    FREQUENCY = "frequency", "Over the contact's frequency cap"


class Message(models.Model):
    """One recipient of one Mailing: the ledger row. Every write to it is in delivery.ledger."""

    State = MessageState
    Hold = HoldReason

    id = models.BigAutoField(primary_key=True)
    # No single-column indexes on mailing or contact: delivery_msg_outcome and delivery_msg_contact
    # lead with them, and every index here costs each claim and each outcome a write.
    mailing = models.ForeignKey(Mailing, on_delete=models.CASCADE, related_name="messages", db_index=False)
    send_group = models.CharField(max_length=100)
    # No database constraint (as contacts' own subscriptions): PostgreSQL would check it row by row
    # when a plan inserts a million Messages. Erasing a contact nulls it through the ORM.
    contact = models.ForeignKey(
        "contacts.Contact",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    email = models.CharField(max_length=320)
    state = models.CharField(max_length=10, choices=MessageState.choices, default=MessageState.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    # A held (deferred) Message goes back to the queue at next_attempt_at; hold_reason says why it waits.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    hold_reason = models.CharField(max_length=10, choices=HoldReason.choices, default="", blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # Set when an expired lease was taken back from a lost worker: this Message may have gone out twice.
    recovered_at = models.DateTimeField(null=True, blank=True)
    # No index and no database constraint: nothing reads the ledger by relay except deleting a relay
    # (rare; Django nulls its rows with one scan), while every claim and every outcome wrote an entry
    # to the index, and each claim's change of relay_id ran PostgreSQL's foreign-key check (a
    # FOR KEY SHARE of the relay's row) once per Message.
    relay = models.ForeignKey(
        Relay,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    smtp_code = models.PositiveSmallIntegerField(null=True, blank=True)
    smtp_reply = models.TextField(blank=True)
    # The bounce classifier's kind (delivery.bounces.rules: hard, soft, block, unknown) of this Message's
    # last bounce, refused at RCPT or reported later; "" when it did not bounce. Reports count by it.
    bounce_kind = models.CharField(max_length=8, blank=True, default="")
    sent_at = models.DateTimeField(null=True, blank=True)
    # Transactional only: the caller's key (or a generated one). NULL, not "", on marketing rows:
    # the two partial unique constraints below tell the kinds apart by it.
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    # Transactional only: the caller's merge data.
    data = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["send_group", "contact"],
                condition=Q(idempotency_key__isnull=True),
                name="delivery_message_once_per_group",
            ),
            models.UniqueConstraint(
                fields=["idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="delivery_message_idempotency_key",
            ),
        ]
        indexes = [
            # The claim query: queued rows of one mailing, in id order.
            models.Index(fields=["mailing", "id"], condition=Q(state="queued"), name="delivery_msg_claim"),
            # The beat task: deferred rows that are due. Expired leases are found per Mailing through
            # delivery_msg_outcome (mailing, state='sending'): no index of their own, which every claim
            # wrote an entry to.
            models.Index(fields=["next_attempt_at"], condition=Q(state="deferred"), name="delivery_msg_due"),
            # Progress counts per state, and the report's counts by state and bounce kind from the
            # index alone; the contact's timeline; the ledger search by address.
            models.Index(fields=["mailing", "state"], include=["bounce_kind"], name="delivery_msg_outcome"),
            # The report's "not received" list: the few Messages of a mailing that failed, were
            # skipped, wait, or bounced, in id order, without reading the others.
            models.Index(
                fields=["mailing", "id"],
                condition=Q(state__in=["failed", "skipped", "deferred"]) | ~Q(bounce_kind=""),
                name="delivery_msg_not_received",
            ),
            models.Index(fields=["contact", "id"], name="delivery_msg_contact"),
            # The ledger search by address (exact or prefix, any case) uses delivery_msg_email_lower,
            # lower(email) text_pattern_ops, made by migration 0003 in SQL.
            models.Index(fields=["created_at"], name="delivery_msg_created"),
        ]

    def __str__(self) -> str:
        return f"Message {self.pk} to {self.email} ({self.state})"


class MessageEvent(models.Model):
    class Kind(models.TextChoices):
        SENT = "sent", "Sent"
        DEFERRED = "deferred", "Deferred"
        BOUNCED = "bounced", "Bounced"
        COMPLAINED = "complained", "Complained"
        OPENED = "opened", "Opened"
        CLICKED = "clicked", "Clicked"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
        FAILED = "failed", "Failed"

    id = models.BigAutoField(primary_key=True)
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="events")
    # Denormalised so a report counts one mailing's events without touching the ledger.
    mailing = models.ForeignKey(Mailing, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    at = models.DateTimeField()
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["message", "at"], name="delivery_event_message"),
            models.Index(fields=["mailing", "kind", "at"], name="delivery_event_report"),
            models.Index(fields=["at"], name="delivery_event_at"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} on message {self.message_id}"


class WarmupSchedule(models.Model):
    """Daily caps that grow while a new sending domain or relay earns a reputation (delivery.warmup).

    `caps[n]` is the most that may go on day n of the schedule (UTC days, day 0 = `starts_on`); after
    the last day there is no cap. Exactly one of `domain` (the From's domain) and `relay` is set.
    """

    domain = models.CharField(max_length=253, blank=True, help_text="A sending domain (the From's domain).")
    relay = models.ForeignKey(Relay, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    caps = models.JSONField(default=list)
    starts_on = models.DateField()
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["domain", "relay_id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(relay__isnull=True) & ~Q(domain="")) | (Q(relay__isnull=False) & Q(domain="")),
                name="delivery_warmup_domain_or_relay",
            ),
            models.UniqueConstraint(
                fields=["domain"], condition=~Q(domain=""), name="delivery_warmup_domain"
            ),
            models.UniqueConstraint(
                fields=["relay"], condition=Q(relay__isnull=False), name="delivery_warmup_relay"
            ),
        ]

    def __str__(self) -> str:
        return f"warm-up of {self.target}"

    @property
    def target(self) -> str:
        return self.domain or (f"relay {self.relay.name}" if self.relay_id else "?")


class GroupPause(models.Model):
    """One receiving domain group of one Mailing held by the deliverability guard (hold reason
    `guard`), while the other groups keep flowing. `resumed_at` set: a person let it go on, and the
    guard leaves that group of that Mailing alone from then on."""

    mailing = models.ForeignKey(Mailing, on_delete=models.CASCADE, related_name="group_pauses")
    group = models.CharField(max_length=253)
    reason = models.TextField(blank=True)
    paused_at = models.DateTimeField(auto_now_add=True)
    resumed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["mailing", "group"]
        constraints = [models.UniqueConstraint(fields=["mailing", "group"], name="delivery_group_pause_once")]

    def __str__(self) -> str:
        return f"{self.group} of mailing {self.mailing_id}"


class ListConfirmation(models.Model):
    """Which template, from which sending identity, confirms a subscription to one list (double opt-in).

    Contacts asks for the mail through its `confirmation_requested` signal; delivery answers with
    this list's template (transactional, it must link {{ confirm_url }}) or, without one, the
    platform's built-in confirmation. Shown and edited as a fragment on the list's page.
    """

    mailing_list = models.OneToOneField(
        "contacts.MailingList", on_delete=models.CASCADE, related_name="+", primary_key=True
    )
    template = models.ForeignKey(
        "email_templates.EmailTemplate", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    identity = models.ForeignKey(
        SendingIdentity, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"confirmation for list {self.mailing_list_id}"
