"""The two dependency lists (pip and conda/Binder) pin the same packages at the same versions."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^\s*(?:-\s*)?([A-Za-z0-9_.\-]+)==([^\s#]+)\s*$")


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        m = PIN.match(line)
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


def test_environment_yml_pins_equal_requirements_txt():
    req = _pins(ROOT / "requirements.txt")
    env = _pins(ROOT / "environment.yml")
    assert req, "requirements.txt pins nothing"
    assert env == req


def test_every_requirement_is_pinned_exactly():
    lines = [
        ln.strip() for ln in (ROOT / "requirements.txt").read_text().splitlines() if ln.strip() and not ln.startswith("#")
    ]
    assert all(PIN.match(ln) for ln in lines), lines


def test_environment_yml_uses_python_311():
    assert re.search(r"^\s*-\s*python=3\.11\s*$", (ROOT / "environment.yml").read_text(), re.M)


def test_installed_versions_match_the_pins():
    for name, pinned in _pins(ROOT / "requirements.txt").items():
        assert version(name).split("+")[0] == pinned, name


def test_pyproject_dependencies_are_pinned_in_requirements():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert set(project["dependencies"]) <= set(_pins(ROOT / "requirements.txt"))
