from django.urls import path

from delivery.dnsauth import views

app_name = "dnsauth"

urlpatterns = [
    path("", views.checklist, name="checklist"),
    path("check/", views.check_now, name="check-now"),
]
