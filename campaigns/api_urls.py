"""Campaigns' REST endpoints, mounted under /api/v1/ by mailplatform.api_urls."""

from django.urls import path

from campaigns import api

urlpatterns = [
    path("campaigns/", api.CampaignListCreateView.as_view(), name="campaigns"),
    path("campaigns/<int:pk>/", api.CampaignDetailView.as_view(), name="campaign-detail"),
    path("campaigns/<int:pk>/schedule", api.CampaignScheduleView.as_view(), name="campaign-schedule"),
    path("campaigns/<int:pk>/unschedule", api.CampaignUnscheduleView.as_view(), name="campaign-unschedule"),
    path("campaigns/<int:pk>/send", api.CampaignSendView.as_view(), name="campaign-send"),
    path("campaigns/<int:pk>/test-send", api.CampaignTestSendView.as_view(), name="campaign-test-send"),
    path("campaigns/<int:pk>/pause", api.CampaignPauseView.as_view(), name="campaign-pause"),
    path("campaigns/<int:pk>/resume", api.CampaignResumeView.as_view(), name="campaign-resume"),
    path("campaigns/<int:pk>/cancel", api.CampaignCancelView.as_view(), name="campaign-cancel"),
    path("campaigns/<int:pk>/clone", api.CampaignCloneView.as_view(), name="campaign-clone"),
    path("campaigns/<int:pk>/report", api.CampaignReportView.as_view(), name="campaign-report"),
]
