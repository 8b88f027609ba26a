"""Automations: journeys a contact enters on a trigger and moves through step by step.

An Automation has a trigger, an ordered flow of Steps (a branch continues to the next step when
its condition holds and jumps to another step, or ends, when it does not) and one Run per contact
that entered it: where the contact is, when it moves next, and its history (RunEvent). Sends go
through delivery's ledger as keyed Messages (automations.scheduler); nothing below this app
knows it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Status(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"
    ARCHIVED = "archived", "Archived"


class Trigger(models.TextChoices):
    LIST_JOINED = "list_joined", "Joined a list"
    DATE_FIELD = "date_field", "A date field comes round"
    SEGMENT_ENTERED = "segment_entered", "Entered a segment"
    EVENT = "event", "An event was posted"
    CAMPAIGN_OPENED = "campaign_opened", "Opened a campaign"
    CAMPAIGN_CLICKED = "campaign_clicked", "Clicked a link in a campaign"
    MANUAL = "manual", "Added by hand"


class EntryPolicy(models.TextChoices):
    ONCE = "once", "Once ever"
    PERIODIC = "periodic", "Once per N days"
    EVERY_TIME = "every_time", "Every time"


class Automation(models.Model):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT, db_index=True)
    trigger = models.CharField(max_length=20, choices=Trigger.choices, default=Trigger.MANUAL)
    # What the trigger watches; which of these matter depends on `trigger`.
    trigger_list = models.ForeignKey(
        "contacts.MailingList", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    trigger_segment = models.ForeignKey(
        "contacts.Segment", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    trigger_field = models.CharField(max_length=64, blank=True, default="", help_text="A date custom field.")
    trigger_hour = models.PositiveSmallIntegerField(
        default=9, help_text="Local hour (0-23) in the contact's zone."
    )
    trigger_event = models.CharField(max_length=100, blank=True, default="")
    # A campaign by id: delivery's Mailings carry it in their meta (automations does not import campaigns).
    trigger_campaign_id = models.BigIntegerField(null=True, blank=True)
    # How far a watermark reader (campaign engagement) has read delivery's events.
    trigger_watermark = models.BigIntegerField(default=0)

    entry_policy = models.CharField(max_length=10, choices=EntryPolicy.choices, default=EntryPolicy.ONCE)
    entry_days = models.PositiveIntegerField(default=30, help_text="For 'once per N days'.")
    exit_segment = models.ForeignKey(
        "contacts.Segment",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="A run ends when its contact enters this segment (e.g. became a customer).",
    )
    exit_on_unsubscribe = models.BooleanField(
        default=True, help_text="End a run when its contact leaves the trigger's list or unsubscribes."
    )

    from_email = models.CharField(max_length=254, blank=True, help_text="Blank: the platform's default.")
    from_name = models.CharField(max_length=200, blank=True)
    recipe = models.CharField(max_length=32, blank=True, default="")
    # Why the scheduler could not send for it (a from address no longer allowed, say); cleared on success.
    last_error = models.TextField(blank=True, default="")
    # Its webhook steps sign their posts with this (Posthorn-Signature, as outbound webhooks do);
    # made with the first webhook step, encrypted with the platform key.
    webhook_secret_encrypted = models.TextField(blank=True, default="")

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.name

    @property
    def list_ids(self) -> list[int]:
        """The lists its mail is sent to: the claim-time re-check and one-click unsubscribe use them."""
        return [self.trigger_list_id] if self.trigger == Trigger.LIST_JOINED and self.trigger_list_id else []


class StepKind(models.TextChoices):
    SEND = "send", "Send a template"
    WAIT = "wait", "Wait"
    BRANCH = "branch", "Branch"
    SPLIT = "split", "Random split"
    UPDATE_FIELD = "update_field", "Update a field"
    ADD_LIST = "add_list", "Add to a list"
    REMOVE_LIST = "remove_list", "Remove from a list"
    WEBHOOK = "webhook", "Call a webhook"
    END = "end", "End"


class Step(models.Model):
    """One step of the flow. `config` holds the kind's settings (automations.steps checks them):

    send: {} (the template is `template`); wait: {"mode": "duration", "seconds": n} |
    {"mode": "weekday", "weekday": 0-6, "time": "HH:MM"} | {"mode": "date_field", "field": f, "time": "HH:MM"};
    branch: {"condition": "opened"|"clicked", "deadline_seconds": n} | {"condition": "field", "field": f,
    "op": "equals"|"not_equals"|"is_set", "value": v} | {"condition": "segment", "segment_id": n} |
    {"condition": "event", "event": name}; split: {"percent": n}; update_field: {"field": f, "value": v};
    add_list / remove_list: {"list_id": n}; webhook: {"url": u}; end: {}.
    A branch or split continues to the next step when its condition holds (or the run falls in the
    first share) and otherwise goes to the step whose key is config["otherwise"] ("" ends the run).
    """

    automation = models.ForeignKey(Automation, on_delete=models.CASCADE, related_name="steps")
    key = models.CharField(max_length=12)
    position = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=StepKind.choices)
    template = models.ForeignKey(
        "email_templates.EmailTemplate", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    config = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["automation", "position"]
        constraints = [
            models.UniqueConstraint(fields=["automation", "key"], name="automations_step_key_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.position}. {self.get_kind_display()}"


class StepMailing(models.Model):
    """The standing Mailing (delivery's snapshot) a send step sends through, per template version."""

    step = models.ForeignKey(Step, on_delete=models.CASCADE, related_name="mailings")
    mailing_id = models.BigIntegerField()
    template_version_id = models.BigIntegerField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["step", "template_version_id"], name="automations_stepmailing_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"mailing {self.mailing_id} of step {self.step_id}"


class RunStatus(models.TextChoices):
    ACTIVE = "active", "In progress"
    DONE = "done", "Finished"
    EXITED = "exited", "Exited"


class Run(models.Model):
    """One contact's way through one automation."""

    id = models.BigAutoField(primary_key=True)
    automation = models.ForeignKey(Automation, on_delete=models.CASCADE, related_name="runs")
    # No database constraint, as delivery's ledger: a bulk enrolment inserts many rows at once. No
    # index of its own either: automations_run_contact leads with it.
    contact = models.ForeignKey(
        "contacts.Contact", on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    # No database constraint: the scheduler moves thousands of runs a second from step to step, and
    # the constraint checked each move at commit. Step deletion goes through the ORM (SET_NULL), and
    # the scheduler ends a run whose step is gone.
    step = models.ForeignKey(
        Step, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_constraint=False
    )
    status = models.CharField(max_length=8, choices=RunStatus.choices, default=RunStatus.ACTIVE)
    next_at = models.DateTimeField(null=True, blank=True)
    step_entered_at = models.DateTimeField()
    # A wait step's end, once computed on arrival.
    wait_until = models.DateTimeField(null=True, blank=True)
    # The last send step it passed: "opened the previous message" looks at that step's Message.
    last_send_step_id = models.BigIntegerField(null=True, blank=True)
    last_sent_at = models.DateTimeField(null=True, blank=True)
    # What started it: {"event": {...}} for an event trigger ({{ event.* }} in its mail).
    data = models.JSONField(default=dict, blank=True)
    entered_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    exit_reason = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        indexes = [
            # The scheduler's claim: due active runs.
            models.Index(fields=["next_at"], condition=Q(status="active"), name="automations_run_due"),
            # Waiting counts per step in the builder.
            models.Index(
                fields=["automation", "step"], condition=Q(status="active"), name="automations_run_step"
            ),
            # Entry policies and a contact's page.
            models.Index(fields=["contact", "automation", "entered_at"], name="automations_run_contact"),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.contact_id} in {self.automation_id}"


class RunEvent(models.Model):
    """A run's history: entered, each step passed, how it ended."""

    id = models.BigAutoField(primary_key=True)
    # No index of its own: automations_runevent_run leads with it.
    run = models.ForeignKey(
        Run, on_delete=models.CASCADE, related_name="events", db_constraint=False, db_index=False
    )
    step_id = models.BigIntegerField(null=True, blank=True)
    kind = models.CharField(max_length=20)
    at = models.DateTimeField()
    detail = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        indexes = [models.Index(fields=["run", "id"], name="automations_runevent_run")]

    def __str__(self) -> str:
        return f"{self.kind} of run {self.run_id}"


class Event(models.Model):
    """An event an application posted (POST /api/v1/events): triggers and branches read them."""

    id = models.BigAutoField(primary_key=True)
    contact = models.ForeignKey(
        "contacts.Contact", on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    name = models.CharField(max_length=100)
    properties = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["contact", "name", "at"], name="automations_event_contact")]

    def __str__(self) -> str:
        return f"{self.name} of contact {self.contact_id}"


class SegmentMember(models.Model):
    """Who was in an automation's trigger segment at its last evaluation: only newcomers enter."""

    automation = models.ForeignKey(Automation, on_delete=models.CASCADE, related_name="+")
    contact_id = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["automation", "contact_id"], name="automations_segmentmember_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"contact {self.contact_id} in automation {self.automation_id}'s segment"
