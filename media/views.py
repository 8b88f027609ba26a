"""Dashboard pages of the media library, and the public file URL that mail links to."""

from __future__ import annotations

import mimetypes

from django.contrib import messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from mailplatform.permissions import requires
from mailplatform.roles import can
from media import selectors
from media.services import MediaError, media_image_upload
from media.storage import CACHE_CONTROL, media_storage


def _grid_context(request: HttpRequest, **extra) -> dict:
    images = [
        {
            "image": image,
            "url": selectors.image_url(image),
            "thumbnail": selectors.thumbnail_url(image),
        }
        for image in selectors.media_images()
    ]
    return {"images": images, "can_upload": can(request.user, "manage_templates"), **extra}


@requires("view_dashboard")
def library(request: HttpRequest) -> HttpResponse:
    return render(request, "media/library.html", _grid_context(request))


@requires("view_dashboard")
def picker(request: HttpRequest) -> HttpResponse:
    """The library as a fragment for the template editor's panel."""
    return render(request, "media/_grid.html", _grid_context(request, picker=True))


@require_POST
@requires("manage_templates")
def upload(request: HttpRequest) -> HttpResponse:
    files = request.FILES.getlist("file")
    error = "" if files else "Choose an image file to upload."
    uploaded = []
    for file in files[:20]:
        try:
            uploaded.append(media_image_upload(file.read(), name=file.name or "image", by=request.user))
        except MediaError as exc:
            error = f"{file.name}: {exc}"
            break
    if request.headers.get("HX-Request"):
        context = _grid_context(request, picker=request.POST.get("picker") == "1", error=error)
        context["uploaded"] = uploaded
        return render(request, "media/_grid.html", context, status=400 if error else 200)
    if error:
        messages.error(request, error)
    for image in uploaded:
        messages.success(request, f"Uploaded “{image.name}”.")
    return redirect("media:library")


@require_GET
def serve(request: HttpRequest, name: str) -> FileResponse:
    """An image from the library, for mail clients and the editor alike (no session needed).

    Names are content-addressed (images/<sha256>/...), so the response never changes: cached
    for a year as immutable. Only images/ is served; attachments go out inside messages only.
    """
    if not name.startswith("images/") or ".." in name.split("/"):
        raise Http404("no such file")
    storage = media_storage()
    try:
        handle = storage.open(name, "rb")
    except (FileNotFoundError, OSError):
        raise Http404("no such file") from None
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    response = FileResponse(handle, content_type=content_type)
    response["Cache-Control"] = CACHE_CONTROL
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


serve.public_endpoint = True  # type: ignore[attr-defined]  # mail clients fetch images without a session
