"""Reads one app offers to another that may not import it, registered on the ground floor.

`contacts` and `templates` import no other app, yet a template preview for a real contact needs
the contact's merge data. Contacts offers it here from its AppConfig.ready (`offer`), templates
asks for it by name (`ask`): neither imports the other, and mailplatform imports neither. The
dashboard's editor uses the same contract by URL name (`contacts:preview-data`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# The names in use, and what each answers.
CONTACT_MERGE_DATA = "contact_merge_data"  # (contact ids) -> {id: merge data}, as contacts.selectors
CUSTOM_FIELD_NAMES = "custom_field_names"  # () -> [key, ...]: the contact custom fields' keys
MAILING_CHOICES = "mailing_choices"  # () -> [(id, label), ...]: mailings that sent, newest first
# (op, send group) -> (SQL over contacts alias c, params): who did `op` with that group's mail
MAILING_ACTIVITY_SQL = "mailing_activity_sql"
MAILING_GROUPS = "mailing_groups"  # () -> [(send group, name), ...]: recent sends to choose from

_offered: dict[str, Callable[..., Any]] = {}


def offer(name: str, function: Callable[..., Any]) -> None:
    """Register the app's answer to `name` (once, from its AppConfig.ready)."""
    _offered[name] = function


def ask(name: str) -> Callable[..., Any] | None:
    """The function offered under `name`, or None when no installed app offers it."""
    return _offered.get(name)
