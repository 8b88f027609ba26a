"""The home page's first-run checklist: each app says which step is its and how to tell it is done.

mailplatform imports no app, so the steps are registered from each AppConfig.ready (like the beat
registry) and read on the home page. Each `done` is a cheap EXISTS on real state, never a flag
someone ticks: the list is true the moment the thing is done, however it was done (dashboard, API).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.urls import NoReverseMatch, reverse


@dataclass(frozen=True)
class Step:
    order: int
    label: str
    url_name: str
    done: Callable[[], bool]


_steps: dict[int, Step] = {}


def step(order: int, label: str, url_name: str, done: Callable[[], bool]) -> None:
    _steps[order] = Step(order, label, url_name, done)


def checklist() -> list[dict[str, object]]:
    rows = []
    for item in sorted(_steps.values(), key=lambda s: s.order):
        try:
            url = reverse(item.url_name)
        except NoReverseMatch:
            url = ""
        rows.append({"label": item.label, "url": url, "done": bool(item.done())})
    return rows
