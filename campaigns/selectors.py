"""Reads of campaigns: audience, checks before sending, progress, reports, home figures."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from campaigns.models import Campaign, CampaignState, GuardLimits, Variant

# Bounce classes: a source's own answer first, then the SMTP reply (policy refusals are blocks).
BOUNCE_CLASS_SQL = r"""CASE
    WHEN e.data->>'kind' IN ('hard', 'soft', 'block') THEN e.data->>'kind'
    WHEN e.data->>'class' IN ('hard', 'soft', 'block') THEN e.data->>'class'
    WHEN e.data->>'bounce_type' IN ('hard', 'soft', 'block') THEN e.data->>'bounce_type'
    WHEN coalesce(e.data->>'reply', e.data->>'diagnostic', '') ~* '(5\.7\.[0-9]|spam|policy|blocked|blocklist|block list|reputation|rbl)'
        THEN 'block'
    WHEN coalesce(e.data->>'code', '') LIKE '4%%' THEN 'soft'
    ELSE 'hard' END"""
HUMAN_SQL = "coalesce(e.data->>'machine', '') = ''"


def bounces_cte(where: str) -> str:
    """`bounces(message_id, class)`: one row per bounced message, the classifier's word first.

    A refusal during sending can be recorded twice (by the engine from the SMTP reply, then by
    the bounce classifier): the classified event wins, so each message counts in one class.
    """
    return f"""bounces AS (
        SELECT DISTINCT ON (e.message_id) e.message_id, ({BOUNCE_CLASS_SQL}) AS class
        FROM delivery_messageevent e WHERE e.kind = 'bounced' AND {where}
        ORDER BY e.message_id, (e.data ? 'kind') DESC, e.at DESC
    )"""  # noqa: S608 - `where` is a fixed fragment from this module


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
) -> tuple[str, list]:
    """(sql, params) selecting the contact ids to send to, for delivery.mailings.mailing_plan.

    contacts' audience (lists, segment, exclusions, suppressions), minus contacts mailed within
    the frequency cap, and, for an A/B arm, only the contacts whose stable hash falls in `share`
    (basis points [low, high) of 10,000), so the arms are disjoint and repeatable.
    """
    from contacts.selectors import audience_sql

    sql, params = audience_sql(
        list_ids=list(list_ids), segment_id=segment_id, exclude_list_ids=list(exclude_list_ids)
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
    from delivery.selectors import mailing_progress

    total = done = sent = failed = skipped = 0
    rate = 0.0
    for mailing_id in campaign_mailing_ids(campaign):
        progress = mailing_progress(mailing_id)
        total += progress["total"]
        done += progress["done"]
        sent += progress["sent"]
        failed += progress["failed"]
        skipped += progress["skipped"]
        rate += progress["rate_per_s"]
    remaining = total - done
    return {
        "total": total,
        "done": done,
        "sent": sent,
        "failed": failed,
        "skipped": skipped,
        "remaining": remaining,
        "percent": int(done * 100 / total) if total else (100 if campaign.state == CampaignState.SENT else 0),
        "rate_per_s": round(rate, 1),
        "eta_s": int(remaining / rate) if rate > 0 and remaining else None,
    }


# --- the guard ---


def guard_stats(mailing_ids: list[int], *, window: int) -> dict[str, int]:
    """Over the first `window` attempted messages: how many, hard bounces and complaints among them."""
    if not mailing_ids:
        return {"attempted": 0, "hard": 0, "complaints": 0}
    row = _rows(
        f"""
        WITH first AS (
            SELECT id FROM delivery_message
            WHERE mailing_id = ANY(%s) AND state IN ('sent', 'failed') ORDER BY id LIMIT %s
        ), {bounces_cte("e.message_id IN (SELECT id FROM first)")}
        SELECT (SELECT count(*) FROM first),
            (SELECT count(*) FROM bounces WHERE class = 'hard'),
            (SELECT count(DISTINCT e.message_id) FROM delivery_messageevent e
             WHERE e.message_id IN (SELECT id FROM first) AND e.kind = 'complained')
        """,  # noqa: S608 - fixed SQL fragments
        [mailing_ids, window],
    )[0]
    return {"attempted": row[0], "hard": row[1], "complaints": row[2]}


# --- reports ---


def _rate(part: int, whole: int) -> float:
    return round(part * 100 / whole, 2) if whole else 0.0


def mailing_figures(mailing_ids: list[int]) -> dict[str, Any]:
    """Every headline number of a set of Mailings, each with its rate."""
    figures = dict.fromkeys(
        (
            "total", "sent", "failed", "skipped", "queued", "bounced", "hard", "soft", "block",
            "opens", "unique_opens", "human_opens", "machine_opens", "clicks", "unique_clicks",
            "human_clicks", "machine_clicks", "unsubscribed", "complained",
        ),
        0,
    )  # fmt: skip
    if mailing_ids:
        row = _rows(
            """
            SELECT count(*), count(*) FILTER (WHERE state = 'sent'), count(*) FILTER (WHERE state = 'failed'),
                count(*) FILTER (WHERE state = 'skipped'),
                count(*) FILTER (WHERE state IN ('queued', 'sending', 'deferred'))
            FROM delivery_message WHERE mailing_id = ANY(%s)
            """,
            [mailing_ids],
        )[0]
        figures.update(zip(("total", "sent", "failed", "skipped", "queued"), row, strict=True))
        row = _rows(
            f"""
            WITH {bounces_cte("e.mailing_id = ANY(%s)")}
            SELECT
                (SELECT count(*) FROM bounces),
                (SELECT count(*) FROM bounces WHERE class = 'hard'),
                (SELECT count(*) FROM bounces WHERE class = 'soft'),
                (SELECT count(*) FROM bounces WHERE class = 'block'),
                count(*) FILTER (WHERE e.kind = 'opened'),
                count(DISTINCT e.message_id) FILTER (WHERE e.kind = 'opened'),
                count(DISTINCT e.message_id) FILTER (WHERE e.kind = 'opened' AND {HUMAN_SQL}),
                count(*) FILTER (WHERE e.kind = 'opened' AND NOT {HUMAN_SQL}),
                count(*) FILTER (WHERE e.kind = 'clicked'),
                count(DISTINCT e.message_id) FILTER (WHERE e.kind = 'clicked'),
                count(DISTINCT e.message_id) FILTER (WHERE e.kind = 'clicked' AND {HUMAN_SQL}),
                count(*) FILTER (WHERE e.kind = 'clicked' AND NOT {HUMAN_SQL}),
                count(DISTINCT e.message_id) FILTER (WHERE e.kind = 'unsubscribed'),
                count(DISTINCT e.message_id) FILTER (WHERE e.kind = 'complained')
            FROM delivery_messageevent e WHERE e.mailing_id = ANY(%s)
            """,  # noqa: S608 - fixed SQL fragments
            [mailing_ids, mailing_ids],
        )[0]
        keys = (
            "bounced", "hard", "soft", "block", "opens", "unique_opens", "human_opens", "machine_opens",
            "clicks", "unique_clicks", "human_clicks", "machine_clicks", "unsubscribed", "complained",
        )  # fmt: skip
        figures.update(zip(keys, row, strict=True))
    attempted = figures["sent"] + figures["failed"]
    # Delivered: accepted by the relay and not bounced later (a 5xx at RCPT is failed and bounced).
    bounced_after_sent = max(0, figures["bounced"] - figures["failed"])
    figures["delivered"] = max(0, figures["sent"] - bounced_after_sent)
    figures["attempted"] = attempted
    rates = {
        "sent": _rate(figures["sent"], figures["total"]),
        "failed": _rate(figures["failed"], figures["total"]),
        "skipped": _rate(figures["skipped"], figures["total"]),
        "delivered": _rate(figures["delivered"], attempted),
    }
    for key in ("bounced", "hard", "soft", "block", "complained"):
        rates[key] = _rate(figures[key], attempted)
    for key in ("unique_opens", "human_opens", "unique_clicks", "human_clicks", "unsubscribed"):
        rates[key] = _rate(figures[key], figures["delivered"])
    figures["rates"] = rates
    return figures


def campaign_report(campaign: Campaign) -> dict[str, Any]:
    ids = campaign_mailing_ids(campaign)
    report = mailing_figures(ids)
    report["variants"] = [
        {"variant": v, "figures": mailing_figures([v.mailing_id] if v.mailing_id else [])}
        for v in campaign.variants.all()
    ] if campaign.ab_test else []  # fmt: skip
    report["links"] = link_clicks(ids)
    report["timeline"] = engagement_timeline(ids)
    report["domains"] = results_by_domain(ids)
    return report


def link_clicks(mailing_ids: list[int]) -> list[dict[str, Any]]:
    if not mailing_ids:
        return []
    rows = _rows(
        f"""
        SELECT e.data->>'url', count(*), count(DISTINCT e.message_id),
            count(DISTINCT e.message_id) FILTER (WHERE {HUMAN_SQL})
        FROM delivery_messageevent e WHERE e.mailing_id = ANY(%s) AND e.kind = 'clicked'
        GROUP BY 1 ORDER BY 2 DESC LIMIT 100
        """,  # noqa: S608
        [mailing_ids],
    )
    return [{"url": r[0] or "", "clicks": r[1], "unique": r[2], "human": r[3]} for r in rows]


def engagement_timeline(mailing_ids: list[int]) -> list[dict[str, Any]]:
    """Opens and clicks (human, unique per message and bucket) per hour, or per day after 3 days."""
    if not mailing_ids:
        return []
    span = _rows(
        "SELECT min(at), max(at) FROM delivery_messageevent WHERE mailing_id = ANY(%s) "
        "AND kind IN ('opened', 'clicked')",
        [mailing_ids],
    )[0]
    if span[0] is None:
        return []
    unit = "hour" if span[1] - span[0] <= dt.timedelta(days=3) else "day"
    rows = _rows(
        f"""
        SELECT date_trunc(%s, e.at) AS bucket,
            count(DISTINCT e.message_id) FILTER (WHERE e.kind = 'opened' AND {HUMAN_SQL}),
            count(DISTINCT e.message_id) FILTER (WHERE e.kind = 'clicked' AND {HUMAN_SQL}),
            count(*) FILTER (WHERE e.kind IN ('opened', 'clicked') AND NOT {HUMAN_SQL})
        FROM delivery_messageevent e
        WHERE e.mailing_id = ANY(%s) AND e.kind IN ('opened', 'clicked')
        GROUP BY 1 ORDER BY 1
        """,  # noqa: S608
        [unit, mailing_ids],
    )
    fmt = "%H:%M" if unit == "hour" else "%b %d"
    return [
        {
            "at": r[0],
            "label": timezone.localtime(r[0]).strftime(fmt),
            "opens": r[1],
            "clicks": r[2],
            "machine": r[3],
        }
        for r in rows
    ]


def results_by_domain(mailing_ids: list[int], *, limit: int = 10) -> list[dict[str, Any]]:
    if not mailing_ids:
        return []
    rows = _rows(
        f"""
        SELECT split_part(lower(m.email), '@', 2) AS domain, count(*),
            count(*) FILTER (WHERE m.state = 'sent'),
            count(*) FILTER (WHERE EXISTS (SELECT 1 FROM delivery_messageevent e
                WHERE e.message_id = m.id AND e.kind = 'bounced')),
            count(*) FILTER (WHERE EXISTS (SELECT 1 FROM delivery_messageevent e
                WHERE e.message_id = m.id AND e.kind = 'opened' AND {HUMAN_SQL})),
            count(*) FILTER (WHERE EXISTS (SELECT 1 FROM delivery_messageevent e
                WHERE e.message_id = m.id AND e.kind = 'clicked' AND {HUMAN_SQL}))
        FROM delivery_message m WHERE m.mailing_id = ANY(%s)
        GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT %s
        """,  # noqa: S608
        [mailing_ids, limit],
    )
    return [
        {
            "domain": r[0],
            "total": r[1],
            "sent": r[2],
            "bounced": r[3],
            "opened": r[4],
            "clicked": r[5],
            "open_rate": _rate(r[4], r[2]),
            "bounce_rate": _rate(r[3], r[1]),
        }
        for r in rows
    ]


def not_received(campaign: Campaign, *, limit: int | None = 200) -> list[dict[str, Any]]:
    """Recipients it did not reach, and why: skipped, failed, still deferred, or bounced after sending."""
    ids = campaign_mailing_ids(campaign)
    if not ids:
        return []
    sql = f"""
        SELECT m.email, m.state, m.smtp_code, m.smtp_reply,
            (SELECT {BOUNCE_CLASS_SQL} FROM delivery_messageevent e WHERE e.message_id = m.id
             AND e.kind = 'bounced' ORDER BY (e.data ? 'kind') DESC, e.at DESC LIMIT 1),
            (SELECT coalesce(e.data->>'diagnostic', e.data->>'reply') FROM delivery_messageevent e
             WHERE e.message_id = m.id AND e.kind = 'bounced' ORDER BY (e.data ? 'kind') DESC, e.at DESC LIMIT 1)
        FROM delivery_message m
        WHERE m.mailing_id = ANY(%s) AND (m.state IN ('failed', 'skipped', 'deferred')
            OR EXISTS (SELECT 1 FROM delivery_messageevent e WHERE e.message_id = m.id AND e.kind = 'bounced'))
        ORDER BY m.id
    """  # noqa: S608
    params: list[Any] = [ids]
    if limit is not None:
        sql += " LIMIT %s"
        params.append(limit)
    out = []
    for email, state, code, reply, bounce, bounce_reply in _rows(sql, params):
        if bounce:
            why = f"{bounce} bounce: {bounce_reply or reply}"
        elif state == "skipped":
            why = reply or "skipped (unsubscribed, bounced or suppressed before sending)"
        elif state == "deferred":
            why = f"still retrying: {reply}"
        else:
            why = f"refused{f' ({code})' if code else ''}: {reply}"
        out.append({"email": email, "state": state, "bounce": bounce or "", "why": why.strip()})
    return out


def recipients_csv_rows(campaign: Campaign):
    """Per recipient: address, variant, state, sent at, opened, clicked (human), bounce, unsubscribed, complained."""
    labels = {v.mailing_id: v.label for v in campaign.variants.all() if v.mailing_id}
    ids = campaign_mailing_ids(campaign)
    if not ids:
        return
    sql = f"""
        SELECT m.mailing_id, m.email, m.state, m.sent_at, m.smtp_reply,
            bool_or(e.kind = 'opened' AND {HUMAN_SQL}), bool_or(e.kind = 'clicked' AND {HUMAN_SQL}),
            bool_or(e.kind = 'opened' AND NOT {HUMAN_SQL}) OR bool_or(e.kind = 'clicked' AND NOT {HUMAN_SQL}),
            max(CASE WHEN e.kind = 'bounced' THEN {BOUNCE_CLASS_SQL} END),
            bool_or(e.kind = 'unsubscribed'), bool_or(e.kind = 'complained')
        FROM delivery_message m LEFT JOIN delivery_messageevent e ON e.message_id = m.id
        WHERE m.mailing_id = ANY(%s)
        GROUP BY m.id ORDER BY m.id
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [ids])
        while True:
            chunk = cursor.fetchmany(2000)
            if not chunk:
                return
            for row in chunk:
                (
                    mailing_id,
                    email,
                    state,
                    sent_at,
                    reply,
                    opened,
                    clicked,
                    machine,
                    bounce,
                    unsub,
                    complaint,
                ) = row
                yield [
                    email,
                    labels.get(mailing_id, "winner" if campaign.ab_test else ""),
                    state,
                    sent_at.isoformat() if sent_at else "",
                    "yes" if opened else "",
                    "yes" if clicked else "",
                    "yes" if machine else "",
                    bounce or "",
                    "yes" if unsub else "",
                    "yes" if complaint else "",
                    reply if state != "sent" else "",
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
    row = _rows(
        f"""
        WITH recent AS (SELECT id FROM delivery_message
            WHERE created_at >= %s AND state IN ('sent', 'failed') AND idempotency_key IS NULL),
        {bounces_cte("e.at >= %s AND e.message_id IN (SELECT id FROM recent)")}
        SELECT (SELECT count(*) FROM recent),
            (SELECT count(*) FROM bounces WHERE class = 'hard'),
            (SELECT count(DISTINCT e.message_id) FROM delivery_messageevent e
             WHERE e.at >= %s AND e.kind = 'complained' AND e.message_id IN (SELECT id FROM recent))
        """,  # noqa: S608
        [since, since, since],
    )[0]
    attempted, hard, complaints = row
    from contacts.models import Subscription

    joined = Subscription.objects.filter(confirmed_at__gte=since).count()
    left = Subscription.objects.filter(unsubscribed_at__gte=since).count()
    return {
        "joined": joined,
        "left": left,
        "growth": joined - left,
        "sending": [{"campaign": c, "progress": campaign_progress(c)} for c in sending],
        "recent": [{"campaign": c, "figures": mailing_figures(campaign_mailing_ids(c))} for c in recent],
        "attempted": attempted,
        "hard_rate": _rate(hard, attempted),
        "complaint_rate": _rate(complaints, attempted),
        "limits": limits,
        "hard_over": attempted > 0 and _rate(hard, attempted) > float(limits.hard_bounce_percent),
        "complaint_over": attempted > 0 and _rate(complaints, attempted) > float(limits.complaint_percent),
        "max_lateness": settings.CAMPAIGNS_MAX_LATENESS_MINUTES,
    }
