"""Three automations to start from: a welcome series, re-engagement of inactive contacts, birthdays.

A recipe makes the automation (a draft) with its steps and the templates its steps send, so the
person only reviews the words and activates it. The per-list welcome mail is the welcome series
recipe on that list: the list page links here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction

from automations.models import Automation, EntryPolicy, StepKind, Trigger
from automations.services import automation_create, step_add
from mailplatform.errors import Invalid

DAY = 86400


def _html(heading: str, body: str) -> str:
    return (
        f'<h1>{heading}</h1>\n<p>Hello {{{{ contact.first_name | default: "there" }}}},</p>\n<p>{body}</p>\n'
        '<p style="font-size:12px"><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
    )


@dataclass(frozen=True)
class Recipe:
    slug: str
    title: str
    summary: str
    trigger: str
    needs: str  # "list", "segment" or "field": what the person chooses


RECIPES = {
    r.slug: r
    for r in [
        Recipe("welcome", "Welcome series", "Greets each new subscriber of a list at once, then follows up two days later.",
               Trigger.LIST_JOINED, "list"),
        Recipe("reengagement", "Re-engagement", "Mails contacts who enter an 'inactive' segment; those who "
               "do not open within a week are marked as inactive.", Trigger.SEGMENT_ENTERED, "segment"),
        Recipe("birthday", "Birthday", "Wishes every contact a happy birthday at 9 in the morning, their time.",
               Trigger.DATE_FIELD, "field"),
    ]
}  # fmt: skip


def _template(name: str, subject: str, heading: str, body: str, by: Any) -> int:
    from templates.services import template_create

    return template_create(
        name=name, subject=subject, html=_html(heading, body), by=by, note="From a recipe"
    ).pk


def recipe_create(
    slug: str,
    *,
    list_id: int | None = None,
    segment_id: int | None = None,
    field: str = "",
    from_email: str = "",
    by: Any = None,
) -> Automation:
    """Make a draft automation from a recipe, with its steps and templates."""
    recipe = RECIPES.get(slug)
    if recipe is None:
        raise Invalid(f"no recipe {slug!r}", field="recipe")
    with transaction.atomic():
        if slug == "welcome":
            from contacts.models import MailingList

            mailing_list = MailingList.objects.filter(pk=list_id or 0).first()
            if mailing_list is None:
                raise Invalid("choose the list whose subscribers are welcomed", field="trigger_list")
            automation = automation_create(
                name=f"Welcome to {mailing_list.name}", trigger=Trigger.LIST_JOINED, trigger_list_id=mailing_list.pk,
                entry_policy=EntryPolicy.ONCE, recipe=slug, from_email=from_email, by=by,
            )  # fmt: skip
            first = _template(f"Welcome to {mailing_list.name}", f"Welcome to {mailing_list.name}",
                              "Welcome!", "Thank you for subscribing. Here is what to expect from us.", by)  # fmt: skip
            second = _template(f"Getting started ({mailing_list.name})", "Getting the most out of it",
                               "Getting started", "A few tips to get the most out of your subscription.", by)  # fmt: skip
            step_add(automation.pk, kind=StepKind.SEND, template_id=first, by=by)
            step_add(
                automation.pk, kind=StepKind.WAIT, config={"mode": "duration", "seconds": 2 * DAY}, by=by
            )
            step_add(automation.pk, kind=StepKind.SEND, template_id=second, by=by)
        elif slug == "reengagement":
            if not segment_id:
                raise Invalid("choose the segment of inactive contacts", field="trigger_segment")
            automation = automation_create(
                name="Re-engagement", trigger=Trigger.SEGMENT_ENTERED, trigger_segment_id=segment_id,
                entry_policy=EntryPolicy.PERIODIC, entry_days=90, recipe=slug, from_email=from_email, by=by,
            )  # fmt: skip
            mail = _template("We miss you", "We miss you", "It has been a while",
                             "Is this still interesting to you? Open this mail and we will keep writing.", by)  # fmt: skip
            step_add(automation.pk, kind=StepKind.SEND, template_id=mail, by=by)
            branch = step_add(automation.pk, kind=StepKind.BRANCH,
                              config={"condition": "opened", "deadline_seconds": 7 * DAY}, by=by)  # fmt: skip
            step_add(automation.pk, kind=StepKind.END, by=by)
            mark = step_add(automation.pk, kind=StepKind.UPDATE_FIELD,
                            config={"field": "inactive", "value": "yes"}, by=by)  # fmt: skip
            from automations.services import step_update

            step_update(branch.pk, config={**branch.config, "otherwise": mark.key}, by=by)
        else:
            if not field:
                raise Invalid("choose the date field that holds the birthday", field="trigger_field")
            automation = automation_create(
                name="Happy birthday", trigger=Trigger.DATE_FIELD, trigger_field=field, trigger_hour=9,
                entry_policy=EntryPolicy.PERIODIC, entry_days=300, recipe=slug, from_email=from_email, by=by,
            )  # fmt: skip
            mail = _template("Happy birthday", "Happy birthday, {{ contact.first_name | default: \"friend\" }}!",
                             "Happy birthday!", "All the best for the year ahead.", by)  # fmt: skip
            step_add(automation.pk, kind=StepKind.SEND, template_id=mail, by=by)
    return automation
