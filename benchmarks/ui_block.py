"""Longest UI event-loop stall while a 10-second engine job runs and streams progress
(target: under 50 ms).

A QTimer heartbeat fires every 5 ms on the UI thread and records the gap since its last
tick; any gap beyond the interval is time the event loop could not run. The job is a
stand-in engine that does real numpy work in small chunks (a few ms each, as engines do
between checkpoints) and calls ``progress`` after every chunk with a new message, so
the runner and the Jobs panel see a steady stream of updates. It runs through the real
MainWindow + JobRunner + JobsPanel, with the 2D/video/3D views loaded when there is a
display. Gaps are counted while the job runs; the stall when its result is then drawn
(a VTK render) is reported on its own line.

    xvfb-run -a .venv/bin/python benchmarks/ui_block.py [--seconds 10] [--tab 3D|2D|Video] [--no-views]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TARGET_MS = 50.0
HEARTBEAT_MS = 5


def make_engine(seconds: float):
    import numpy as np
    from pydantic import BaseModel, Field

    from engines.api import Engine, Result
    from engines.types import Image, Mesh

    default_seconds = seconds

    class BusyEngine(Engine):
        name = "busy-benchmark"
        title = "Busy engine (benchmark)"
        accepts = (Image,)
        produces = (Mesh,)

        class Params(BaseModel):
            seconds: float = Field(default_seconds, ge=0.1, le=600, description="How long to work")

        def run(self, inputs, params, progress, cancel):
            rng = np.random.default_rng(0)
            a = rng.random((160, 160))
            t0 = time.perf_counter()
            i = 0
            while (el := time.perf_counter() - t0) < params.seconds:
                cancel.raise_if_set()
                a = np.tanh(a @ a.T / 160.0)  # ~1-3 ms of numpy (releases the GIL)
                i += 1
                progress(el / params.seconds, f"chunk {i}")
            v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
            return Result(items=[Mesh(v, [[0, 1, 2]])], metrics={"chunks": i})

    return BusyEngine


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--tab", choices=["3D", "2D", "Video"], default="3D",
                    help="the central tab shown while the job runs")
    ap.add_argument("--no-views", action="store_true",
                    help="leave out the 2D/video/3D views (they need a display for VTK)")
    args = ap.parse_args()
    os.environ.setdefault("CAPTURE_STUDIO_HOME", tempfile.mkdtemp(prefix="cs_bench_"))
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.pop("QT_QPA_PLATFORM_PLUGIN_PATH", None)
    import numpy as np
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    import app  # noqa: F401  (PySide6 emit work-around)
    from app.main_window import MainWindow
    from app.settings import Settings
    from engines import registry
    from engines.types import Image

    qapp = QApplication.instance() or QApplication([])
    engine = registry.register(make_engine(args.seconds))
    views = not args.no_views and bool(os.environ.get("DISPLAY"))
    w = MainWindow(Settings(), samples=False, recovery=False, views=views)
    w.confirm_close = False
    w.show()
    loop = QEventLoop()
    QTimer.singleShot(300, loop.quit)
    loop.exec()
    w.ensure_views()
    w.refresh_engines()

    from app.project import InputEntry

    img = Image(np.zeros((64, 64, 3), np.uint8))
    w.project.add_input(InputEntry("Image", [], "blank", obj=img))
    w.inputs_panel.add_input("blank", "Image 64x64", None)
    w.inputs_panel.inputs.setCurrentRow(0)
    w.engine_panel.select(engine.name)
    w.tabs.setCurrentIndex(["3D", "2D", "Video"].index(args.tab))
    loop = QEventLoop()
    QTimer.singleShot(500, loop.quit)
    loop.exec()

    gaps: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.nsecsElapsed()]

    at: list[float] = []

    after: list[float] = []  # gaps that ended after the job finished (result display)

    def beat():
        now = clock.nsecsElapsed()
        gap = (now - last[0]) / 1e6
        last[0] = now
        if job_ref and job_ref[0].state != "running":
            after.append(gap)
            return
        gaps.append(gap)
        at.append((now - job_start[0]) / 1e9)

    progress_count = [0]
    w.runner.progress.connect(lambda *a: progress_count.__setitem__(0, progress_count[0] + 1))
    heart = QTimer()
    heart.setInterval(HEARTBEAT_MS)
    heart.timeout.connect(beat)
    done = QEventLoop()
    w.runner.finished.connect(lambda *a: done.quit())
    w.runner.failed.connect(lambda *a: done.quit())
    job_start = [clock.nsecsElapsed()]
    job_ref: list = []
    heart.start()
    t0 = time.perf_counter()
    job = w.run_engine(engine.name)
    job_ref.append(job)
    done.exec()
    for _ in range(20):  # let the result be drawn, to time that too
        QApplication.processEvents()
        beat()
    wall = time.perf_counter() - t0
    heart.stop()
    result = w.project.results[0].result if w.project.results else None
    w.close()

    stall = [max(0.0, g - HEARTBEAT_MS) for g in gaps]
    print(f"UI event-loop stalls during a {args.seconds:g} s engine job (heartbeat {HEARTBEAT_MS} ms, "
          f"platform {'xcb' if os.environ.get('DISPLAY') else 'offscreen'}, views "
          f"{'loaded (3D viewport ' + ('on' if w.viewport is not None else 'off') + ')' if views else 'off'}, "
          f"{args.tab} tab shown)")
    print(f"{'measure':<34} | value")
    print("-" * 50)
    rows = [
        ("job state", job.state),
        ("job wall time (s)", f"{wall:.2f}"),
        ("engine progress calls (chunks)", result.metrics["chunks"] if result else "-"),
        ("progress signals on the UI thread", progress_count[0]),
        ("heartbeats", len(gaps)),
        ("median gap (ms)", f"{statistics.median(gaps):.2f}"),
        ("99th percentile gap (ms)", f"{np.percentile(gaps, 99):.2f}"),
        ("longest gap (ms)", f"{max(gaps):.2f}"),
        ("longest stall beyond interval (ms)", f"{max(stall):.2f}"),
        ("  it ended at (s after Run)", f"{at[int(np.argmax(gaps))]:.2f}"),
        ("stalls over 50 ms", sum(1 for g in stall if g > 50)),
        (f"target: longest stall < {TARGET_MS:g} ms", "met" if max(stall) < TARGET_MS else "NOT met"),
        ("after the job: result drawn (ms)", f"{max(after):.1f}" if after else "-"),
    ]
    for k, v in rows:
        print(f"{k:<34} | {v}")


if __name__ == "__main__":
    main()
