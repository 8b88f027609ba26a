"""The REST API under /api/v1/: the platform's endpoints, then each app's `<app>/api_urls.py`."""

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from mailplatform.api import views

app_name = "api"

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(api_version="1.0.0"), name="schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
    path("key", views.KeyInfoView.as_view(), name="key-info"),
    path("webhooks/", views.WebhookListCreateView.as_view(), name="webhooks"),
    path("webhooks/<int:pk>/", views.WebhookDetailView.as_view(), name="webhook-detail"),
    path("webhooks/<int:pk>/deliveries/", views.WebhookDeliveryListView.as_view(), name="webhook-deliveries"),
]

# Each app's endpoints, named by module path (a string: mailplatform imports no app).
urlpatterns += [
    path("", include(module))
    for module in (
        "contacts.api_urls",
        "templates.api_urls",
        "campaigns.api_urls",
        "delivery.api_urls",
        "automations.api_urls",
    )
]

urlpatterns.append(re_path(r"^.*$", views.NotFoundView.as_view(), name="not-found"))
