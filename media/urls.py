from django.urls import path

from media import views

app_name = "media"

urlpatterns = [
    path("", views.library, name="library"),
    path("upload/", views.upload, name="upload"),
    path("picker/", views.picker, name="picker"),
    # Public: mail clients fetch images without a session. Only images are served, never attachments.
    path("f/<path:name>", views.serve, name="file"),
]
