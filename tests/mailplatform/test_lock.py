"""The lock files (`make lock`) pin, by hash, everything pyproject.toml asks for.

requirements.lock is the runtime set the Dockerfile installs; requirements-dev.lock adds the test
and embedded extras for make and CI. A dependency added to pyproject.toml without re-locking, or a
pin that no longer satisfies its range, fails here before a fresh clone fails to install.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import REPO_ROOT

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
SELF = canonicalize_name(PYPROJECT["name"])


def parse_lock(name: str) -> dict[str, tuple[Version, list[str]]]:
    """{package: (pinned version, hashes)} for the entries whose markers hold on this interpreter."""
    text = (REPO_ROOT / name).read_text()
    text = re.sub(r"\\\n", " ", text)  # continuation lines
    pins: dict[str, tuple[Version, list[str]]] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("--hash") else raw.strip()
        if not line or line.startswith("#"):
            continue
        hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", line)
        spec = re.sub(r"--hash=\S+", "", line).strip()
        requirement = Requirement(spec)
        assert len(requirement.specifier) == 1 and str(requirement.specifier).startswith("=="), raw
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        pins[canonicalize_name(requirement.name)] = (Version(str(requirement.specifier)[2:]), hashes)
    return pins


def direct_requirements(extras: set[str]) -> list[Requirement]:
    """pyproject's dependencies plus the named extras, following the project's own self-references."""
    found = [Requirement(text) for text in PYPROJECT["dependencies"]]
    todo, seen = list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for text in PYPROJECT["optional-dependencies"][extra]:
            requirement = Requirement(text)
            if canonicalize_name(requirement.name) == SELF:
                todo.extend(requirement.extras)
            else:
                found.append(requirement)
    return found


LOCKS = [("requirements.lock", set()), ("requirements-dev.lock", {"test", "embedded"})]


@pytest.mark.parametrize(("lock", "extras"), LOCKS)
def test_every_pin_carries_hashes(lock, extras):
    pins = parse_lock(lock)
    assert pins, f"{lock} pins nothing"
    unhashed = [name for name, (_, hashes) in pins.items() if not hashes]
    assert not unhashed, f"{lock}: pins without --hash (run `make lock`): {unhashed}"
    assert SELF not in pins, "the project itself is installed with --no-deps -e ., never from the lock"


@pytest.mark.parametrize(("lock", "extras"), LOCKS)
def test_the_lock_satisfies_pyproject(lock, extras):
    pins = parse_lock(lock)
    problems = []
    for requirement in direct_requirements(extras):
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        pinned = pins.get(canonicalize_name(requirement.name))
        if pinned is None:
            problems.append(f"{requirement} is not in {lock}")
        elif not requirement.specifier.contains(pinned[0], prereleases=True):
            problems.append(f"{requirement} but {lock} pins {pinned[0]}")
    assert not problems, "run `make lock` and commit the lock files:\n" + "\n".join(problems)


@pytest.mark.parametrize(("lock", "extras"), LOCKS)
def test_the_lock_is_closed_under_the_pinned_packages_own_requirements(lock, extras):
    """Each pinned package's requirements (with the extras asked of it) are pinned too, compatibly.

    The metadata comes from the installed distributions, which `make install` took from the dev lock.
    """
    pins = parse_lock(lock)
    dev_pins = parse_lock("requirements-dev.lock")
    for name, (version, _) in pins.items():
        assert dev_pins[name][0] == version, f"{name}: the runtime and dev locks disagree"
    todo = [(requirement, "") for requirement in direct_requirements(extras)]
    seen: set[tuple[str, str]] = set()
    problems = []
    while todo:
        requirement, extra = todo.pop()
        env = {**default_environment(), "extra": extra}
        if requirement.marker is not None and not requirement.marker.evaluate(env):
            continue
        name = canonicalize_name(requirement.name)
        if name not in pins:
            problems.append(f"{requirement} is needed but not pinned in {lock}")
            continue
        if not requirement.specifier.contains(pins[name][0], prereleases=True):
            problems.append(f"{requirement} is needed but {lock} pins {pins[name][0]}")
        for wanted in {""} | set(requirement.extras):
            if (name, wanted) in seen:
                continue
            seen.add((name, wanted))
            distribution = importlib.metadata.distribution(name)
            assert Version(distribution.version) == pins[name][0], (
                f"{name} {distribution.version} is installed but the lock pins {pins[name][0]}: run make install"
            )
            todo.extend((Requirement(text), wanted) for text in distribution.requires or [])
    assert not problems, "\n".join(problems)
