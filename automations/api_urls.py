"""Automations' REST endpoints, mounted under /api/v1/ by mailplatform.api_urls."""

from django.urls import path

from automations import api

urlpatterns = [
    path("automations/", api.AutomationListView.as_view(), name="automations"),
    path("automations/<int:pk>/", api.AutomationDetailView.as_view(), name="automation-detail"),
    path("automations/<int:pk>/status", api.AutomationStatusView.as_view(), name="automation-status"),
    path("automations/<int:pk>/enrol", api.AutomationEnrolView.as_view(), name="automation-enrol"),
    path("automations/<int:pk>/remove", api.AutomationRemoveView.as_view(), name="automation-remove"),
    path("automations/<int:pk>/runs/", api.AutomationRunsView.as_view(), name="automation-runs"),
    # Application events (no slash, like `send`): `GET /events/` is delivery's message events.
    path("events", api.EventCreateView.as_view(), name="app-events"),
]
