"""Issue #12: a Content-Security-Policy on every dashboard page (django-csp): script-src with a nonce,
no 'unsafe-inline' or 'unsafe-eval' for scripts, and no inline script or on* handler in any page."""

from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
HANDLER = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.I)


def _routes(patterns, prefix=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _routes(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern)


def _pages() -> list[str]:
    """Every dashboard route without parameters (the ones a menu links to)."""
    skip = ("api/", "admin/", "t/", "static", "metrics", "logout")
    return sorted(
        "/" + route
        for route in _routes(get_resolver().url_patterns)
        if "<" not in route and not route.startswith(skip) and route not in ("healthz", "readyz")
    )


def _script_src(policy: str) -> str:
    for directive in policy.split(";"):
        name, _, value = directive.strip().partition(" ")
        if name == "script-src":
            return value
    raise AssertionError(f"no script-src in {policy!r}")


@pytest.mark.django_db
def test_every_dashboard_page_has_a_nonce_policy_and_no_inline_script(admin_client):
    pages = _pages()
    assert "/" in pages and "/contacts/" in pages and "/login/" in pages and len(pages) > 20
    checked = 0
    for path in pages:
        response = admin_client.get(path)
        if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
            continue
        checked += 1
        policy = response.get("Content-Security-Policy", "")
        script_src = _script_src(policy)
        html = response.content.decode()
        if "<html" in html:  # a whole page loads its scripts with the nonce (htmx fragments load none)
            assert "'nonce-" in script_src, (path, policy)
        assert "unsafe-inline" not in script_src and "unsafe-eval" not in script_src, (path, policy)
        assert not INLINE_SCRIPT.search(html), (path, INLINE_SCRIPT.search(html).group(0))
        assert not HANDLER.search(html), (path, HANDLER.search(html).group(0))
    assert checked > 15


@pytest.mark.django_db
def test_the_login_page_and_api_docs_carry_the_policy_too(client):
    for path in ("/login/", "/password/reset/", "/api/v1/docs/"):
        response = client.get(path)
        assert response.status_code == 200, path
        script_src = _script_src(response["Content-Security-Policy"])
        assert "unsafe-inline" not in script_src and "unsafe-eval" not in script_src
        assert not INLINE_SCRIPT.search(response.content.decode()), path
