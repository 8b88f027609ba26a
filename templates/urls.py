from django.urls import path

from templates import views

app_name = "templates"

urlpatterns = [
    path("", views.index, name="index"),
    path("new/", views.new, name="new"),
    path("home-fragment/", views.home_fragment, name="home-fragment"),
    path("<int:pk>/", views.edit, name="edit"),
    path("<int:pk>/preview/", views.preview, name="preview"),
    path("<int:pk>/preview/meta/", views.preview_meta, name="preview-meta"),
    path("<int:pk>/versions/", views.versions, name="versions"),
    path("<int:pk>/versions/<int:version_id>/preview/", views.version_preview, name="version-preview"),
    path("<int:pk>/versions/<int:version_id>/changes/", views.version_diff, name="version-diff"),
    path("<int:pk>/versions/<int:version_id>/restore/", views.restore, name="restore"),
    path("<int:pk>/mode/", views.switch_mode, name="switch-mode"),
    path("<int:pk>/attachments/", views.attachment_add, name="attachment-add"),
    path("<int:pk>/attachments/<int:index>/remove/", views.attachment_remove, name="attachment-remove"),
    path("<int:pk>/duplicate/", views.duplicate, name="duplicate"),
    path("<int:pk>/archive/", views.archive, name="archive"),
]
