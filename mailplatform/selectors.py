"""Reads for the platform's own pages: service health, audit log, captured mail."""

from __future__ import annotations

import email
import email.policy
import hmac
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Q, QuerySet
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from mailplatform.models import ApiKey, AuditEntry, CapturedMessage, User, WebhookDelivery, WebhookEndpoint
from mailplatform.redis_cache import redis_client
from mailplatform.roles import Role


@dataclass(frozen=True)
class ServiceState:
    name: str
    up: bool
    detail: str


def database_state() -> ServiceState:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT version()")
            version = cursor.fetchone()[0]
        return ServiceState("database", True, version.split(" on ")[0])
    except Exception as exc:
        return ServiceState("database", False, str(exc).splitlines()[0])


def redis_state() -> ServiceState:
    try:
        info = redis_client().info("server")
        return ServiceState("redis", True, f"Redis {info.get('redis_version', '?')}")
    except Exception as exc:
        return ServiceState("redis", False, str(exc).splitlines()[0])


def worker_state() -> ServiceState:
    """Workers whose heartbeat (mailplatform.workers) is recent: one Redis read, no broker round trip."""
    from mailplatform.workers import HEARTBEAT_SECONDS, last_heartbeats

    try:
        beats = last_heartbeats()
    except Exception as exc:
        return ServiceState("worker", False, str(exc).splitlines()[0])
    now = timezone.now().timestamp()
    alive = sum(1 for at in beats.values() if now - at <= HEARTBEAT_SECONDS * 3)
    return ServiceState("worker", alive > 0, f"{alive} worker(s) beating")


def broker_state() -> ServiceState:
    """Connect to Celery's broker (Redis or RabbitMQ): a web process that cannot enqueue is not ready."""
    from mailplatform.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=2)
            return ServiceState("broker", True, conn.transport.driver_name)
    except Exception as exc:
        return ServiceState("broker", False, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


_migrations_applied = False


def migrations_state() -> ServiceState:
    """Every migration this code knows is applied. Once true it stays true for the process (new
    migrations come with new code, so a new process), so the graph is loaded only until then."""
    global _migrations_applied
    if _migrations_applied:
        return ServiceState("migrations", True, "applied")
    from django.db.migrations.executor import MigrationExecutor

    try:
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception as exc:
        return ServiceState("migrations", False, str(exc).splitlines()[0])
    if plan:
        return ServiceState("migrations", False, f"{len(plan)} unapplied (run manage.py migrate)")
    _migrations_applied = True
    return ServiceState("migrations", True, "applied")


def readiness() -> list[ServiceState]:
    """What /readyz checks: the web process can serve and enqueue (workers are not its business)."""
    return [database_state(), redis_state(), broker_state(), migrations_state()]


def platform_state() -> list[ServiceState]:
    return [database_state(), redis_state(), worker_state()]


def home_fragment_urls() -> list[str]:
    """Apps contribute home page panels by URL name (settings.HOME_FRAGMENTS); missing ones are skipped."""
    urls = []
    for name in settings.HOME_FRAGMENTS:
        try:
            urls.append(reverse(name))
        except NoReverseMatch:
            continue
    return urls


def audit_entries(*, action: str = "", actor: str = "", target_type: str = "") -> QuerySet[AuditEntry]:
    entries = AuditEntry.objects.all()
    if action:
        entries = entries.filter(action__startswith=action)
    if actor:
        entries = entries.filter(actor_label__iexact=actor)
    if target_type:
        entries = entries.filter(target_type=target_type)
    return entries


# Where an audited object is seen in the dashboard: model label -> (URL name, takes the id).
# Names, not imports: the ground floor knows the apps' URLs only as strings.
AUDIT_LINKS: dict[str, tuple[str, bool]] = {
    "campaigns.Campaign": ("campaigns:detail", True),
    "contacts.Contact": ("contacts:detail", True),
    "contacts.MailingList": ("contacts:list-edit", True),
    "contacts.Segment": ("contacts:segment-edit", True),
    "contacts.CustomField": ("contacts:field-edit", True),
    "contacts.ContactImport": ("contacts:import-detail", True),
    "contacts.Suppression": ("contacts:suppressions", False),
    "templates.EmailTemplate": ("templates:edit", True),
    "delivery.Mailing": ("delivery:mailing", True),
    "delivery.Relay": ("delivery:relay-edit", True),
    "delivery.SendingIdentity": ("delivery:identities", False),
    "bounces.BounceMailbox": ("bounces:mailbox-edit", True),
    "mailplatform.User": ("users", False),
    "mailplatform.ApiKey": ("api-keys", False),
    "mailplatform.WebhookEndpoint": ("webhook-detail", True),
}


def _type_name(label: str) -> str:
    from django.apps import apps

    try:
        return str(apps.get_model(label)._meta.verbose_name).capitalize()
    except (LookupError, ValueError):
        return label.rsplit(".", 1)[-1]


def _plain(value: Any) -> str:
    """A stored detail value in words: no Python reprs."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_plain(v) for v in value) or "—"
    if isinstance(value, dict):
        return ", ".join(f"{k.replace('_', ' ')} {_plain(v)}" for k, v in value.items()) or "—"
    return str(value)


def audit_changes_text(action: str, details: dict[str, Any]) -> list[str]:
    """An entry's details as lines a person reads: "field: old → new", "changed: a, b", "key: value"."""
    details = dict(details or {})
    lines = []
    for field, pair in (details.pop("changes", None) or {}).items():
        old, new = (list(pair) + [None, None])[:2] if isinstance(pair, list | tuple) else (None, pair)
        lines.append(f"{field.replace('_', ' ')}: {_plain(old)} → {_plain(new)}")
    if "from" in details and "to" in details:
        what = action.rsplit(".", 1)[-1].removesuffix("_changed").replace("_", " ")
        lines.append(f"{what}: {_plain(details.pop('from'))} → {_plain(details.pop('to'))}")
    for key in [k for k in details if k.endswith("_before")]:
        field = key.removesuffix("_before")
        lines.append(
            f"{field.replace('_', ' ')}: {_plain(details.pop(key))} → {_plain(details.pop(field, None))}"
        )
    for key in ("fields", "changed"):
        if key in details:
            lines.append(f"changed: {_plain(details.pop(key))}")
    lines += [f"{key.replace('_', ' ')}: {_plain(value)}" for key, value in details.items()]
    return lines


def audit_rows(entries: Any) -> list[dict[str, Any]]:
    """Entries as the audit log shows them: who, what (in words), which object (a link where it
    still has a page), and the changes; never a dict or a model path."""
    rows = []
    for entry in entries:
        url = ""
        link = AUDIT_LINKS.get(entry.target_type)
        if link and entry.target_id:
            try:
                url = reverse(link[0], args=[entry.target_id] if link[1] else [])
            except NoReverseMatch:
                url = ""
        rows.append(
            {
                "entry": entry,
                "what": entry.action.replace(".", " ").replace("_", " ").capitalize(),
                "type": _type_name(entry.target_type) if entry.target_type else "",
                "object": entry.target_label,
                "url": url,
                "changes": audit_changes_text(entry.action, entry.details),
            }
        )
    return rows


def audit_filter_choices() -> dict[str, list]:
    """The people and object types in the log, for its filter menus."""
    actors = AuditEntry.objects.order_by("actor_label").values_list("actor_label", flat=True).distinct()
    types = AuditEntry.objects.exclude(target_type="").order_by("target_type")
    types = types.values_list("target_type", flat=True).distinct()
    return {"actors": list(actors), "types": [(t, _type_name(t)) for t in types]}


def captured_messages(*, search: str = "", tests_only: bool = False) -> QuerySet[CapturedMessage]:
    """Newest first; `search` matches a recipient's address or the subject (any part, any case)."""
    rows = CapturedMessage.objects.defer("raw").order_by("-received_at", "-id")
    search = search.strip()[:200]
    if search:
        rows = rows.filter(Q(subject__icontains=search) | Q(recipients__icontains=search))
    if tests_only:
        rows = rows.filter(is_test=True)
    return rows


def captured_message_parts(message: CapturedMessage) -> dict[str, Any]:
    """The captured message read back: its headers in order, the HTML part, the text part, the attachments."""
    parsed = email.message_from_bytes(bytes(message.raw), policy=email.policy.default)
    headers = []
    for name, value in parsed.items():
        try:
            headers.append((name, str(value)))
        except Exception:  # a malformed header is shown raw rather than lost
            headers.append((name, str(parsed.get_all(name, [""])[0])))
    parts: dict[str, str] = {}
    for kind in ("html", "plain"):
        try:
            part = parsed.get_body(preferencelist=(kind,))
            parts[kind] = part.get_content() if part is not None else ""
        except (LookupError, ValueError, KeyError):
            parts[kind] = ""
    attachments = []
    for part in parsed.iter_attachments():
        try:
            payload = part.get_payload(decode=True) or b""
            filename = part.get_filename() or "attachment"
        except (LookupError, ValueError, KeyError):
            continue
        attachments.append(
            {
                "filename": filename,
                "content_type": part.get_content_type(),
                "size": len(payload),
                "payload": payload,
            }
        )
    return {"headers": headers, "html": parts["html"], "text": parts["plain"], "attachments": attachments}


# --- API keys and webhooks ---


def api_key_by_full_key(full_key: str) -> ApiKey | None:
    """The key named by `phk_<prefix>_<secret>` if the secret matches, else None."""
    from mailplatform.services import API_KEY_PREFIX, api_key_hash

    if not full_key.startswith(API_KEY_PREFIX):
        return None
    prefix, _, secret = full_key[len(API_KEY_PREFIX) :].partition("_")
    if not prefix or not secret or len(prefix) > 16:
        return None
    key = ApiKey.objects.select_related("created_by").filter(prefix=prefix).first()
    if key is None or not hmac.compare_digest(key.secret_hash, api_key_hash(full_key)):
        return None
    return key


def api_key_problem(key: ApiKey) -> str:
    """Why `key` may not be used now; empty when it may."""
    if key.revoked_at is not None:
        return "This API key was revoked."
    if key.expires_at is not None and key.expires_at <= timezone.now():
        return "This API key has expired."
    if not key.created_by.is_active:
        return "The owner of this API key is deactivated."
    return ""


def api_keys_visible_to(user: User) -> QuerySet[ApiKey]:
    """Admins see every key (to revoke a leaked one); others see their own."""
    keys = ApiKey.objects.select_related("created_by")
    return keys if user.role == Role.ADMIN else keys.filter(created_by=user)


def webhook_endpoints() -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.all()


def webhook_deliveries(
    *, endpoint: WebhookEndpoint | None = None, status: str = ""
) -> QuerySet[WebhookDelivery]:
    deliveries = WebhookDelivery.objects.select_related("endpoint")
    if endpoint is not None:
        deliveries = deliveries.filter(endpoint=endpoint)
    if status:
        deliveries = deliveries.filter(status=status)
    return deliveries


# --- The organisation ({{ org.* }} in templates) ---

ORG_FIELDS = ("name", "postal_address", "logo_url", "from_email", "reply_to", "website")
_ORG_CACHE_KEY = "mailplatform:org"


def org_data() -> dict[str, str]:
    """The organisation's details as plain strings for templates (`org.name`, `org.postal_address`,
    `org.logo_url`, `org.from_email`, `org.reply_to`, `org.website`); cached until they are saved."""
    from django.conf import settings
    from django.core.cache import cache

    data = cache.get(_ORG_CACHE_KEY)
    if data is None:
        from mailplatform.models import Organisation

        org = Organisation.objects.order_by("pk").first() or Organisation()
        data = {
            "name": org.name,
            "postal_address": org.postal_address,
            "logo_url": org.logo_url,
            "from_email": org.default_from_email or settings.DELIVERY_DEFAULT_FROM_EMAIL,
            "reply_to": org.default_reply_to,
            "website": org.public_base_url or settings.SITE_URL,
        }
        cache.set(_ORG_CACHE_KEY, data, timeout=300)
    return dict(data)
