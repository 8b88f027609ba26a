from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from mailplatform import views
from mailplatform.permissions import public, requires

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password/", requires("view_dashboard")(views.PasswordChangeView.as_view()), name="password_change"),
    path(
        "password/done/",
        requires("view_dashboard")(
            auth_views.PasswordChangeDoneView.as_view(template_name="mailplatform/password_change_done.html")
        ),
        name="password_change_done",
    ),
    path("password/reset/", public(views.PasswordResetView.as_view()), name="password_reset"),
    path("password/reset/sent/", public(views.PasswordResetDoneView.as_view()), name="password_reset_done"),
    path(
        "password/reset/<uidb64>/<token>/",
        public(views.PasswordResetConfirmView.as_view()),
        name="password_reset_confirm",
    ),
    path(
        "password/reset/complete/",
        public(views.PasswordResetCompleteView.as_view()),
        name="password_reset_complete",
    ),
    path("settings/", views.settings_index, name="settings"),
    path("settings/users/", views.users, name="users"),
    path("settings/organisation/", views.organisation, name="organisation"),
    path("settings/users/<int:pk>/", views.user_update, name="user-update"),
    path("settings/audit/", views.audit_log, name="audit-log"),
    path("settings/api-keys/", views.api_keys, name="api-keys"),
    path("settings/api-keys/<int:pk>/revoke", views.api_key_revoke, name="api-key-revoke"),
    path("settings/api-key-limits/", views.api_key_limits, name="api-key-limits"),
    path("settings/webhooks/", views.webhooks, name="webhooks"),
    path("settings/webhooks/<int:pk>/", views.webhook_detail, name="webhook-detail"),
    path("captured/", views.captured_messages, name="captured-messages"),
    path("captured/<int:pk>/", views.captured_message, name="captured-message"),
    path("captured/<int:pk>/html", views.captured_message_html, name="captured-message-html"),
    path("captured/<int:pk>/raw", views.captured_message_raw, name="captured-message-raw"),
    path(
        "captured/<int:pk>/attachments/<int:index>",
        views.captured_message_attachment,
        name="captured-message-attachment",
    ),
    path("admin/", admin.site.urls),
]

# Each app mounts its own URLs, named by module path (a string: mailplatform imports no app).
urlpatterns += [
    path("contacts/", include("contacts.urls")),
    path("templates/", include("templates.urls")),
    path("media/", include("media.urls")),
    path("campaigns/", include("campaigns.urls")),
    path("automations/", include("automations.urls")),
    path("delivery/", include("delivery.urls")),
    path("bounces/", include("delivery.bounces.urls")),
    path("dns/", include("delivery.dnsauth.urls")),
    # Public open/click tracking (delivery.tracking): short URLs, they are in every message.
    path("t/", include("delivery.tracking_urls")),
    path("api/v1/", include("mailplatform.api_urls")),
]
