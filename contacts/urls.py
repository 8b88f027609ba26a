from django.urls import path

from contacts import views

app_name = "contacts"

urlpatterns = [
    path("", views.index, name="index"),
    path("new/", views.contact_create, name="create"),
    path("<int:pk>/", views.contact_detail, name="detail"),
    path("<int:pk>/subscribe", views.contact_subscribe, name="contact-subscribe"),
    path("<int:pk>/unsubscribe", views.contact_unsubscribe, name="contact-unsubscribe"),
    path("<int:pk>/export.json", views.contact_export, name="contact-export"),
    path("<int:pk>/erase", views.contact_erase, name="contact-erase"),
    path("lists/", views.lists, name="lists"),
    path("lists/<int:pk>/", views.list_edit, name="list-edit"),
    path("lists/<int:pk>/delete", views.list_delete, name="list-delete"),
    path("lists/<int:pk>/export.csv", views.list_export, name="list-export"),
    path("fields/", views.fields, name="fields"),
    path("fields/<int:pk>/", views.field_edit, name="field-edit"),
    path("fields/<int:pk>/delete", views.field_delete, name="field-delete"),
    path("segments/", views.segments, name="segments"),
    path("segments/new/", views.segment_edit, name="segment-create"),
    path("segments/<int:pk>/", views.segment_edit, name="segment-edit"),
    path("segments/<int:pk>/delete", views.segment_delete, name="segment-delete"),
    path("segments/<int:pk>/export.csv", views.segment_export, name="segment-export"),
    path("segments/builder", views.segment_builder, name="segment-builder"),
    path("segments/count", views.segment_count, name="segment-count"),
    path("signup-forms/", views.signup_forms, name="signup-forms"),
    path("signup-forms/<int:pk>/", views.signup_form_edit, name="signup-form-edit"),
    path("suppressions/", views.suppressions, name="suppressions"),
    path("suppressions/<int:pk>/delete", views.suppression_delete, name="suppression-delete"),
    path("imports/", views.imports, name="imports"),
    path("imports/<int:pk>/", views.import_detail, name="import-detail"),
    path("imports/<int:pk>/progress", views.import_progress, name="import-progress"),
    path("imports/<int:pk>/bad-rows.csv", views.import_report, name="import-report"),
    path("home-fragment", views.home_fragment, name="home-fragment"),
    path("preview-data", views.preview_data, name="preview-data"),
    # Public pages (no login): signed tokens and unguessable list ids.
    path("p/subscribe/<uuid:public_id>/", views.subscribe, name="subscribe"),
    path("p/confirm/<str:token>/", views.confirm, name="confirm"),
    path("p/preferences/<str:token>/", views.preferences, name="preferences"),
    # Signup forms: the hosted page, the iframe, the widget's challenge and the (cross-origin) post.
    path("p/f/<uuid:public_id>/", views.signup, name="signup"),
    path("p/f/<uuid:public_id>/frame/", views.signup_frame, name="signup-frame"),
    path("p/f/<uuid:public_id>/challenge/", views.signup_challenge, name="signup-challenge"),
    path("p/f/<uuid:public_id>/submit/", views.signup_submit, name="signup-submit"),
]
