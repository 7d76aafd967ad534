"""Cold start of the desktop app to the main window shown (target: under 2.5 s).

Starts ``python main.py`` in a fresh process several times with
``CAPTURE_STUDIO_STARTUP_PROBE=1``, which makes the app print the moment its window has
been shown and painted (and again once the deferred start-up work, engine discovery, is
done), then quit. Also lists which heavy modules (torch, open3d, mediapipe, pyvista,
vtk, cv2) were already imported when the window appeared: the target is none.

    xvfb-run -a .venv/bin/python benchmarks/startup.py [--runs 5]

Without a display it uses Qt's offscreen platform.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 2.5


def one_run(home: str, views: bool = False) -> tuple[float, float, str, float]:
    env = {**os.environ, "CAPTURE_STUDIO_STARTUP_PROBE": "views" if views else "1", "CAPTURE_STUDIO_HOME": home}
    env.pop("QT_QPA_PLATFORM_PLUGIN_PATH", None)
    if not env.get("DISPLAY"):
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
    t0 = time.time()
    out = subprocess.run(
        [sys.executable, str(ROOT / "main.py")], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    shown = ready = views_at = float("nan")
    heavy = "?"
    for line in out.stdout.splitlines():
        parts = line.split()
        if parts and parts[0] == "shown":
            shown = float(parts[1]) - t0
            heavy = parts[2].split("=", 1)[1]
        elif parts and parts[0] == "ready":
            ready = float(parts[1]) - t0
        elif parts and parts[0] == "views":
            views_at = float(parts[1]) - t0
    if out.returncode != 0 or shown != shown:
        raise SystemExit(f"the app did not start (exit {out.returncode}):\n{out.stderr[-2000:]}")
    return shown, ready, heavy, views_at


def python_baseline() -> float:
    t0 = time.time()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    base = python_baseline()
    rows = []
    with tempfile.TemporaryDirectory() as home:
        for i in range(args.runs):  # noqa: B007
            rows.append(one_run(home))
        with_views = [one_run(home, views=True)[3] for _ in range(max(1, args.runs // 2))]
    print(
        f"Cold start to window shown ({args.runs} runs, platform "
        f"{'xcb' if os.environ.get('DISPLAY') else 'offscreen'}; bare python start {base:.3f} s)"
    )
    print(f"{'run':>4} | {'window shown (s)':>16} | {'engines listed (s)':>18} | heavy modules loaded")
    print("-" * 72)
    for i, (shown, ready, heavy, _v) in enumerate(rows, 1):
        print(f"{i:>4} | {shown:16.3f} | {ready:18.3f} | {heavy}")
    shown = [r[0] for r in rows]
    print("-" * 72)
    print(
        f"{'med':>4} | {statistics.median(shown):16.3f} | "
        f"{statistics.median(r[1] for r in rows):18.3f} | target < {TARGET_S} s: "
        f"{'met' if statistics.median(shown) < TARGET_S else 'NOT met'}"
    )
    print(
        f"\nStart to 2D, video and 3D views loaded (pyvista/VTK imported after the window "
        f"is shown): {', '.join(f'{v:.3f}' for v in with_views)} s"
    )


if __name__ == "__main__":
    main()
