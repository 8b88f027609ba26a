"""Templates' REST endpoints, mounted under /api/v1/ by mailplatform.api_urls."""

from django.urls import path

from templates import api

urlpatterns = [
    path("templates/", api.TemplateListCreateView.as_view(), name="templates"),
    path("templates/<int:pk>/", api.TemplateDetailView.as_view(), name="template-detail"),
    path("templates/<int:pk>/versions/", api.TemplateVersionListView.as_view(), name="template-versions"),
    path("templates/<int:pk>/preview", api.TemplatePreviewView.as_view(), name="template-preview"),
]
