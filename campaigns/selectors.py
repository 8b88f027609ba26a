"""Reads of campaigns: audience, checks before sending, progress, reports, home figures."""

from __future__ import annotations

import datetime as dt
import html as htmllib
import re
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import connection
from django.utils import timezone

from campaigns.models import Campaign, CampaignState, GuardLimits, Variant
from delivery import selectors as delivery_selectors
from delivery.identities import from_allowed, from_refusal


def _rows(sql: str, params: Sequence[Any]) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))
        return cursor.fetchall()


# --- audience ---


def audience(
    *,
    list_ids: Sequence[int],
    segment_id: int | None = None,
    exclude_list_ids: Sequence[int] = (),
    frequency_cap_hours: int = 0,
    share: tuple[int, int] | None = None,
    salt: str = "",
    now: dt.datetime | None = None,
    rules: Any = None,
) -> tuple[str, list]:
    """(sql, params) selecting the contact ids to send to, for delivery.mailings.mailing_plan.

    contacts' audience (lists, segment, exclusions, suppressions), minus contacts mailed within
    the frequency cap, and, for an A/B arm, only the contacts whose stable hash falls in `share`
    (basis points [low, high) of 10,000), so the arms are disjoint and repeatable.
    """
    from contacts.selectors import audience_sql

    sql, params = audience_sql(
        list_ids=list(list_ids), segment_id=segment_id, exclude_list_ids=list(exclude_list_ids), rules=rules
    )
    if frequency_cap_hours:
        cutoff = (now or timezone.now()) - dt.timedelta(hours=frequency_cap_hours)
        sql = (
            f"SELECT a.id FROM ({sql}) AS a JOIN contacts_contact f ON f.id = a.id "  # noqa: S608
            "WHERE f.last_sent_at IS NULL OR f.last_sent_at < %s"
        )
        params = [*params, cutoff]
    if share is not None:
        sql = (
            f"SELECT b.id FROM ({sql}) AS b "  # noqa: S608
            "WHERE mod(abs(hashtext(%s || b.id::text)::bigint), 10000) >= %s "
            "AND mod(abs(hashtext(%s || b.id::text)::bigint), 10000) < %s"
        )
        params = [*params, salt, share[0], salt, share[1]]
    return sql, params


def count(audience_query: tuple[str, list]) -> int:
    sql, params = audience_query
    return _rows(f"SELECT count(*) FROM ({sql}) AS audience", params)[0][0]  # noqa: S608


def campaign_audience(campaign: Campaign, *, share: tuple[int, int] | None = None) -> tuple[str, list]:
    return audience(
        list_ids=[m.pk for m in campaign.lists.all()],
        segment_id=campaign.segment_id,
        exclude_list_ids=[m.pk for m in campaign.exclude_lists.all()],
        frequency_cap_hours=campaign.frequency_cap_hours,
        share=share,
        salt=f"campaign:{campaign.pk}:",
        rules=campaign.audience_rules or None,
    )


def audience_count(campaign: Campaign) -> int:
    return count(campaign_audience(campaign))


def first_recipient_email(campaign: Campaign) -> str | None:
    """The address of the audience's first contact (lowest id), for a preview as a recipient."""
    sql, params = campaign_audience(campaign)
    rows = _rows(
        f"SELECT c.email FROM contacts_contact c WHERE c.id = (SELECT min(a.id) FROM ({sql}) AS a)",  # noqa: S608
        params,
    )
    return rows[0][0] if rows else None


def preview_contact(email: str) -> dict[str, Any] | None:
    """The merge data of the contact with this address (any contact: a marketer may see them all)."""
    from contacts.selectors import contact_by_email, contact_merge_data

    contact = contact_by_email(email)
    return contact_merge_data([contact.pk])[contact.pk] if contact is not None else None


def variant_shares(campaign: Campaign, count: int) -> list[tuple[int, int]]:
    """Each arm's [low, high) basis points: the test share split evenly between the variants."""
    total = min(100, max(1, campaign.ab_test_percent)) * 100
    return [(total * i // count, total * (i + 1) // count) for i in range(count)]


# --- content ---


def compiled_for(
    campaign: Campaign, variant: Variant | None = None, contact: dict[str, Any] | None = None,
    *, subject_prefix: str = "",
):  # fmt: skip
    """(CompiledTemplate, RenderedEmail) of the campaign or one of its variants, rendered for
    `contact` (merge data) or with sample data; `subject_prefix` (a test's "[Test] ") goes first.

    The campaign's subject and preheader override the template's; raises TemplateError.
    """
    from templates.compiler import TemplateError
    from templates.selectors import template_preview

    template = variant.template if variant is not None and variant.template_id else campaign.template
    if template is None:
        raise TemplateError("choose a template", part="template")
    subject = (variant.subject if variant is not None and variant.subject else "") or campaign.subject
    return template_preview(
        kind=template.kind,
        subject=subject_prefix + (subject or template.subject),
        html=template.html,
        text=template.text,
        preheader=campaign.preheader or template.preheader,
        layout=template.layout,
        data={"contact": contact} if contact is not None else None,
        # The template's own format (blocks, MJML, Markdown, HTML) and its attachments go out too.
        source_format=template.source_format,
        attachments=template.attachments or (),
    )


def campaign_problems(campaign: Campaign, *, count: int | None = None) -> list[str]:
    """What stops this campaign from being sent, each as a sentence naming the step to fix."""
    from templates.compiler import TemplateError
    from templates.selectors import template_checks

    problems: list[str] = []
    if campaign.template_id is None:
        problems.append("Content: choose a template.")
    else:
        arms: list[Variant | None] = list(campaign.variants.all()) if campaign.ab_test else [None]
        for arm in arms:
            where = f"Content (variant {arm.label})" if arm is not None else "Content"
            try:
                compiled, _ = compiled_for(campaign, arm)
            except TemplateError as exc:
                problems.append(f"{where}: {exc}")
                continue
            if not compiled.subject.strip():
                problems.append(f"{where}: the subject is empty.")
            for check in template_checks(compiled, transactional=False):
                if check.severity == "error":
                    problems.append(f"{where}: {check.message}")
    if campaign.ab_test and not 2 <= campaign.variants.count() <= 4:
        problems.append("Content: an A/B test needs two to four variants.")
    if not campaign.lists.exists():
        problems.append("Audience: choose at least one list.")
    elif (audience_count(campaign) if count is None else count) == 0:
        problems.append("Audience: nobody would receive it (after suppressions and exclusions).")
    if not campaign.from_email:
        problems.append("Settings: the from address is empty.")
    elif not from_allowed(campaign.from_email):
        problems.append(f"Settings: {from_refusal(campaign.from_email)}.")
    elif settings.CAMPAIGNS_REFUSE_UNAUTHENTICATED_FROM:
        standing = from_standing(campaign.from_email)
        if standing.failing:
            problems.append(
                f"Settings: {standing.domain} fails its DNS checks ({'; '.join(standing.failures)}): "
                "publish the records on the DNS checklist."
            )
    return problems


def spam_reports(campaign: Campaign) -> list[dict[str, Any]]:
    """SpamAssassin's score of each arm's message, rendered with sample data and built with the
    headers delivery sends (From, List-Unsubscribe one-click, text and HTML alternatives)."""
    from templates.compiler import TemplateError
    from templates.spamcheck import spam_check

    arms: list[Variant | None] = list(campaign.variants.all()) if campaign.ab_test else [None]
    reports: list[dict[str, Any]] = []
    for arm in arms:
        try:
            _compiled, rendered = compiled_for(campaign, arm)
        except TemplateError as exc:
            reports.append({"variant": arm, "error": str(exc)})
            continue
        reports.append({"variant": arm, "report": spam_check(_preview_message(campaign, rendered))})
    return reports


def _preview_message(campaign: Campaign, rendered) -> bytes:
    from email.message import EmailMessage
    from email.utils import format_datetime, formataddr, make_msgid

    message = EmailMessage()
    message["From"] = formataddr(
        (campaign.from_name, campaign.from_email or settings.DELIVERY_DEFAULT_FROM_EMAIL)
    )
    message["To"] = formataddr(("Ada Lovelace", "ada.lovelace@example.org"))
    if campaign.reply_to:
        message["Reply-To"] = campaign.reply_to
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(timezone.now())
    message["Message-ID"] = make_msgid(
        idstring=f"campaign-{campaign.pk}-preview", domain=settings.BOUNCE_DOMAIN
    )
    message["List-Unsubscribe"] = (
        f"<mailto:unsubscribe@{settings.BOUNCE_DOMAIN}>, <{settings.SITE_URL}/u/preview/>"
    )
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(rendered.text or " ")
    if rendered.html:
        message.add_alternative(rendered.html, subtype="html")
    return message.as_bytes()


def from_standing(from_email: str):
    """What DNS says about the From address (delivery's last check): the review page warns, and
    campaign_problems refuses when CAMPAIGNS_REFUSE_UNAUTHENTICATED_FROM is on."""
    from delivery.dnsauth.selectors import from_standing as standing

    return standing(from_email)


# --- progress ---


def campaign_mailing_ids(campaign: Campaign) -> list[int]:
    ids = [v.mailing_id for v in campaign.variants.all() if v.mailing_id]
    if campaign.mailing_id and campaign.mailing_id not in ids:
        ids.append(campaign.mailing_id)
    return ids


def campaign_progress(campaign: Campaign) -> dict[str, Any]:
    """Sent / total, rate and time left over all the campaign's Mailings."""
    total = done = sent = failed = skipped = after_pause = 0
    rate = 0.0
    held: dict[str, int] = {}
    warmup = None
    window = None
    eta = None
    for mailing_id in campaign_mailing_ids(campaign):
        progress = delivery_selectors.mailing_progress(mailing_id)
        for reason, count in progress["held"].items():
            held[reason] = held.get(reason, 0) + count
        if progress["warmup"] and (warmup is None or progress["warmup"]["finish_on"] > warmup["finish_on"]):
            warmup = progress["warmup"]
        if progress["window"]:
            # One window for all the campaign's Mailings: what waits outside it, and the earliest next.
            mine = progress["window"]
            if window is None:
                window = dict(mine)
            else:
                window["held"] += mine["held"]
                window["next_at"] = min(filter(None, [window["next_at"], mine["next_at"]]), default=None)
        total += progress["total"]
        done += progress["done"]
        sent += progress["sent"]
        failed += progress["failed"]
        skipped += progress["skipped"]
        rate += progress["rate_per_s"]
        after_pause += progress["after_pause"]
        if progress["eta_s"] is not None:
            eta = max(eta or 0, progress["eta_s"])
    remaining = total - done
    paused = campaign.state == CampaignState.PAUSED
    if paused:  # nothing goes out while paused: no rate, no time left
        rate, eta = 0.0, None
    elif warmup is not None:  # held by warm-up: the schedule's finish day says it, not seconds
        eta = None
    elif rate > 0 and remaining:
        eta = max(eta or 0, int(remaining / rate + 0.5))
    return {
        "total": total,
        "done": done,
        "sent": sent,
        "failed": failed,
        "skipped": skipped,
        "remaining": remaining,
        "percent": int(done * 100 / total) if total else (100 if campaign.state == CampaignState.SENT else 0),
        "rate_per_s": round(rate, 1),
        "eta_s": eta if remaining else None,
        "paused": paused,
        "after_pause": after_pause,
        # Waiting in the ledger, by reason (delivery's HoldReason values), and the warm-up's estimate.
        "held": held,
        "warmup": warmup,
        # The sending window (delivery.windows), what waits outside it and when the next goes.
        "window": window,
        # Receiving domain groups the guard paused on their own (the rest keeps flowing).
        "group_pauses": delivery_selectors.group_pauses(campaign_mailing_ids(campaign)),
    }


# --- reports (the figures are delivery's: delivery.selectors) ---


def campaign_report(campaign: Campaign) -> dict[str, Any]:
    ids = campaign_mailing_ids(campaign)
    report = delivery_selectors.mailing_figures(ids)
    report["variants"] = [
        {"variant": v, "figures": delivery_selectors.mailing_figures([v.mailing_id] if v.mailing_id else [])}
        for v in campaign.variants.all()
    ] if campaign.ab_test else []  # fmt: skip
    report["links"] = delivery_selectors.link_clicks(ids)
    report["timeline"] = delivery_selectors.engagement_timeline(ids)
    report["domains"] = delivery_selectors.results_by_domain(ids)
    return report


_ANCHOR = re.compile(r"<a\b[^>]*?\bhref\s*=\s*(\"([^\"]*)\"|'([^']*)')[^>]*>", re.IGNORECASE)


def click_map(campaign: Campaign, report: dict[str, Any]) -> str:
    """The message as sent (its template version, sample merge data) with a badge on each link:
    the people who clicked it and their share of those it was delivered to. Shown in a sandboxed
    frame (srcdoc, no scripts); "" when there is nothing to draw."""
    from delivery.models import Mailing
    from templates.compiler import TemplateError
    from templates.selectors import template_render

    mailing = Mailing.objects.filter(pk__in=campaign_mailing_ids(campaign)).order_by("id").first()
    try:
        if mailing is not None and mailing.template_id:
            html = template_render(mailing.template_id, version_id=mailing.template_version_id).html
        else:
            html = compiled_for(campaign)[1].html
    except (TemplateError, ObjectDoesNotExist):
        return ""
    from delivery.tracking import mailing_links

    tracked = (
        set(mailing_links(mailing.compiled, clicks=mailing.track_clicks)) if mailing is not None else set()
    )
    by_url = {link["url"]: link for link in report.get("links", [])}
    delivered = max(1, int(report.get("delivered") or 0))

    def badge(match: re.Match[str]) -> str:
        url = htmllib.unescape(match.group(2) if match.group(2) is not None else match.group(3))
        if url not in tracked:
            return match.group(0)  # not tracked (a per-recipient link): nothing is known about it
        link = by_url.get(url, {"human": 0, "clicks": 0})
        people = int(link["human"])
        share = round(people * 100 / delivered, 1)
        text = f"{people} clicked · {share}%"
        return (
            '<span data-click-map="1" style="display:inline-block;font:bold 12px/1.4 sans-serif;'
            "background:#b4530a;color:#fff;border-radius:8px;padding:0 6px;margin:0 4px;"
            f'text-decoration:none" title="{htmllib.escape(url)}: {people} people clicked ({link["clicks"]} clicks)">'
            f"{htmllib.escape(text)}</span>" + match.group(0)
        )

    return _ANCHOR.sub(badge, html)


def not_received(campaign: Campaign, *, limit: int | None = 200) -> list[dict[str, Any]]:
    """Recipients the campaign did not reach, and why."""
    return delivery_selectors.not_received(campaign_mailing_ids(campaign), limit=limit)


def recipient_rows(campaign: Campaign):
    """Per recipient of the campaign (all its Mailings), as delivery.selectors.recipient_rows."""
    return delivery_selectors.recipient_rows(campaign_mailing_ids(campaign))


def recipients_csv_rows(campaign: Campaign):
    """Per recipient: address, variant, state, sent at, opened, clicked (human), bounce, unsubscribed, complained."""
    labels = {v.mailing_id: v.label for v in campaign.variants.all() if v.mailing_id}
    for row in recipient_rows(campaign):
        yield [
            row["email"],
            labels.get(row["mailing_id"], "winner" if campaign.ab_test else ""),
            row["state"],
            row["sent_at"].isoformat() if row["sent_at"] else "",
            "yes" if row["opened"] else "",
            "yes" if row["clicked"] else "",
            "yes" if row["machine"] else "",
            row["bounce"],
            "yes" if row["unsubscribed"] else "",
            "yes" if row["complained"] else "",
            row["reply"] if row["state"] != "sent" else "",
        ]


# --- lists and home ---


def campaign_list(*, state: str = "") -> list[Campaign]:
    qs = Campaign.objects.select_related("template")
    if state:
        qs = qs.filter(state=state)
    return list(qs[:200])


def home_figures() -> dict[str, Any]:
    limits = GuardLimits.current()
    sending = list(Campaign.objects.filter(state__in=[CampaignState.SENDING, CampaignState.PAUSED])[:5])
    recent = list(Campaign.objects.filter(state=CampaignState.SENT).order_by("-finished_at")[:5])
    since = timezone.now() - dt.timedelta(days=30)
    health = delivery_selectors.marketing_health(since)
    attempted, hard, complaints = health["attempted"], health["hard"], health["complaints"]
    from contacts.selectors import list_growth

    # The same 30 days the contacts panel draws, from contacts' own selector: one figure, not two.
    growth = list_growth(30)
    joined, left = sum(d["joined"] for d in growth), sum(d["left"] for d in growth)
    return {
        "joined": joined,
        "left": left,
        "growth": joined - left,
        "sending": [{"campaign": c, "progress": campaign_progress(c)} for c in sending],
        "recent": [
            {"campaign": c, "figures": delivery_selectors.mailing_figures(campaign_mailing_ids(c))}
            for c in recent
        ],
        "attempted": attempted,
        "hard_rate": delivery_selectors.rate(hard, attempted),
        "complaint_rate": delivery_selectors.rate(complaints, attempted),
        "limits": limits,
        "hard_over": attempted > 0
        and delivery_selectors.rate(hard, attempted) > float(limits.hard_bounce_percent),
        "complaint_over": attempted > 0
        and delivery_selectors.rate(complaints, attempted) > float(limits.complaint_percent),
        "max_lateness": settings.CAMPAIGNS_MAX_LATENESS_MINUTES,
    }


def a_campaign_was_sent() -> bool:
    """The home checklist's last step: a campaign started sending (or finished)."""
    return Campaign.objects.filter(state__in=[CampaignState.SENDING, CampaignState.SENT]).exists()
