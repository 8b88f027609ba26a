from django.urls import path

from delivery.bounces import views
from delivery.bounces.webhooks import WEBHOOK_VIEWS

app_name = "bounces"

urlpatterns = [
    path("", views.index, name="index"),
    path("events/<int:pk>/", views.event_detail, name="event"),
    path("events/<int:pk>/raw", views.event_raw, name="event-raw"),
    path("policy/", views.policy, name="policy"),
    path("mailboxes/", views.mailboxes, name="mailboxes"),
    path("mailboxes/new/", views.mailbox_edit, name="mailbox-new"),
    path("mailboxes/<int:pk>/", views.mailbox_edit, name="mailbox-edit"),
    path("mailboxes/<int:pk>/poll", views.mailbox_poll_now, name="mailbox-poll"),
    path("home-fragment/", views.home_fragment, name="home-fragment"),
    *[
        path(f"webhooks/{esp}/tracking/", view, name=f"webhook-{esp.replace('_', '-')}")
        for esp, view in WEBHOOK_VIEWS.items()
    ],
]
