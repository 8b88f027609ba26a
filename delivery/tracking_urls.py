"""Mounted at /t/ by mailplatform.urls (public: recipients' mail clients call these)."""

from django.urls import path

from delivery import tracking_views

app_name = "tracking"

urlpatterns = [
    path("o/<str:token>.gif", tracking_views.open_pixel, name="open"),
    path("c/<str:token>/<int:index>", tracking_views.click, name="click"),
    path("ping", tracking_views.trivial, name="trivial"),
]
