"""Issue #12: a template may not exhaust the web process (time or memory), at save time or in a preview.

The attack as found: `{{ (1..100000000) | join: 'xxxx…' | size }}` created through the API and then
previewed with a `templates:read` key ran for 60 s and grew the process by 5.6 GB.
"""

from __future__ import annotations

import time
import tracemalloc
from contextlib import contextmanager

import pytest

from templates.liquid_env import COLLECTION_LIMIT, STRING_LIMIT

ATTACK = "{{ (1..100000000) | join: '" + "x" * 100 + "' | size }}"
# Generous margins: a refusal takes well under a second and a few MB on an idle machine (0.4 s at most,
# most of it copying the preview data), but the test machines are shared by many runs and tracemalloc
# slows Python down several times. Before the fix the attack ran for 60 s and took 5.6 GB.
MAX_SECONDS = 15.0
MAX_PEAK_BYTES = 64 * 1024 * 1024


@contextmanager
def bounded(label: str):
    tracemalloc.start()
    started = time.monotonic()
    try:
        yield
    finally:
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert elapsed < MAX_SECONDS, f"{label} took {elapsed:.1f} s"
    assert peak < MAX_PEAK_BYTES, f"{label} allocated {peak / 1e6:.0f} MB"


@pytest.fixture
def writer(api_client_for):
    client = api_client_for("admin", ["templates:write", "templates:read"])
    client.get("/api/v1/templates/")  # imports and URL resolution happen outside the measurement
    return client


@pytest.fixture
def reader(api_client_for):
    return api_client_for("admin", ["templates:read"])


def _create(client, html: str):
    return client.post("/api/v1/templates/", {"name": "t", "subject": "Hi", "html": html}, format="json")


@pytest.mark.django_db
def test_the_exact_attack_is_refused_at_save_time_quickly(writer):
    from templates.models import EmailTemplate

    with bounded("creating the attack template"):
        response = _create(writer, f"<p>{ATTACK}</p>")
    assert response.status_code == 400, response.content
    assert "100,000,000 items" in str(response.json())
    assert not EmailTemplate.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("html", "data", "expected"),
    [
        # The same attack with the size supplied only at preview time.
        ("<p>{{ (1..n) | join: sep | size }}</p>", {"n": 100_000_000, "sep": "x" * 100}, "items"),
        (
            "<p>{{ items | join: sep | size }}</p>",
            {"items": list(range(9000)), "sep": "x" * 1000},
            "characters",
        ),
        ("<p>{{ s | split: '' | size }}</p>", {"s": "y" * 500_000}, "items"),
        ("<p>{{ s | replace: 'a', t | size }}</p>", {"s": "a" * 100_000, "t": "b" * 100}, "characters"),
        ("<p>{{ s | append: s | append: s | size }}</p>", {"s": "z" * 900_000}, "characters"),
        ("<p>{{ items | concat: items | size }}</p>", {"items": list(range(6000))}, "items"),
        ("<p>{{ items | map: 'x' | size }}</p>", {"items": [{"x": 1}] * 20_000}, "items"),
        ("<p>{{ items | sort | size }}</p>", {"items": list(range(20_000))}, "items"),
        (
            "<p>{% for i in (1..n) %}{% assign t = items | sort | join %}{% endfor %}</p>",
            {"n": 10_000, "items": list(range(9_000))},
            "too much work",
        ),
        (
            "<p>{% assign x = 3 %}{% for i in (1..n) %}{% assign x = x | times: x %}{% endfor %}</p>",
            {"n": 40},
            "number",
        ),
    ],
)
def test_previews_are_bounded_at_render_time(writer, reader, html, data, expected):
    """Templates that pass the save-time checks but explode on the data given to a preview."""
    created = _create(writer, html)
    assert created.status_code == 201, created.content
    with bounded("the preview"):
        response = reader.post(
            f"/api/v1/templates/{created.json()['id']}/preview", {"data": data}, format="json"
        )
    assert response.status_code == 400, response.content[:500]
    assert expected in str(response.json())


def test_ordinary_templates_still_work():
    from templates.compiler import compile_template

    compiled = compile_template(
        subject="Hi {{ contact.first_name | upcase }}",
        html=(
            "<p>{{ (1..3) | join: '-' }} {{ 'a,b,a' | split: ',' | uniq | join: '' }}"
            " {{ contact.tags | sort | join: ', ' }} {{ 'x' | append: 'y' | replace: 'y', 'z' }}</p>"
        ),
    )
    rendered = compiled.render({"contact": {"first_name": "ann", "tags": ["b", "a"]}})
    assert rendered.subject == "Hi ANN"
    assert "1-2-3 ab a, b xz" in rendered.html


def test_limits_are_the_documented_ones():
    assert COLLECTION_LIMIT == 10_000 and STRING_LIMIT == 2_000_000
