"""The hand-written truth of who may do what (issue #12): every API operation's scope, every dashboard
route's capability, each capability's roles and each role's default API key scopes.

Written by hand on purpose: the code's own declarations (`x-required-scope`, `required_capability`,
`CAPABILITIES`, `scope_ceiling`) are checked against these tables, never the other way round, so a
wrong scope or capability in the code fails a test instead of passing both the code and the test.
A new API operation or dashboard route fails tests/security/test_permission_truth.py until it is
named here. Read by tests/api/test_permission_matrix.py and tests/security/.
"""

from __future__ import annotations

# (method, path as in the OpenAPI schema) -> the scope a key needs (None: any valid key).
API_SCOPES: dict[tuple[str, str], str | None] = {
    ("GET", "/api/v1/automations/"): "automations:read",
    ("GET", "/api/v1/automations/{id}/"): "automations:read",
    ("POST", "/api/v1/automations/{id}/enrol"): "automations:write",
    ("POST", "/api/v1/automations/{id}/remove"): "automations:write",
    ("GET", "/api/v1/automations/{id}/runs/"): "automations:read",
    ("POST", "/api/v1/automations/{id}/status"): "automations:write",
    ("POST", "/api/v1/events"): "events:write",
    ("GET", "/api/v1/bounces/"): "events:read",
    ("GET", "/api/v1/campaigns/"): "campaigns:read",
    ("POST", "/api/v1/campaigns/"): "campaigns:write",
    ("GET", "/api/v1/campaigns/{id}/"): "campaigns:read",
    ("PATCH", "/api/v1/campaigns/{id}/"): "campaigns:write",
    ("DELETE", "/api/v1/campaigns/{id}/"): "campaigns:write",
    ("POST", "/api/v1/campaigns/{id}/cancel"): "campaigns:write",
    ("POST", "/api/v1/campaigns/{id}/clone"): "campaigns:write",
    ("POST", "/api/v1/campaigns/{id}/pause"): "campaigns:write",
    ("GET", "/api/v1/campaigns/{id}/report"): "campaigns:read",
    ("POST", "/api/v1/campaigns/{id}/resume"): "campaigns:write",
    ("POST", "/api/v1/campaigns/{id}/schedule"): "campaigns:write",
    ("POST", "/api/v1/campaigns/{id}/send"): "campaigns:write",
    ("POST", "/api/v1/campaigns/{id}/test-send"): "campaigns:write",
    ("POST", "/api/v1/campaigns/{id}/unschedule"): "campaigns:write",
    ("GET", "/api/v1/contacts/"): "contacts:read",
    ("POST", "/api/v1/contacts/"): "contacts:write",
    ("GET", "/api/v1/contacts/{id}/"): "contacts:read",
    ("PATCH", "/api/v1/contacts/{id}/"): "contacts:write",
    ("DELETE", "/api/v1/contacts/{id}/"): "contacts:write",
    ("GET", "/api/v1/contacts/{id}/export"): "contacts:read",
    ("GET", "/api/v1/contacts/{id}/subscriptions/"): "contacts:read",
    ("POST", "/api/v1/contacts/{id}/subscriptions/"): "contacts:write",
    ("POST", "/api/v1/contacts/{id}/unsubscribe"): "contacts:write",
    ("POST", "/api/v1/contacts/bulk"): "contacts:write",
    ("GET", "/api/v1/contacts/lookup"): "contacts:read",
    ("GET", "/api/v1/events/"): "events:read",
    ("GET", "/api/v1/imports/"): "contacts:read",
    ("POST", "/api/v1/imports/"): "contacts:write",
    ("GET", "/api/v1/imports/{id}/"): "contacts:read",
    ("GET", "/api/v1/imports/{id}/errors"): "contacts:read",
    ("GET", "/api/v1/key"): None,
    ("GET", "/api/v1/lists/"): "contacts:read",
    ("POST", "/api/v1/lists/"): "contacts:write",
    ("GET", "/api/v1/lists/{id}/"): "contacts:read",
    ("PATCH", "/api/v1/lists/{id}/"): "contacts:write",
    ("DELETE", "/api/v1/lists/{id}/"): "contacts:write",
    ("GET", "/api/v1/lists/{id}/members/"): "contacts:read",
    ("GET", "/api/v1/messages/{id}/"): "events:read",
    ("GET", "/api/v1/relays/"): "relays:admin",
    ("POST", "/api/v1/relays/"): "relays:admin",
    ("GET", "/api/v1/relays/{id}/"): "relays:admin",
    ("PATCH", "/api/v1/relays/{id}/"): "relays:admin",
    ("DELETE", "/api/v1/relays/{id}/"): "relays:admin",
    ("GET", "/api/v1/segments/"): "contacts:read",
    ("POST", "/api/v1/segments/"): "contacts:write",
    ("GET", "/api/v1/segments/{id}/"): "contacts:read",
    ("PATCH", "/api/v1/segments/{id}/"): "contacts:write",
    ("DELETE", "/api/v1/segments/{id}/"): "contacts:write",
    ("GET", "/api/v1/segments/{id}/count"): "contacts:read",
    ("GET", "/api/v1/segments/{id}/members/"): "contacts:read",
    ("POST", "/api/v1/send"): "send",
    ("GET", "/api/v1/suppressions/"): "contacts:read",
    ("POST", "/api/v1/suppressions/"): "contacts:write",
    ("GET", "/api/v1/suppressions/{id}/"): "contacts:read",
    ("DELETE", "/api/v1/suppressions/{id}/"): "contacts:write",
    ("GET", "/api/v1/templates/"): "templates:read",
    ("POST", "/api/v1/templates/"): "templates:write",
    ("GET", "/api/v1/templates/{id}/"): "templates:read",
    ("PATCH", "/api/v1/templates/{id}/"): "templates:write",
    ("DELETE", "/api/v1/templates/{id}/"): "templates:write",
    ("POST", "/api/v1/templates/{id}/preview"): "templates:read",
    ("GET", "/api/v1/templates/{id}/versions/"): "templates:read",
    ("GET", "/api/v1/webhooks/"): "webhooks:manage",
    ("POST", "/api/v1/webhooks/"): "webhooks:manage",
    ("GET", "/api/v1/webhooks/{id}/"): "webhooks:manage",
    ("PATCH", "/api/v1/webhooks/{id}/"): "webhooks:manage",
    ("DELETE", "/api/v1/webhooks/{id}/"): "webhooks:manage",
    ("GET", "/api/v1/webhooks/{id}/deliveries/"): "webhooks:manage",
}

# Dashboard route name -> the capability its view demands of every request (None: public, or its
# own check: the login pages, health checks, `/metrics`' bearer token, signed public links).
# Django admin (`admin:*`) is reached only through the dashboard login by admins (tests/security/
# test_logins.py) and the API (`api:*`) is API_SCOPES.
DASHBOARD: dict[str, str | None] = {
    "home": "view_dashboard",  # /
    "healthz": None,  # healthz
    "readyz": None,  # readyz
    "metrics": None,  # metrics  (public)
    "login": None,  # login/
    "logout": None,  # logout/
    "password_change": "view_dashboard",  # password/
    "password_change_done": "view_dashboard",  # password/done/
    "password_reset": None,  # password/reset/  (public)
    "password_reset_done": None,  # password/reset/sent/  (public)
    "password_reset_confirm": None,  # password/reset/<uidb64>/<token>/  (public)
    "password_reset_complete": None,  # password/reset/complete/  (public)
    "settings": "view_dashboard",  # settings/
    "users": "manage_users",  # settings/users/
    "organisation": "manage_users",  # settings/organisation/
    "user-update": "manage_users",  # settings/users/<int:pk>/
    "audit-log": "view_audit_log",  # settings/audit/
    "api-keys": "manage_api_keys",  # settings/api-keys/
    "api-key-revoke": "manage_api_keys",  # settings/api-keys/<int:pk>/revoke
    "api-key-limits": "manage_users",  # settings/api-key-limits/
    "webhooks": "manage_webhooks",  # settings/webhooks/
    "webhook-detail": "manage_webhooks",  # settings/webhooks/<int:pk>/
    "captured-messages": "view_dashboard",  # captured/
    "captured-message": "view_dashboard",  # captured/<int:pk>/
    "captured-message-html": "view_dashboard",  # captured/<int:pk>/html
    "captured-message-raw": "view_dashboard",  # captured/<int:pk>/raw
    "captured-message-attachment": "view_dashboard",  # captured/<int:pk>/attachments/<int:index>
    "contacts:index": "view_dashboard",  # contacts/
    "contacts:create": "manage_contacts",  # contacts/new/
    "contacts:detail": "view_dashboard",  # contacts/<int:pk>/
    "contacts:contact-subscribe": "manage_contacts",  # contacts/<int:pk>/subscribe
    "contacts:contact-unsubscribe": "manage_contacts",  # contacts/<int:pk>/unsubscribe
    "contacts:contact-export": "manage_contacts",  # contacts/<int:pk>/export.json
    "contacts:contact-erase": "manage_contacts",  # contacts/<int:pk>/erase
    "contacts:lists": "view_dashboard",  # contacts/lists/
    "contacts:list-edit": "manage_contacts",  # contacts/lists/<int:pk>/
    "contacts:list-delete": "manage_contacts",  # contacts/lists/<int:pk>/delete
    "contacts:list-export": "manage_contacts",  # contacts/lists/<int:pk>/export.csv
    "contacts:fields": "view_dashboard",  # contacts/fields/
    "contacts:field-edit": "manage_contacts",  # contacts/fields/<int:pk>/
    "contacts:field-delete": "manage_contacts",  # contacts/fields/<int:pk>/delete
    "contacts:segments": "view_dashboard",  # contacts/segments/
    "contacts:signup-forms": "view_dashboard",  # contacts/signup-forms/  (POST: manage_contacts)
    "contacts:signup-form-edit": "manage_contacts",  # contacts/signup-forms/<int:pk>/
    "contacts:segment-create": "manage_contacts",  # contacts/segments/new/
    "contacts:segment-edit": "manage_contacts",  # contacts/segments/<int:pk>/
    "contacts:segment-delete": "manage_contacts",  # contacts/segments/<int:pk>/delete
    "contacts:segment-export": "manage_contacts",  # contacts/segments/<int:pk>/export.csv
    "contacts:segment-builder": "manage_contacts",  # contacts/segments/builder
    "contacts:segment-count": "view_dashboard",  # contacts/segments/count
    "contacts:suppressions": "view_dashboard",  # contacts/suppressions/
    "contacts:suppression-delete": "manage_contacts",  # contacts/suppressions/<int:pk>/delete
    "contacts:imports": "view_dashboard",  # contacts/imports/
    "contacts:import-detail": "view_dashboard",  # contacts/imports/<int:pk>/
    "contacts:import-progress": "view_dashboard",  # contacts/imports/<int:pk>/progress
    "contacts:import-report": "view_dashboard",  # contacts/imports/<int:pk>/bad-rows.csv
    "contacts:home-fragment": "view_dashboard",  # contacts/home-fragment
    "contacts:preview-data": "view_dashboard",  # contacts/preview-data
    "contacts:subscribe": None,  # contacts/p/subscribe/<uuid:public_id>/  (public)
    "contacts:confirm": None,  # contacts/p/confirm/<str:token>/  (public)
    "contacts:preferences": None,  # contacts/p/preferences/<str:token>/  (public)
    "contacts:signup": None,  # contacts/p/f/<uuid:public_id>/  (public)
    "contacts:signup-frame": None,  # contacts/p/f/<uuid:public_id>/frame/  (public)
    "contacts:signup-challenge": None,  # contacts/p/f/<uuid:public_id>/challenge/  (public)
    "contacts:signup-submit": None,  # contacts/p/f/<uuid:public_id>/submit/  (public, bot defences)
    "templates:index": "view_dashboard",  # templates/
    "templates:new": "manage_templates",  # templates/new/
    "templates:home-fragment": "view_dashboard",  # templates/home-fragment/
    "templates:edit": "view_dashboard",  # templates/<int:pk>/
    "templates:preview": "view_dashboard",  # templates/<int:pk>/preview/
    "templates:preview-meta": "view_dashboard",  # templates/<int:pk>/preview/meta/
    "templates:versions": "view_dashboard",  # templates/<int:pk>/versions/
    "templates:version-preview": "view_dashboard",  # templates/<int:pk>/versions/<int:version_id>/preview/
    "templates:version-diff": "view_dashboard",  # templates/<int:pk>/versions/<int:version_id>/changes/
    "templates:restore": "manage_templates",  # templates/<int:pk>/versions/<int:version_id>/restore/
    "templates:switch-mode": "manage_templates",  # templates/<int:pk>/mode/
    "templates:attachment-add": "manage_templates",  # templates/<int:pk>/attachments/
    "templates:attachment-remove": "manage_templates",  # templates/<int:pk>/attachments/<int:index>/remove/
    "templates:duplicate": "manage_templates",  # templates/<int:pk>/duplicate/
    "templates:archive": "manage_templates",  # templates/<int:pk>/archive/
    "media:library": "view_dashboard",  # media/
    "media:upload": "manage_templates",  # media/upload/
    "media:picker": "view_dashboard",  # media/picker/
    "media:file": None,  # media/f/<path:name>  (public)
    "campaigns:index": "view_dashboard",  # campaigns/
    "campaigns:create": "manage_campaigns",  # campaigns/new/
    "campaigns:home-fragment": "view_dashboard",  # campaigns/home-fragment/
    "campaigns:detail": "view_dashboard",  # campaigns/<int:pk>/
    "campaigns:progress": "view_dashboard",  # campaigns/<int:pk>/progress/
    "campaigns:count": "manage_campaigns",  # campaigns/<int:pk>/count/
    "campaigns:test-send": "send_mail",  # campaigns/<int:pk>/test/
    "campaigns:spam-check": "manage_campaigns",  # campaigns/<int:pk>/spam-check/
    "campaigns:send": "send_mail",  # campaigns/<int:pk>/send/
    "campaigns:schedule": "send_mail",  # campaigns/<int:pk>/schedule/
    "campaigns:report": "view_dashboard",  # campaigns/<int:pk>/report/
    "campaigns:report-csv": "view_dashboard",  # campaigns/<int:pk>/report.csv
    "campaigns:report-people": "view_dashboard",  # campaigns/<int:pk>/report/people/<str:figure>/
    "campaigns:resend": "send_mail",  # campaigns/<int:pk>/resend/
    "campaigns:archive": None,  # campaigns/archive/  (public when CAMPAIGNS_ARCHIVE is on)
    "campaigns:archive-item": None,  # campaigns/archive/<int:pk>/  (public)
    "campaigns:archive-feed": None,  # campaigns/archive/feed.<str:kind>  (public)
    "campaigns:action": "send_mail",  # campaigns/<int:pk>/do/<str:action>/
    "campaigns:step": "manage_campaigns",  # campaigns/<int:pk>/<str:step>/
    "automations:index": "view_dashboard",  # automations/
    "automations:create": "manage_campaigns",  # automations/new/
    "automations:recipe": "manage_campaigns",  # automations/recipes/<slug:slug>/
    "automations:contact-runs": "view_dashboard",  # automations/contact/<int:contact_id>/runs/
    "automations:detail": "view_dashboard",  # automations/<int:pk>/
    "automations:counts": "view_dashboard",  # automations/<int:pk>/counts/
    "automations:status": "manage_campaigns",  # automations/<int:pk>/status/
    "automations:enrol": "manage_campaigns",  # automations/<int:pk>/enrol/
    "automations:runs": "view_dashboard",  # automations/<int:pk>/runs/
    "automations:run-remove": "manage_campaigns",  # automations/<int:pk>/runs/<int:run_id>/remove/
    "automations:step-add": "manage_campaigns",  # automations/<int:pk>/steps/
    "automations:step-update": "manage_campaigns",  # automations/<int:pk>/steps/<int:step_id>/
    "automations:step-delete": "manage_campaigns",  # automations/<int:pk>/steps/<int:step_id>/delete/
    "automations:step-move": "manage_campaigns",  # automations/<int:pk>/steps/<int:step_id>/move/
    "delivery:index": "view_dashboard",  # delivery/
    "delivery:home-fragment": "view_dashboard",  # delivery/home-fragment/
    "delivery:mailing": "view_dashboard",  # delivery/mailings/<int:pk>/
    "delivery:mailing-progress": "view_dashboard",  # delivery/mailings/<int:pk>/progress/
    "delivery:mailing-action": "send_mail",  # delivery/mailings/<int:pk>/<str:action>/
    "delivery:ledger": "view_dashboard",  # delivery/ledger/
    "delivery:template-test-send": "manage_templates",  # delivery/templates/<int:template_id>/test-send/
    "delivery:contact-timeline": "view_dashboard",  # delivery/contacts/<int:contact_id>/timeline/
    "delivery:relays": "manage_relays",  # delivery/relays/
    "delivery:relays-usage": "manage_relays",  # delivery/relays/usage/
    "delivery:relay-create": "manage_relays",  # delivery/relays/new/
    "delivery:relay-edit": "manage_relays",  # delivery/relays/<int:pk>/
    "delivery:relay-test": "manage_relays",  # delivery/relays/<int:pk>/test/
    "delivery:relay-delete": "manage_relays",  # delivery/relays/<int:pk>/delete/
    "delivery:identities": "manage_relays",  # delivery/identities/
    "delivery:identity-dkim": "manage_relays",  # delivery/identities/<int:pk>/dkim/
    "delivery:identity-delete": "manage_relays",  # delivery/identities/<int:pk>/delete/
    "delivery:health": "view_dashboard",  # delivery/health/
    "delivery:warmup": "manage_relays",  # delivery/warmup/
    "delivery:warmup-edit": "manage_relays",  # delivery/warmup/<int:pk>/
    "delivery:warmup-delete": "manage_relays",  # delivery/warmup/<int:pk>/delete/
    "delivery:unsubscribe": None,  # delivery/u/<str:token>/  (public)
    "delivery:list-confirmation": "manage_contacts",  # delivery/lists/<int:list_id>/confirmation/
    "delivery:web-version": None,  # delivery/v/<str:token>/  (public: a message's signed web version)
    "bounces:index": "view_dashboard",  # bounces/
    "bounces:event": "view_dashboard",  # bounces/events/<int:pk>/
    "bounces:event-raw": "manage_bounce_policy",  # bounces/events/<int:pk>/raw
    "bounces:policy": "manage_bounce_policy",  # bounces/policy/
    "bounces:mailboxes": "manage_bounce_policy",  # bounces/mailboxes/
    "bounces:mailbox-new": "manage_bounce_policy",  # bounces/mailboxes/new/
    "bounces:mailbox-edit": "manage_bounce_policy",  # bounces/mailboxes/<int:pk>/
    "bounces:mailbox-poll": "manage_bounce_policy",  # bounces/mailboxes/<int:pk>/poll
    "bounces:home-fragment": "view_dashboard",  # bounces/home-fragment/
    "bounces:webhook-amazon-ses": None,  # bounces/webhooks/amazon_ses/tracking/  (public)
    "bounces:webhook-sendgrid": None,  # bounces/webhooks/sendgrid/tracking/  (public)
    "bounces:webhook-mailgun": None,  # bounces/webhooks/mailgun/tracking/  (public)
    "bounces:webhook-postmark": None,  # bounces/webhooks/postmark/tracking/  (public)
    "dnsauth:checklist": "manage_relays",  # dns/
    "dnsauth:check-now": "manage_relays",  # dns/check/
    "tracking:open": None,  # t/o/<str:token>.gif  (public)
    "tracking:click": None,  # t/c/<str:token>/<int:index>  (public)
    "tracking:trivial": None,  # t/ping  (public)
}

# Routes anyone who may view can read, but whose POST changes something and needs more.
POST_NEEDS: dict[str, str] = {
    "contacts:detail": "manage_contacts",
    "contacts:lists": "manage_contacts",
    "contacts:fields": "manage_contacts",
    "contacts:suppressions": "manage_contacts",
    "contacts:imports": "manage_contacts",
    "contacts:import-detail": "manage_contacts",
    "templates:edit": "manage_templates",
    "automations:detail": "manage_campaigns",
}

ADMIN, MARKETER, DEVELOPER = "admin", "marketer", "developer"
ROLES = (ADMIN, MARKETER, DEVELOPER)

# Capability -> the roles that have it.
CAPABILITY_ROLES: dict[str, set[str]] = {
    "view_dashboard": {ADMIN, MARKETER, DEVELOPER},
    "manage_contacts": {ADMIN, MARKETER},
    "manage_templates": {ADMIN, MARKETER},
    "manage_campaigns": {ADMIN, MARKETER},
    "send_mail": {ADMIN, MARKETER},
    "manage_api_keys": {ADMIN, DEVELOPER},
    "manage_webhooks": {ADMIN, DEVELOPER},
    "manage_relays": {ADMIN},
    "manage_bounce_policy": {ADMIN},
    "manage_users": {ADMIN},
    "view_audit_log": {ADMIN},
}

# Role -> the scopes its API keys may carry until an admin changes the role's ceiling.
DEFAULT_KEY_SCOPES: dict[str, set[str]] = {
    ADMIN: {"contacts:read", "contacts:write", "templates:read", "templates:write", "campaigns:read",
            "campaigns:write", "automations:read", "automations:write", "send", "events:read",
            "events:write", "webhooks:manage", "relays:admin"},
    MARKETER: {"contacts:read", "contacts:write", "templates:read", "templates:write", "campaigns:read",
               "campaigns:write", "automations:read", "automations:write", "send", "events:read",
               "events:write"},
    DEVELOPER: {"contacts:read", "templates:read", "campaigns:read", "automations:read", "events:read",
                "webhooks:manage"},
}  # fmt: skip
