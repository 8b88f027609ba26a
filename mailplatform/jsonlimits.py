"""JSON from outside, parsed with a nesting bound.

`json.loads` recurses once per level: `[` × 50,000 raises RecursionError (a 500 where it is not
caught), and a document a few hundred levels deep parses but then breaks whatever walks it
recursively later. No document the platform accepts needs more than a handful of levels.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 32


class JSONTooDeep(ValueError):
    def __init__(self, limit: int):
        self.limit = limit
        super().__init__(f"JSON nested more than {limit} levels deep")


def loads(text: str | bytes, *, max_depth: int = MAX_DEPTH, **kwargs: Any) -> Any:
    """json.loads that raises JSONTooDeep (a ValueError) instead of recursing without bound."""
    try:
        value = json.loads(text, **kwargs)
    except RecursionError:
        raise JSONTooDeep(max_depth) from None
    check_depth(value, max_depth)
    return value


def check_depth(value: Any, max_depth: int = MAX_DEPTH) -> None:
    """Raise JSONTooDeep when `value` nests lists and objects more than `max_depth` levels."""
    if not isinstance(value, dict | list):
        return
    pending = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > max_depth:
                    raise JSONTooDeep(max_depth)
                pending.append((child, depth + 1))
