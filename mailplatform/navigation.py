"""The dashboard's navigation. Apps are named by URL, so the platform imports none of them."""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import NoReverseMatch, reverse

from mailplatform.roles import can


@dataclass(frozen=True)
class NavItem:
    label: str
    url_name: str
    capability: str = "view_dashboard"


NAV_ITEMS = [
    NavItem("Home", "home"),
    NavItem("Contacts", "contacts:index"),
    NavItem("Templates", "templates:index"),
    NavItem("Media", "media:library"),
    NavItem("Campaigns", "campaigns:index"),
    NavItem("Automations", "automations:index"),
    NavItem("Delivery", "delivery:index"),
    NavItem("Bounces", "bounces:index"),
    NavItem("Captured mail", "captured-messages"),
    NavItem("Settings", "settings"),
]


def nav_for(user, current_path: str) -> list[dict[str, object]]:
    items = []
    for item in NAV_ITEMS:
        if not can(user, item.capability):
            continue
        try:
            url = reverse(item.url_name)
        except NoReverseMatch:
            continue  # the app has no pages yet
        active = current_path == url if url == "/" else current_path.startswith(url)
        items.append({"label": item.label, "url": url, "active": active})
    return items
