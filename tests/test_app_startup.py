"""Start-up: the window is shown before any heavy module (torch, open3d, mediapipe,
pyvista/VTK, OpenCV) is imported (timing itself is in benchmarks/startup.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.gui


def test_window_shows_before_heavy_imports(tmp_path):
    env = {**os.environ, "CAPTURE_STUDIO_STARTUP_PROBE": "1", "CAPTURE_STUDIO_HOME": str(tmp_path)}
    env.pop("QT_QPA_PLATFORM_PLUGIN_PATH", None)
    if not env.get("DISPLAY"):
        env["QT_QPA_PLATFORM"] = "offscreen"
    out = subprocess.run(
        [sys.executable, str(ROOT / "main.py")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = {line.split()[0]: line.split()[1:] for line in out.stdout.splitlines() if line.strip()}
    assert "shown" in lines and "ready" in lines, out.stdout
    assert lines["shown"][1] == "heavy=none", lines["shown"]
    assert float(lines["ready"][0]) >= float(lines["shown"][0])
