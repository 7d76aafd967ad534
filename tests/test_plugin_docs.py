"""docs/plugins.md is true: its example engine, taken from the file, loads through
$CAPTURE_STUDIO_ENGINES and runs through the real CLI; the API version and broken
development engines are reported, not fatal."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from engines import registry

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "plugins.md"


def _example_engine(tmp_path: Path) -> Path:
    text = DOC.read_text()
    block = re.search(r"Save this as `relief.py`.*?```python\n(.*?)```", text, re.S)
    assert block, "docs/plugins.md has lost its example engine"
    p = tmp_path / "relief.py"
    p.write_text(block.group(1))
    return p


@pytest.fixture
def clean_registry():
    registry.reset()
    yield
    registry.reset()


def test_the_documented_engine_runs_through_the_cli(tmp_path):
    src = _example_engine(tmp_path)
    # a photo with a bright right half: the relief is high there, low on the left
    img = np.zeros((120, 160, 3), np.uint8)
    img[:, 80:] = 255
    photo = tmp_path / "photo.png"
    PILImage.fromarray(img).save(photo)
    out = tmp_path / "relief.ply"
    env = dict(os.environ, CAPTURE_STUDIO_ENGINES=str(src))
    listed = subprocess.run(
        [sys.executable, "main.py", "engines"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "relief" in listed.stdout and "Relief from brightness" in listed.stdout
    run = subprocess.run(
        [
            sys.executable,
            "main.py",
            "run",
            "relief",
            "--input",
            str(photo),
            "--out",
            str(out),
            "--set",
            "height_mm=30",
            "--set",
            "step_px=4",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["metrics"]["vertices"] == 30 * 40
    assert abs(report["metrics"]["height_max_m"] - 0.030) < 1e-6
    from engines import io

    mesh = io.read(out)
    v = np.asarray(mesh.vertices)
    assert len(v) == 30 * 40 and len(mesh.faces) == 2 * 29 * 39
    left, right = v[v[:, 0] < 0.045], v[v[:, 0] > 0.055]
    assert np.allclose(left[:, 2], 0.0, atol=1e-6) and np.allclose(right[:, 2], 0.030, atol=1e-6)
    assert abs(np.ptp(v[:, 0]) - 0.100) < 1e-6  # width_mm=100
    # a bad value is refused before the run, naming the parameter
    bad = subprocess.run(
        [
            sys.executable,
            "main.py",
            "run",
            "relief",
            "--input",
            str(photo),
            "--out",
            str(tmp_path / "x.ply"),
            "--set",
            "step_px=0",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert bad.returncode == 2 and "step_px" in bad.stderr and not (tmp_path / "x.ply").exists()


def test_development_engines_from_the_environment(tmp_path, monkeypatch, clean_registry):
    src = _example_engine(tmp_path)
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('half-written plug-in')\n")
    empty = tmp_path / "empty.py"
    empty.write_text("X = 1\n")
    monkeypatch.setenv(registry.ENV, ",".join([f"{src}:ReliefEngine", str(broken), str(empty), "no_such_module:Thing"]))
    found = registry.engines()
    assert "relief" in found and found["relief"].title == "Relief from brightness"
    assert "avatar" in found  # the built-ins are still there
    text = "\n".join(registry.problems)
    assert "half-written plug-in" in text and "defines no engine class" in text and "no_such_module" in text
    assert len(registry.problems) == 3


def test_an_engine_for_another_api_version_is_skipped_with_the_reason(tmp_path, monkeypatch, clean_registry):
    from engines.api import API_VERSION

    src = _example_engine(tmp_path)
    src.write_text(src.read_text().replace("api_version = API_VERSION", f"api_version = {API_VERSION + 1}"))
    monkeypatch.setenv(registry.ENV, str(src) + ":ReliefEngine")
    found = registry.engines()
    assert "relief" not in found
    assert any(f"API version {API_VERSION + 1}" in p and f"has version {API_VERSION}" in p for p in registry.problems)
