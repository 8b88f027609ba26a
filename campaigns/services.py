"""Writes of campaigns: edit, schedule, start (the delivery Mailing snapshot), pause/resume/cancel,
A/B decisions, the deliverability guard, and the beat task's tick."""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo
from collections.abc import Iterable, Sequence
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from campaigns import selectors
from campaigns.models import EDITABLE_STATES, Campaign, CampaignState, GuardLimits, Variant, WinnerMetric
from delivery import selectors as delivery_selectors
from delivery.headers import check_header_value
from delivery.identities import from_allowed, from_refusal
from mailplatform.errors import Conflict, Invalid, NotFound, PlatformError
from mailplatform.selectors import org_data
from mailplatform.services import acting_user, audit_record

log = logging.getLogger(__name__)

FIELDS = (
    "name", "subject", "preheader", "template", "from_email", "from_name", "reply_to", "segment",
    "track_opens", "track_clicks", "utm_enabled", "utm_source", "utm_medium", "utm_campaign", "frequency_cap_hours", "ab_test", "ab_test_percent", "ab_metric",
    "ab_wait_minutes", "window_start", "window_end", "window_timezone",
)  # fmt: skip
LABELS = "ABCD"
# Values that end up in mail headers: refused at once when they carry line breaks.
HEADER_FIELDS = frozenset({"subject", "preheader", "from_email", "from_name", "reply_to"})


def campaign_create(*, name: str, by: Any = None, **fields: Any) -> Campaign:
    if not name.strip():
        raise Invalid("a name is required", field="name")
    # Settings > Organisation's default From and Reply-To, when set, are a new campaign's defaults
    # (what its settings step shows first); unset, the platform's DELIVERY_DEFAULT_FROM_EMAIL.
    org = org_data()
    campaign = Campaign(
        name=name.strip()[:200],
        from_email=org["from_email"] or settings.DELIVERY_DEFAULT_FROM_EMAIL,
        from_name=settings.DELIVERY_DEFAULT_FROM_NAME,
        reply_to=org["reply_to"],
        created_by=acting_user(by),
    )
    with transaction.atomic():
        campaign.save()
        if fields:
            campaign_update(campaign.pk, by=None, **fields)
            campaign.refresh_from_db()
        audit_record(by, "campaign.created", campaign)
    return campaign


def _state_label(campaign: Campaign) -> str:
    return "starting" if campaign.starting else campaign.get_state_display().lower()


def _locked_editable(campaign_id: int) -> Campaign:
    campaign = Campaign.objects.select_for_update().get(pk=campaign_id)
    if not campaign.editable:
        raise Conflict(
            f"this campaign is {_state_label(campaign)}: it can no longer be edited "
            "(clone it to send a changed copy)",
            code="state",
        )
    return campaign


def campaign_update(
    campaign_id: int,
    *,
    by: Any = None,
    lists: Iterable[Any] | None = None,
    exclude_lists: Iterable[Any] | None = None,
    relays: Iterable[Any] | None = None,
    variants: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> Campaign:
    """Change a draft or scheduled campaign; refused (Conflict, nothing changed) once it started.

    variants: [{"subject": ..., "template": EmailTemplate | None}, ...] replaces the A/B arms (2-4).
    """
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise TypeError(f"cannot change {', '.join(sorted(unknown))}")
    with transaction.atomic():
        campaign = _locked_editable(campaign_id)
        for name, value in fields.items():
            if name in HEADER_FIELDS:
                check_header_value(value, field=name.replace("_", " "))
            if name == "from_email" and value and value != campaign.from_email:
                _check_from(value)
            setattr(campaign, name, value.strip() if isinstance(value, str) else value)
        if not 1 <= campaign.ab_test_percent <= 100:
            raise Invalid("the A/B test share must be 1 to 100 percent", field="ab_test_percent")
        if campaign.ab_metric not in WinnerMetric.values:
            raise Invalid("the A/B winner is chosen by opens or clicks", field="ab_metric")
        _check_window(campaign)
        campaign.full_clean(exclude=["template", "segment", "winner", "mailing", "cloned_from", "created_by"])
        campaign.save()
        if lists is not None:
            campaign.lists.set(list(lists))
        if exclude_lists is not None:
            campaign.exclude_lists.set(list(exclude_lists))
        if relays is not None:
            campaign.relays.set(list(relays))
        if variants is not None:
            if variants and not 2 <= len(variants) <= 4:
                raise Invalid("an A/B test has two to four variants", field="variants")
            campaign.variants.all().delete()
            for spec in variants:
                check_header_value(spec.get("subject") or "", field="variant subject")
            for label, spec in zip(LABELS, variants, strict=False):
                Variant.objects.create(
                    campaign=campaign,
                    label=label,
                    subject=(spec.get("subject") or "").strip(),
                    template=spec.get("template"),
                )
        if by is not None:
            audit_record(by, "campaign.updated", campaign, details={"fields": sorted(fields)})
    return campaign


def _check_from(from_email: str) -> None:
    """A campaign's From must be a sending identity (delivery.identities.check_from), said at once."""
    if not from_allowed(from_email.strip()):
        raise Invalid(from_refusal(from_email.strip()), field="from_email", code="from_not_allowed")


def campaign_delete(campaign_id: int, *, by: Any = None) -> None:
    """Delete a campaign that never started (a draft, a scheduled or a failed one)."""
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign_id)
        if not campaign.deletable or campaign.variants.exclude(mailing=None).exists():
            raise Conflict(
                f"this campaign is {_state_label(campaign)}: a campaign that started keeps its report "
                "(cancel it to stop sending)",
                code="state",
            )
        audit_record(by, "campaign.deleted", campaign, details={"name": campaign.name})
        campaign.delete()


def campaign_clone(campaign_id: int, *, by: Any = None) -> Campaign:
    source = Campaign.objects.get(pk=campaign_id)
    with transaction.atomic():
        copy = Campaign.objects.create(
            **{name: getattr(source, name) for name in FIELDS if name != "name"},
            name=f"{source.name} (copy)"[:200],
            cloned_from=source,
            created_by=acting_user(by),
        )
        copy.lists.set(source.lists.all())
        copy.exclude_lists.set(source.exclude_lists.all())
        copy.relays.set(source.relays.all())
        for variant in source.variants.all():
            Variant.objects.create(
                campaign=copy, label=variant.label, subject=variant.subject, template=variant.template
            )
        audit_record(by, "campaign.cloned", copy, details={"from": source.pk})
    return copy


RESEND_MAX_DELAY_HOURS = 24 * 30


def resend_rules(mailing_ids: list[int]) -> dict[str, Any]:
    """Segment rules for "received any of these mailings and opened none of them (human hits)"."""
    ids = ",".join(str(int(i)) for i in mailing_ids)
    return {
        "match": "all",
        "groups": [
            {
                "match": "all",
                "conditions": [
                    {"field": "received", "op": "mailing", "value": ids},
                    {"field": "opened", "op": "not_mailing", "value": ids},
                ],
            }
        ],
    }


def campaign_resend_to_non_openers(
    campaign_id: int, *, subject: str, delay_hours: int, by: Any = None
) -> Campaign:
    """A follow-up of a sent campaign with a new subject, scheduled `delay_hours` from now, to the
    contacts who received it and did not open it (human opens; a click counts as an open).

    It is a copy of the campaign (content, lists, segment, exclusions, settings; no A/B test and no
    frequency cap, since everyone in it was mailed by the original) whose audience also carries
    resend_rules(): planned when it starts, so whoever opened, unsubscribed, bounced or complained
    by then is not in it. It stays editable until then.
    """
    source = Campaign.objects.filter(pk=campaign_id).first()
    if source is None:
        raise NotFound("no such campaign")
    if source.state != CampaignState.SENT:
        raise Conflict(
            f"this campaign is {_state_label(source)}: only a sent campaign can be resent", code="state"
        )
    mailing_ids = selectors.campaign_mailing_ids(source)
    if not mailing_ids:
        raise Conflict("this campaign sent no mail", code="state")
    subject = (subject or "").strip()
    if not subject:
        raise Invalid("a new subject is required", field="subject")
    if "\r" in subject or "\n" in subject or len(subject) > 998:
        raise Invalid("the subject must be one line of at most 998 characters", field="subject")
    if not 0 <= delay_hours <= RESEND_MAX_DELAY_HOURS:
        raise Invalid(
            f"the delay is a whole number of hours from 0 to {RESEND_MAX_DELAY_HOURS}", field="delay_hours"
        )
    with transaction.atomic():
        copy = campaign_clone(source.pk, by=by)
        copy.variants.all().delete()
        copy.name = f"{source.name} (resend to non-openers)"[:200]
        copy.subject = subject
        copy.ab_test = False
        copy.frequency_cap_hours = 0
        copy.resend_of = source
        copy.audience_rules = resend_rules(mailing_ids)
        copy.scheduled_at = timezone.now() + dt.timedelta(hours=delay_hours)
        copy.schedule_timezone = "UTC"
        copy.state = CampaignState.SCHEDULED
        copy.save()
        problems = [p for p in selectors.campaign_problems(copy) if not p.startswith("Audience: nobody")]
        if problems:
            raise Conflict("; ".join(problems), code="problems", messages=problems)
        audit_record(
            by,
            "campaign.resend_scheduled",
            copy,
            details={"from": source.pk, "mailings": mailing_ids, "delay_hours": delay_hours},
        )
    return copy


def campaign_schedule(campaign_id: int, *, local_time: dt.datetime, tz_name: str, by: Any = None) -> Campaign:
    """Schedule for a wall-clock time in a time zone; checks the campaign could be sent now."""
    try:
        zone = zoneinfo.ZoneInfo(tz_name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise Invalid(f"unknown time zone {tz_name!r}", field="timezone") from None
    at = local_time.replace(tzinfo=zone) if timezone.is_naive(local_time) else local_time
    if at <= timezone.now():
        raise Invalid("the scheduled time is in the past", field="scheduled_at")
    with transaction.atomic():
        campaign = _locked_editable(campaign_id)
        problems = selectors.campaign_problems(campaign)
        if problems:
            raise Conflict("; ".join(problems), code="problems", messages=problems)
        campaign.scheduled_at = at
        campaign.schedule_timezone = tz_name
        campaign.state = CampaignState.SCHEDULED
        campaign.hold_reason = ""
        campaign.state_reason = ""
        campaign.save()
        audit_record(by, "campaign.scheduled", campaign, details={"at": at.isoformat(), "tz": tz_name})
    return campaign


def campaign_unschedule(campaign_id: int, *, by: Any = None) -> Campaign:
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign_id)
        if campaign.state != CampaignState.SCHEDULED:
            raise Conflict("only a scheduled campaign can be unscheduled", code="state")
        campaign.state = CampaignState.DRAFT
        campaign.hold_reason = ""
        campaign.save()
        audit_record(by, "campaign.unscheduled", campaign)
    return campaign


def _make_mailing(campaign: Campaign, variant: Variant | None, *, label: str = "") -> Any:
    from delivery.mailings import mailing_create

    compiled, _ = selectors.compiled_for(campaign, variant)
    template = variant.template if variant is not None and variant.template_id else campaign.template
    suffix = f" ({label})" if label else ""
    return mailing_create(
        name=f"{campaign.name}{suffix}",
        compiled=compiled,
        from_email=campaign.from_email,
        from_name=campaign.from_name,
        reply_to=campaign.reply_to,
        list_ids=[m.pk for m in campaign.lists.all()],
        relay_ids=[r.pk for r in campaign.relays.all()],
        send_group=campaign.send_group,
        track_opens=campaign.track_opens,
        track_clicks=campaign.track_clicks,
        template_id=template.pk,
        template_version_id=template.current_version_id,
        meta={
            "campaign_id": campaign.pk,
            "variant": variant.label if variant is not None else label,
            **({"utm": campaign_utm(campaign)} if campaign.utm_enabled and campaign.track_clicks else {}),
            # "Skip contacts mailed in the last N hours" is delivery's frequency cap of one message
            # per N hours that skips (not holds) mail over it, checked again when each message is
            # claimed (an automation's mail since the plan counts); the plan already leaves out
            # whoever was mailed before it.
            **(
                {"frequency_cap": {"messages": 1, "hours": campaign.frequency_cap_hours, "over": "skip"}}
                if campaign.frequency_cap_hours
                else {}
            ),
        },
        send_window=send_window(campaign),
    )


def send_window(campaign: Campaign) -> dict[str, Any] | None:
    """The campaign's sending window as delivery.mailings.mailing_create takes it, or None."""
    if campaign.window_start is None or campaign.window_end is None:
        return None
    return {
        "start": campaign.window_start.strftime("%H:%M"),
        "end": campaign.window_end.strftime("%H:%M"),
        "tz": campaign.window_timezone or "contact",
    }


def _check_window(campaign: Campaign) -> None:
    from delivery.windows import check_window

    if (campaign.window_start is None) != (campaign.window_end is None):
        raise Invalid("a sending window needs both a start and an end", field="window_end")
    window = check_window(send_window(campaign))
    if window is not None:
        campaign.window_timezone = window.zone


def campaign_utm(campaign: Campaign) -> dict[str, str]:
    """The UTM tags its tracked links get: source, medium and campaign (named from the campaign)."""
    from django.utils.text import slugify

    tags = {
        "utm_source": campaign.utm_source.strip(),
        "utm_medium": campaign.utm_medium.strip(),
        "utm_campaign": campaign.utm_campaign.strip() or slugify(campaign.name)[:100],
    }
    return {key: value for key, value in tags.items() if value}


def campaign_send_now(campaign_id: int, *, by: Any = None) -> Campaign:
    """Send now, asked from the dashboard or the API: checks what campaign_start checks, marks the
    campaign due now and leaves the start to a worker. Planning a million recipients takes tens of
    seconds, longer than a request should wait; the campaign page shows it starting meanwhile.
    Should no worker take the task, the beat tick starts it as it starts any due campaign."""
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign_id)
        if not campaign.editable:  # a second "send" sends once
            raise Conflict(f"this campaign is already {_state_label(campaign)}", code="state")
        problems = selectors.campaign_problems(campaign)
        if problems:
            raise Conflict("; ".join(problems), code="problems", messages=problems)
        campaign.state = CampaignState.SCHEDULED
        campaign.scheduled_at = timezone.now()
        campaign.hold_reason = ""
        campaign.state_reason = ""
        campaign.save()
        audit_record(by, "campaign.send_requested", campaign)
        user_id = getattr(by, "pk", None)
        transaction.on_commit(lambda: _enqueue_start(campaign_id, user_id))
    return campaign


def _enqueue_start(campaign_id: int, user_id: int | None) -> None:
    from campaigns.tasks import start

    start.delay(campaign_id, user_id)


def campaign_start_or_fail(campaign_id: int, *, by: Any = None) -> bool:
    """Start a due campaign; one that can no longer be sent is marked failed with the reason.
    False when it was not started (failed, unscheduled meanwhile, or already started)."""
    try:
        campaign_start(campaign_id, by=by, scheduled_only=True)
        return True
    except PlatformError as exc:
        if exc.code != "not_due":  # unscheduled, rescheduled or held meanwhile: not ours to start
            Campaign.objects.filter(pk=campaign_id, state=CampaignState.SCHEDULED).update(
                state=CampaignState.FAILED,
                state_reason=" ".join(exc.messages)[:2000],
                finished_at=timezone.now(),
            )
        return False


def campaign_start(campaign_id: int, *, by: Any = None, scheduled_only: bool = False) -> Campaign:
    """Send now: snapshot the Mailing(s), plan the audience and start delivery. Happens once.

    The row lock and the state check make two people pressing "send" at once send once: the
    second waits for the first, then finds the campaign already sending and is refused. A worker
    starting a due campaign passes `scheduled_only`: one unscheduled, rescheduled or held since
    is left as it is.
    """
    from delivery.mailings import mailing_start

    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign_id)
        if campaign.state not in EDITABLE_STATES:
            raise Conflict(f"this campaign is already {_state_label(campaign)}", code="state")
        if scheduled_only and not campaign.starting:
            raise Conflict("this campaign is not due to start", code="not_due")
        problems = selectors.campaign_problems(campaign)
        if problems:
            raise Conflict("; ".join(problems), code="problems", messages=problems)
        now = timezone.now()
        if campaign.ab_test:
            variants = list(campaign.variants.all())
            for variant, share in zip(
                variants, selectors.variant_shares(campaign, len(variants)), strict=True
            ):
                variant.mailing = _make_mailing(campaign, variant, label=f"variant {variant.label}")
                variant.save(update_fields=["mailing"])
                mailing_start(variant.mailing.pk, audience=selectors.campaign_audience(campaign, share=share))
        else:
            campaign.mailing = _make_mailing(campaign, None)
            mailing_start(campaign.mailing.pk, audience=selectors.campaign_audience(campaign))
        campaign.state = CampaignState.SENDING
        campaign.started_at = now
        campaign.hold_reason = ""
        campaign.state_reason = ""
        campaign.save()
        audit_record(by, "campaign.started", campaign)
    return campaign


def _mailings(campaign: Campaign) -> list[int]:
    return selectors.campaign_mailing_ids(campaign)


def campaign_pause(campaign_id: int, *, by: Any = None, reason: str = "") -> Campaign:
    from delivery.mailings import mailing_pause
    from delivery.models import Mailing

    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign_id)
        if campaign.state != CampaignState.SENDING:
            raise Conflict(
                f"only a sending campaign can be paused (this one is {campaign.get_state_display().lower()})",
                code="state",
            )
        for mailing_id, state in delivery_selectors.mailing_states(_mailings(campaign)).items():
            if state == Mailing.State.SENDING:
                mailing_pause(mailing_id, by=by)
        campaign.state = CampaignState.PAUSED
        campaign.state_reason = reason or "Paused by a person."
        campaign.save()
        audit_record(by, "campaign.paused", campaign, details={"reason": campaign.state_reason})
    return campaign


def campaign_resume(campaign_id: int, *, by: Any = None) -> Campaign:
    from delivery.mailings import mailing_resume
    from delivery.models import Mailing

    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign_id)
        if campaign.state != CampaignState.PAUSED:
            raise Conflict("only a paused campaign can be resumed", code="state")
        if campaign.state_reason.startswith("Deliverability guard"):
            campaign.guard_overridden = True
        for mailing_id, state in delivery_selectors.mailing_states(_mailings(campaign)).items():
            if state == Mailing.State.PAUSED:
                mailing_resume(mailing_id, by=by)
        campaign.state = CampaignState.SENDING
        campaign.state_reason = ""
        campaign.save()
        audit_record(by, "campaign.resumed", campaign)
    return campaign


def campaign_cancel(campaign_id: int, *, by: Any = None) -> Campaign:
    from delivery.mailings import mailing_cancel
    from delivery.models import Mailing

    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign_id)
        if campaign.state in (CampaignState.SENT, CampaignState.CANCELLED, CampaignState.FAILED):
            raise Conflict(
                f"a {campaign.get_state_display().lower()} campaign cannot be cancelled", code="state"
            )
        open_states = [Mailing.State.SENDING, Mailing.State.PAUSED, Mailing.State.DRAFT]
        for mailing_id, state in delivery_selectors.mailing_states(_mailings(campaign)).items():
            if state in open_states:
                mailing_cancel(mailing_id, by=by)
        campaign.state = CampaignState.CANCELLED
        campaign.finished_at = timezone.now()
        campaign.save()
        audit_record(by, "campaign.cancelled", campaign)
    return campaign


TEST_SUBJECT_PREFIX = "[Test] "


def campaign_test_send(
    campaign_id: int, to_addresses: str | Sequence[str], *, as_contact: str = "", by: Any = None,
    variant_label: str = "",
) -> tuple[list[Any], str | None]:  # fmt: skip
    """Send the campaign as it stands to a few addresses, subject marked "[Test] ", rendered as a real
    contact: the one with the address `as_contact`, else the audience's first.

    Returns (messages, the address of the contact it was rendered as, or None for sample data when
    the audience is empty). Raises Invalid(field="as_contact") for an unknown contact.
    """
    from delivery.transactional import test_send_many

    campaign = Campaign.objects.get(pk=campaign_id)
    variant = campaign.variants.filter(label=variant_label).first() if variant_label else None
    addresses = [to_addresses] if isinstance(to_addresses, str) else list(to_addresses)
    as_address = as_contact.strip() or (
        selectors.first_recipient_email(campaign) if campaign.lists.exists() else None
    )
    contact = selectors.preview_contact(as_address) if as_address else None
    if as_contact.strip() and contact is None:
        raise Invalid(f"no contact has the address {as_contact.strip()}", field="as_contact")
    compiled, _ = selectors.compiled_for(campaign, variant, subject_prefix=TEST_SUBJECT_PREFIX)
    messages = test_send_many(
        compiled,
        [a.strip() for a in addresses],
        contact=contact,
        from_email=campaign.from_email or None,
        from_name=campaign.from_name,
        reply_to=campaign.reply_to,
        name=f"Test: {campaign.name}",
        by=by,
    )
    return messages, (contact or {}).get("email")


# --- the beat task's work ---


def _guard_reason(stats: dict[str, int], limits: GuardLimits, *, where: str = "") -> str | None:
    attempted = stats["attempted"]
    if attempted < limits.min_messages:
        return None
    hard = stats["hard"] * 100 / attempted
    complaints = stats["complaints"] * 100 / attempted
    if hard > float(limits.hard_bounce_percent):
        return (
            f"Deliverability guard: {hard:.1f}% hard bounces over {attempted} messages{where} "
            f"is above the {limits.hard_bounce_percent}% limit. Check the list's quality before resuming."
        )
    if complaints > float(limits.complaint_percent):
        return (
            f"Deliverability guard: {complaints:.2f}% spam complaints over {attempted} messages{where} "
            f"is above the {limits.complaint_percent}% limit."
        )
    return None


def guard_groups(campaign: Campaign, limits: GuardLimits) -> tuple[set[str], dict[str, dict[str, int]]]:
    """Pause, in every open Mailing of the campaign, each receiving domain group whose own rates
    crossed the limits while other groups' mail was attempted too (the others keep flowing); returns
    the groups paused or resumed by a person, which the campaign-wide check leaves out, and the
    figures per group. When every group with mail is over the limits, none is paused alone: the
    campaign-wide check pauses the campaign."""
    from delivery.mailings import mailing_pause_group
    from delivery.models import Mailing

    ids = _mailings(campaign)
    pauses = {p["group"]: p for p in delivery_selectors.group_pauses(ids)}
    by_group = delivery_selectors.guard_stats_by_group(ids)
    new = {}
    for group, stats in by_group.items():
        if group not in pauses:
            reason = _guard_reason(stats, limits, where=f" to {group}")
            if reason is not None:
                new[group] = reason
    if new and all(g in new or g in pauses for g, stats in by_group.items() if stats["attempted"]):
        new = {}  # nothing else is flowing: the whole campaign is the problem
    open_ids = [
        m for m, state in delivery_selectors.mailing_states(ids).items()
        if state in (Mailing.State.SENDING, Mailing.State.PAUSED)
    ]  # fmt: skip
    for group, reason in new.items():
        log.warning("campaign %s: %s", campaign.pk, reason)
        pauses[group] = {"group": group, "paused": True, "reason": reason}
    for group, pause in pauses.items():
        if pause["paused"]:  # also holds it in a Mailing started since (an A/B winner)
            for mailing_id in open_ids:
                mailing_pause_group(mailing_id, group, reason=pause["reason"])
    return set(pauses), by_group


def guard_check(campaign_id: int) -> str | None:
    """Pause a sending campaign whose hard-bounce or complaint rate crossed the admin's limits; with
    `per_domain`, first pause only the receiving domain groups over them, and judge the rest apart."""
    campaign = Campaign.objects.get(pk=campaign_id)
    if campaign.state != CampaignState.SENDING or campaign.guard_overridden:
        return None
    limits = GuardLimits.current()
    left_out, by_group = guard_groups(campaign, limits) if limits.per_domain else (set(), {})
    if left_out:
        stats = {"attempted": 0, "hard": 0, "complaints": 0}
        for group, figures in by_group.items():
            if group not in left_out:
                for key in stats:
                    stats[key] += figures[key]
        reason = _guard_reason(stats, limits, where=" to the other domains")
    else:
        stats = delivery_selectors.guard_stats(_mailings(campaign), window=limits.window)
        reason = _guard_reason(stats, limits, where="")
        if reason:
            reason = reason.replace(" over ", " over the first ", 1)
    if reason is None:
        return None
    try:
        campaign_pause(campaign_id, reason=reason)
    except PlatformError:
        return None
    log.warning("campaign %s paused: %s", campaign_id, reason)
    return reason


def campaign_resume_group(campaign_id: int, group: str, *, by: Any = None) -> int:
    """A person lets a receiving domain group the guard paused go on, in every Mailing of the campaign."""
    from delivery.mailings import mailing_resume_group

    campaign = Campaign.objects.get(pk=campaign_id)
    pauses = [
        p for p in delivery_selectors.group_pauses(_mailings(campaign)) if p["group"] == group and p["paused"]
    ]
    if not pauses:
        raise Conflict(f"{group} is not paused for this campaign", code="state")
    back = 0
    with transaction.atomic():
        for mailing_id in pauses[0]["mailing_ids"]:
            try:
                back += mailing_resume_group(mailing_id, group, by=by)
            except Conflict:
                continue
        audit_record(by, "campaign.group_resumed", campaign, details={"group": group, "requeued": back})
    return back


def ab_decide(campaign_id: int, *, force: bool = False) -> Variant | None:
    """After the wait, pick the variant with the best unique human open (or click) rate; send it to the rest."""
    from delivery.mailings import mailing_start

    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign_id)
        if not campaign.ab_test or campaign.ab_decided_at or campaign.state != CampaignState.SENDING:
            return None
        due = campaign.started_at + dt.timedelta(minutes=campaign.ab_wait_minutes)
        if not force and timezone.now() < due:
            return None
        key = "human_opens" if campaign.ab_metric == WinnerMetric.OPENS else "human_clicks"
        best: tuple[float, Variant] | None = None
        for variant in campaign.variants.all():
            figures = delivery_selectors.mailing_figures([variant.mailing_id] if variant.mailing_id else [])
            rate = figures[key] / figures["sent"] if figures["sent"] else 0.0
            if best is None or rate > best[0]:
                best = (rate, variant)
        if best is None:
            return None
        winner = best[1]
        campaign.winner = winner
        campaign.ab_decided_at = timezone.now()
        campaign.mailing = _make_mailing(campaign, winner, label=f"winner {winner.label}")
        mailing_start(campaign.mailing.pk, audience=selectors.campaign_audience(campaign))
        campaign.save()
        audit_record(None, "campaign.ab_decided", campaign, details={"winner": winner.label, "metric": key})
    return winner


def campaign_sync(campaign_id: int) -> str:
    """Bring a sending campaign forward: guard, A/B decision, and `sent` when every Mailing is done."""
    from delivery.mailings import mailing_finish_if_done
    from delivery.models import Mailing

    campaign = Campaign.objects.get(pk=campaign_id)
    if campaign.state != CampaignState.SENDING:
        return campaign.state
    if guard_check(campaign_id):
        return CampaignState.PAUSED
    if campaign.ab_test and not campaign.ab_decided_at:
        ab_decide(campaign_id)
        campaign.refresh_from_db()
        if not campaign.ab_decided_at:
            for mailing_id in _mailings(campaign):
                mailing_finish_if_done(mailing_id)
            return campaign.state
    ids = _mailings(campaign)
    for mailing_id in ids:
        mailing_finish_if_done(mailing_id)
    states = set(delivery_selectors.mailing_states(ids).values())
    if ids and states <= {Mailing.State.DONE, Mailing.State.CANCELLED}:
        # Every Mailing cancelled (from the delivery pages): the campaign was cancelled, not sent.
        final = CampaignState.CANCELLED if states == {Mailing.State.CANCELLED} else CampaignState.SENT
        Campaign.objects.filter(pk=campaign_id, state=CampaignState.SENDING).update(
            state=final, finished_at=timezone.now()
        )
        return final
    return campaign.state


def campaigns_start_due(now: dt.datetime | None = None) -> dict[str, int]:
    """Start scheduled campaigns whose time has come; hold those missed by more than the lateness."""
    now = now or timezone.now()
    lateness = dt.timedelta(minutes=settings.CAMPAIGNS_MAX_LATENESS_MINUTES)
    started = held = failed = 0
    due = Campaign.objects.filter(state=CampaignState.SCHEDULED, scheduled_at__lte=now, hold_reason="")
    for campaign_id, scheduled_at in due.values_list("pk", "scheduled_at"):
        if now - scheduled_at > lateness:
            late = int((now - scheduled_at).total_seconds() // 60)
            Campaign.objects.filter(pk=campaign_id, state=CampaignState.SCHEDULED).update(
                hold_reason=(
                    f"Not sent: the platform was not running at the scheduled time and it is now {late} "
                    f"minutes late (more than the {settings.CAMPAIGNS_MAX_LATENESS_MINUTES} allowed). "
                    "Send it now or reschedule it."
                )
            )
            held += 1
            continue
        if campaign_start_or_fail(campaign_id):
            started += 1
        else:
            failed += 1
    return {"started": started, "held": held, "failed": failed}


def campaigns_tick() -> dict[str, int]:
    result = campaigns_start_due()
    synced = 0
    for campaign_id in Campaign.objects.filter(state=CampaignState.SENDING).values_list("pk", flat=True):
        campaign_sync(campaign_id)
        synced += 1
    result["synced"] = synced
    return result


def campaign_people_segment(campaign: Campaign, op: str, *, title: str, by: Any = None) -> Any:
    """A segment of the contacts behind one of the report's counts (segment rules on the
    campaign's send group: it stays right as late opens and clicks arrive)."""
    from contacts.models import Segment
    from contacts.services import segment_save

    base = f"{campaign.name}: {title}"[:190]
    name, n = base, 1
    while Segment.objects.filter(name=name).exists():
        n += 1
        name = f"{base} ({n})"
    rules = {"match": "all", "groups": [{"match": "all", "conditions": [
        {"field": "mailing", "op": op, "value": campaign.send_group}]}]}  # fmt: skip
    return segment_save(None, name=name, rules=rules, by=by)
