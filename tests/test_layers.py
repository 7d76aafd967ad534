"""The layers stay honest (import-linter contracts in pyproject.toml): engines never import
the app, Qt or the viewer; the I/O layer imports no engine package; engine packages are
independent except through the shared modules."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    exe = Path(sys.executable).parent / name
    return str(exe) if exe.exists() else (shutil.which(name) or name)


def test_import_contracts_are_kept():
    out = subprocess.run([_tool("lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout and "4 kept" in out.stdout


def test_a_forbidden_import_is_caught(tmp_path):
    """The contract can fail: an engine module importing the app breaks it."""
    import shutil as sh

    tree = tmp_path / "tree"
    for d in ("engines", "app"):
        sh.copytree(ROOT / d, tree / d, ignore=sh.ignore_patterns("__pycache__", "*.npz", "*.task", "*.obj", "*.png"))
    sh.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    (tree / "engines" / "depth" / "leak.py").write_text("import app.viewport\n")
    out = subprocess.run(
        [_tool("lint-imports"), "--no-cache"],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=600,
        env={"PYTHONPATH": str(tree), "PATH": str(Path(sys.executable).parent)},
    )
    assert out.returncode != 0 and "engines.depth.leak -> app.viewport" in out.stdout


def test_ruff_lint_is_clean():
    """ruff's pycodestyle, pyflakes and bugbear rules (configuration in pyproject.toml)."""
    out = subprocess.run(
        [_tool("ruff"), "check", "--no-cache", "--output-format", "concise", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_ruff_format_is_kept():
    """Every file is as ``ruff format`` writes it (run ``.venv/bin/ruff format .`` to fix)."""
    out = subprocess.run(
        [_tool("ruff"), "format", "--no-cache", "--check", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_ruff_catches_an_unused_import(tmp_path):
    """The lint check can fail: an unused import in a copy of a module is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n")
    out = subprocess.run(
        [_tool("ruff"), "check", "--no-cache", "--config", str(ROOT / "pyproject.toml"), str(bad)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 1 and "F401" in out.stdout
