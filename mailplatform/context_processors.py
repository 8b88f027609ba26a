from django.http import HttpRequest

from mailplatform.navigation import nav_for
from mailplatform.roles import CAPABILITIES, can


def navigation(request: HttpRequest) -> dict[str, object]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_items": [], "user_can": {}}
    return {
        "nav_items": nav_for(user, request.path),
        "user_can": {name: can(user, name) for name in CAPABILITIES},
    }
