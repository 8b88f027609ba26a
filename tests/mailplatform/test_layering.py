"""The apps' layering, read from the code's own imports (docs/architecture.md, "Which way imports go").

Every module of every app is parsed (ast, nothing is imported or run) and each import of another
app is checked against the floors below: `import x`, `from x import y`, relative imports, imports
inside functions, and `importlib.import_module("x...")` with a literal name all count.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Top-level packages that are not apps: the suite and the benchmarks may import anything.
NOT_APPS = {"tests", "bench"}

# What each app may import besides itself. mailplatform is the ground floor; contacts and templates
# are leaves (templates may use a leaf `media` app); delivery sits on them; campaigns and
# automations are the top floor, which nothing imports.
MAY_IMPORT: dict[str, set[str]] = {
    "mailplatform": set(),
    "media": {"mailplatform"},
    "contacts": {"mailplatform"},
    "templates": {"mailplatform", "media"},
    "delivery": {"mailplatform", "contacts", "templates", "media"},
    "campaigns": {"mailplatform", "contacts", "templates", "delivery", "media"},
    "automations": {"mailplatform", "contacts", "templates", "delivery", "media"},
}
TOP_FLOOR = {"campaigns", "automations"}


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    importer: str
    imported: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.importer} imports {self.imported}"


def apps_in(root: Path) -> set[str]:
    """The first-party apps: the root's packages, less the suite and the benchmarks."""
    return {
        p.name
        for p in root.iterdir()
        if p.is_dir() and (p / "__init__.py").exists() and p.name not in NOT_APPS
    }


def allowed(importer: str, imported: str) -> bool:
    if importer == imported:
        return True
    if importer in MAY_IMPORT:
        return imported in MAY_IMPORT[importer]
    # An app this table does not name yet sits beside campaigns: it may stand on every floor
    # below the top one, and nothing may stand on it until it is placed here.
    return imported not in TOP_FLOOR


def _module_name(root: Path, path: Path) -> list[str]:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def imported_names(root: Path, path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) for every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _module_name(root, path)
    if path.name != "__init__.py":
        package = package[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                found.append((node.lineno, ".".join([*base, *([node.module] if node.module else [])])))
            elif node.module:
                found.append((node.lineno, node.module))
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def violations(root: Path) -> list[Violation]:
    apps = apps_in(root)
    found = []
    for app in sorted(apps):
        for path in sorted((root / app).rglob("*.py")):
            for line, name in imported_names(root, path):
                imported = name.split(".")[0]
                if imported in apps and not allowed(app, imported):
                    found.append(Violation(str(path.relative_to(root)), line, app, imported))
    return found


def test_the_apps_import_only_downwards():
    apps = apps_in(REPO)
    assert {"mailplatform", "contacts", "templates", "delivery", "campaigns"} <= apps
    found = violations(REPO)
    assert not found, "imports against the layering:\n" + "\n".join(map(str, found))


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for app in {name.split("/")[0] for name in files}:
        (root / app / "__init__.py").touch()
    return root


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"mailplatform/urls.py": "from contacts import views\n"}, ("mailplatform", "contacts")),
        ({"contacts/tasks.py": "def f():\n    import templates.models\n"}, ("contacts", "templates")),
        ({"templates/api.py": "from delivery.models import Message\n"}, ("templates", "delivery")),
        ({"delivery/engine.py": "from campaigns import services\n"}, ("delivery", "campaigns")),
        (
            {"delivery/x.py": "import importlib\nimportlib.import_module('automations.steps')\n"},
            ("delivery", "automations"),
        ),
        ({"automations/run.py": "from campaigns.models import Campaign\n"}, ("automations", "campaigns")),
        ({"newapp/views.py": "from campaigns.selectors import report\n"}, ("newapp", "campaigns")),
        ({"delivery/bounces/ledger.py": "from campaigns import models\n"}, ("delivery", "campaigns")),
    ],
)
def test_the_check_fails_on_an_import_against_the_layering(tmp_path, files, expected):
    apps = ["mailplatform", "contacts", "templates", "delivery", "campaigns", "automations"]
    _tree(tmp_path, {**{f"{app}/__init__.py": "" for app in apps}, **files})
    found = violations(tmp_path)
    assert [(v.importer, v.imported) for v in found] == [expected]


def test_the_check_lets_downward_imports_pass(tmp_path):
    _tree(
        tmp_path,
        {
            "mailplatform/models.py": "import django\nfrom . import roles\n",
            "contacts/services.py": "from mailplatform.services import audit_record\nfrom .models import Contact\n",
            "templates/media_use.py": "from media.models import Asset\n",
            "media/models.py": "from mailplatform import uploads\n",
            "delivery/engine.py": "from contacts import services\nfrom templates.compiler import compile_template\n",
            "delivery/bounces/rules.py": "from .. import models\nfrom delivery.models import Message\n",
            "campaigns/services.py": "from delivery import services\n",
        },
    )
    assert violations(tmp_path) == []
