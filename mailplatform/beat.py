"""The beat schedule: one registry, each entry declared by the app whose task it runs.

An app registers its periodic tasks from its AppConfig.ready (`every`), so the ground floor imports
no app and each interval sits beside the code it drives. mailplatform/celery.py hands `SCHEDULE`
itself (the same dict, not a copy) to Celery as `beat_schedule`: beat reads it only after Django
has set the apps up, by which time every app has registered.
"""

from __future__ import annotations

from typing import Any

SCHEDULE: dict[str, dict[str, Any]] = {}


def every(seconds: float, task: str, *, name: str) -> None:
    """Run the task (by its dotted name) every `seconds`; a second call with the name replaces it."""
    if seconds <= 0:
        raise ValueError(f"beat entry {name!r}: the interval must be positive, not {seconds}")
    SCHEDULE[name] = {"task": task, "schedule": float(seconds)}
