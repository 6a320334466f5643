"""The package as a whole: the lower bounds in pyproject.toml are the versions `make test-oldest`
runs, and its import graph has no cycle."""

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def _oldest_pins() -> dict[str, Version]:
    makefile = (ROOT / "Makefile").read_text()
    match = re.search(r"^OLDEST_PINS\s*:=((?:.*\\\n)*.*)$", makefile, flags=re.MULTILINE)
    assert match, "OLDEST_PINS not found in the Makefile"
    pins = match.group(1).replace("\\\n", " ").split()
    return {name: Version(v) for name, v in (pin.split("==") for pin in pins)}


def _lower_bounds() -> dict[str, Version]:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    bounds = {}
    for line in project["dependencies"]:
        req = Requirement(line)
        (lower,) = [s.version for s in req.specifier if s.operator == ">="]
        bounds[req.name] = Version(lower)  # 1.24 == 1.24.0
    return bounds


def test_every_runtime_dependency_has_its_lower_bound_pinned_in_test_oldest():
    assert _oldest_pins() == _lower_bounds()
