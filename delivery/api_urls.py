"""Delivery's REST endpoints, mounted under /api/v1/ by mailplatform.api_urls."""

from django.urls import path

from delivery import api

urlpatterns = [
    path("send", api.SendView.as_view(), name="send"),
    path("messages/<int:pk>/", api.MessageDetailView.as_view(), name="message-detail"),
    path("events/", api.EventListView.as_view(), name="events"),
    path("bounces/", api.BounceListView.as_view(), name="bounces"),
    path("relays/", api.RelayListCreateView.as_view(), name="relays"),
    path("relays/<int:pk>/", api.RelayDetailView.as_view(), name="relay-detail"),
]
