from django.urls import path

from delivery import views

app_name = "delivery"

urlpatterns = [
    path("", views.index, name="index"),
    path("home-fragment/", views.home_fragment, name="home-fragment"),
    path("mailings/<int:pk>/", views.mailing_detail, name="mailing"),
    path("mailings/<int:pk>/progress/", views.mailing_progress_fragment, name="mailing-progress"),
    path("mailings/<int:pk>/<str:action>/", views.mailing_action, name="mailing-action"),
    path("ledger/", views.ledger, name="ledger"),
    # "Send a test" of a template: the templates page posts here (templates imports no other app).
    path("templates/<int:template_id>/test-send/", views.template_test_send, name="template-test-send"),
    path("contacts/<int:contact_id>/timeline/", views.contact_timeline, name="contact-timeline"),
    path("relays/", views.relays, name="relays"),
    path("relays/usage/", views.relays_usage_fragment, name="relays-usage"),
    path("relays/new/", views.relay_edit, name="relay-create"),
    path("relays/<int:pk>/", views.relay_edit, name="relay-edit"),
    path("relays/<int:pk>/test/", views.relay_test, name="relay-test"),
    path("relays/<int:pk>/delete/", views.relay_delete, name="relay-delete"),
    path("identities/", views.identities, name="identities"),
    path("identities/<int:pk>/dkim/", views.identity_dkim, name="identity-dkim"),
    path("identities/<int:pk>/delete/", views.identity_delete, name="identity-delete"),
    path("health/", views.health, name="health"),
    path("warmup/", views.warmup_list, name="warmup"),
    path("warmup/<int:pk>/", views.warmup_list, name="warmup-edit"),
    path("warmup/<int:pk>/delete/", views.warmup_delete, name="warmup-delete"),
    # Public: the one-click unsubscribe link in every message's List-Unsubscribe header.
    path("u/<str:token>/", views.unsubscribe, name="unsubscribe"),
    # Public: a message's "view in browser" link (delivery.webversion).
    path("v/<str:token>/", views.web_version, name="web-version"),
    # Fragment on a contacts list's page: its confirmation mail.
    path("lists/<int:list_id>/confirmation/", views.list_confirmation, name="list-confirmation"),
]
