"""pyproject.toml keeps compatible ranges (a plug-in may live beside the app), and
constraints.txt the exact tested set that studio.sh installs; the two agree."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _constraints() -> dict[str, str]:
    out = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, v = line.partition("==")
            out[name.strip().lower().replace("_", "-")] = v.strip()
    return out


def _requirements() -> list[Requirement]:
    doc = tomllib.loads((ROOT / "pyproject.toml").read_text())
    reqs = [Requirement(r) for r in doc["project"]["dependencies"]]
    for _extra, items in doc["project"]["optional-dependencies"].items():
        reqs += [Requirement(r) for r in items if not r.startswith("capture-studio")]
    return reqs


def test_pyproject_has_ranges_and_constraints_pin_them_inside():
    pins = _constraints()
    reqs = _requirements()
    assert len(reqs) >= 20
    for r in reqs:
        specs = list(r.specifier)
        assert specs and not any(s.operator in ("==", "===") for s in specs), f"{r} is an exact pin in pyproject"
        assert any(s.operator == "<" for s in specs), f"{r} has no upper bound"
        key = r.name.lower().replace("_", "-")
        assert key in pins, f"{r.name} is not in constraints.txt"
        assert r.specifier.contains(pins[key]), f"constraints.txt pins {r.name}=={pins[key]} outside {r.specifier}"


def test_the_environment_is_the_constrained_set():
    """What the tests run with is what constraints.txt says (for every direct dependency)."""
    pins = _constraints()
    for r in _requirements():
        key = r.name.lower().replace("_", "-")
        assert version(r.name) == pins[key], f"{r.name} {version(r.name)} installed, constraints.txt says {pins[key]}"
    # and a few transitive ones that broke before when left free
    for name in ("protobuf", "jax", "ml-dtypes"):
        if name in pins:
            assert version(name) == pins[name]
