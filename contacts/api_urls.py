"""Contacts' REST endpoints, mounted under /api/v1/ by mailplatform.api_urls."""

from django.urls import path

from contacts import api

urlpatterns = [
    path("contacts/", api.ContactListCreateView.as_view(), name="contacts"),
    path("contacts/bulk", api.ContactBulkUpsertView.as_view(), name="contacts-bulk"),
    path("contacts/lookup", api.ContactByEmailView.as_view(), name="contacts-lookup"),
    path("contacts/<int:pk>/", api.ContactDetailView.as_view(), name="contact-detail"),
    path("contacts/<int:pk>/export", api.ContactExportView.as_view(), name="contact-export"),
    path("contacts/<int:pk>/unsubscribe", api.ContactUnsubscribeView.as_view(), name="contact-unsubscribe"),
    path(
        "contacts/<int:pk>/subscriptions/",
        api.ContactSubscriptionsView.as_view(),
        name="contact-subscriptions",
    ),
    path("lists/", api.MailingListListCreateView.as_view(), name="lists"),
    path("lists/<int:pk>/", api.MailingListDetailView.as_view(), name="list-detail"),
    path("lists/<int:pk>/members/", api.MailingListMembersView.as_view(), name="list-members"),
    path("segments/", api.SegmentListCreateView.as_view(), name="segments"),
    path("segments/<int:pk>/", api.SegmentDetailView.as_view(), name="segment-detail"),
    path("segments/<int:pk>/count", api.SegmentCountView.as_view(), name="segment-count"),
    path("segments/<int:pk>/members/", api.SegmentMembersView.as_view(), name="segment-members"),
    path("suppressions/", api.SuppressionListCreateView.as_view(), name="suppressions"),
    path("suppressions/<int:pk>/", api.SuppressionDetailView.as_view(), name="suppression-detail"),
    path("imports/", api.ImportListCreateView.as_view(), name="imports"),
    path("imports/<int:pk>/", api.ImportDetailView.as_view(), name="import-detail"),
    path("imports/<int:pk>/errors", api.ImportErrorReportView.as_view(), name="import-errors"),
]
