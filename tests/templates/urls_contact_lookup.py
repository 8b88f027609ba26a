"""The platform's URLs plus a stand-in for the contacts app's preview-data endpoint."""

from django.http import Http404, JsonResponse
from django.urls import include, path

from mailplatform.urls import urlpatterns as platform_urlpatterns


def preview_data(request):
    if request.GET.get("q") != "grace@example.com":
        raise Http404("no such contact")
    return JsonResponse(
        {"contact": {"email": "grace@example.com", "first_name": "Grace", "city": "Arlington"}}
    )


preview_data.public_endpoint = True  # a test stand-in; the real endpoint checks the role

urlpatterns = [
    path("test-contacts/", include(([path("preview-data", preview_data, name="preview-data")], "contacts"))),
    *platform_urlpatterns,
]
