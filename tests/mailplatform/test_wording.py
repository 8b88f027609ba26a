"""Issue #14: no developer words ("fast path", "slug") in what the dashboard shows: its templates,
and the labels, help texts and messages its forms and models declare."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = ("mailplatform", "contacts", "templates", "campaigns", "delivery", "media", "automations")
WORDS = re.compile(r"fast[ -]path|\bslugs?\b", re.IGNORECASE)
SHOWN = {"label", "help_text", "verbose_name", "empty_label", "placeholder"}


def test_dashboard_templates_use_plain_words():
    found = []
    for app in APPS:
        for path in (ROOT / app).glob("**/templates/**/*.html"):
            # What is shown: the text, not comments, tags or variable names ({{ r.slug }} is code).
            text = re.sub(
                r"\{#.*?#\}|\{% comment %\}.*?\{% endcomment %\}|\{%.*?%\}|\{\{.*?\}\}",
                "",
                path.read_text(),
                flags=re.S,
            )
            found += [f"{path.relative_to(ROOT)}: {m.group(0)}" for m in WORDS.finditer(text)]
    assert not found, found


def test_form_and_model_texts_use_plain_words():
    found = []
    for app in APPS:
        for path in list((ROOT / app).glob("**/forms.py")) + list((ROOT / app).glob("**/models.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.keyword) and node.arg in SHOWN:
                    for value in ast.walk(node.value):
                        if (
                            isinstance(value, ast.Constant)
                            and isinstance(value.value, str)
                            and WORDS.search(value.value)
                        ):
                            found.append(f"{path.relative_to(ROOT)}:{value.lineno}: {value.value[:60]}")
    assert not found, found
