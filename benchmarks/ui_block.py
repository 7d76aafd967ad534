"""Longest UI event-loop stall while engines run, their results are drawn, and the project
is saved (target: under 100 ms, issue 15 item 1).

A QTimer heartbeat fires every 5 ms on the UI thread and records the gap since its last
tick; any gap beyond the interval is time the event loop could not run (a slider would
not move, the window would not repaint). Each case goes through the real MainWindow +
JobRunner + JobsPanel (and, with a display, the 2D/video/3D views), driven as a user
drives it: import the inputs, pick the engine, Run, wait, let the result be drawn.

Cases (``--cases``, comma separated, default all):

* ``busy``: a stand-in engine doing numpy work in small chunks and reporting progress
  after each (the runner and Jobs panel see a steady stream of updates);
* ``depth``: depth from focus on the bundled 5-frame focal stack;
* ``multiview``: multi-view reconstruction (SfM, plane sweep, TSDF fusion, mesh,
  texture) of 12 renders of the bunny orbit;
* ``avatar``: an avatar from the bundled portrait (hair included);
* ``tryon``: video try-on of the bundled person video with the bundled garment, 12 frames;
* ``puppet``: the puppet engine, carphone video (30 frames) driving the portrait;
* ``splat``: Gaussian splatting of the bunny renders for a 20 s budget;
* ``save``: File > Save project as of everything made so far plus a ballast result,
  about 72 MB on disk (the size the issue saw freeze the window for 5.8 s).

For every stall longer than ``--why`` ms a watchdog (``faulthandler.dump_traceback_later``,
a C thread that needs no GIL) records where each thread was; ``--verbose`` prints the
UI thread's and the busiest worker's frames for the longest stalls of each case.

    xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python benchmarks/ui_block.py \
        [--cases depth,multiview,save] [--seconds 10] [--tab 3D|2D|Video] [--no-views] [--verbose]
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TARGET_MS = 100.0
HEARTBEAT_MS = 5
SAMPLES = ROOT / "resources" / "samples"
DATA = ROOT / "tests" / "data"
DEPTH = 4  # frames shown per thread (--frames)
ALL_CASES = ("busy", "depth", "multiview", "avatar", "tryon", "puppet", "splat", "save")


def busy_engine():
    """The stand-in engine class, imported from this module by name (``ui_block``, not
    ``__main__``) so that it runs in the engine worker process like the real engines."""
    import ui_block

    return ui_block.BusyEngine


import numpy as _np  # noqa: E402
from pydantic import BaseModel as _BaseModel, Field as _Field  # noqa: E402

from engines.api import Engine as _Engine, Result as _Result  # noqa: E402
from engines.types import Image as _Image, Mesh as _Mesh  # noqa: E402


class BusyEngine(_Engine):
    """Numpy work in small chunks, a progress report after each."""

    name = "busy-benchmark"
    title = "Busy engine (benchmark)"
    accepts = (_Image,)
    produces = (_Mesh,)

    class Params(_BaseModel):
        seconds: float = _Field(10.0, ge=0.1, le=600, description="How long to work")

    def run(self, inputs, params, progress, cancel):
        rng = _np.random.default_rng(0)
        a = rng.random((160, 160))
        t0 = time.perf_counter()
        i = 0
        while (el := time.perf_counter() - t0) < params.seconds:
            cancel.raise_if_set()
            a = _np.tanh(a @ a.T / 160.0)  # ~1-3 ms of numpy
            i += 1
            progress(el / params.seconds, f"chunk {i}")
        v = _np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], _np.float32)
        return _Result(items=[_Mesh(v, [[0, 1, 2]])], metrics={"chunks": i})


def bunny_views(folder: Path, n: int = 12) -> list[Path]:
    """n renders of the bunny on two rings (tests/test_multiview_scenes.py), as PNG files."""
    from tests.test_multiview_scenes import load_mesh, orbit_cameras, render_views, write_scene

    if (folder / f"view_{n - 1:03d}.png").exists():
        return sorted(folder.glob("view_*.png"))
    v, f = load_mesh()
    K, R, t = orbit_cameras(n, (320, 240), 1.3)
    return write_scene(dict(images=render_views(v, f, K, R, t, (320, 240))), folder)


def case_plan(name: str, work: Path, seconds: float):
    """(inputs: list of (paths, kind), engine name, parameter values) of one case."""
    if name == "busy":
        return [([DATA / "astronaut.png"], None)], "busy-benchmark", {"seconds": seconds}
    if name == "depth":
        return [([SAMPLES / "focal_stack"], "FocalStack")], "depth-from-focus", {}
    if name == "multiview":
        return (
            [(bunny_views(work / "bunny"), "ImageSet")],
            "multiview",
            {"dense_image_size": 240, "depth_planes": 48, "texture_size": 1024},
        )
    if name == "avatar":
        return [([SAMPLES / "portrait.png"], None)], "avatar", {}
    if name == "tryon":
        return ([([SAMPLES / "person.mp4"], None), ([SAMPLES / "garment.png"], None)], "tryon", {"max_frames": 12})
    if name == "puppet":
        return ([([DATA / "carphone_30.mp4"], None), ([SAMPLES / "portrait.png"], None)], "puppet", {"max_frames": 30})
    if name == "splat":
        return (
            [(bunny_views(work / "bunny"), "ImageSet")],
            "splat",
            {"time_budget_s": 20.0, "steps": 300, "resolution": 160},
        )
    raise ValueError(name)


class Heart:
    """The 5 ms heartbeat, the stall watchdog and what they saw for the current phase."""

    def __init__(self, why_ms: float, dump_path: Path):
        from PySide6.QtCore import QElapsedTimer, QTimer

        self.clock = QElapsedTimer()
        self.clock.start()
        self.last = self.clock.nsecsElapsed()
        self.why_ms = why_ms
        self.dump_path = dump_path
        self.dump = open(dump_path, "w+")
        self.phase = None
        self.gaps: dict[str, list[float]] = {}
        self.why: dict[str, list[int]] = {}  # phase -> indices (into the dumps) of its long stalls
        self.n_long = 0
        self.timer = QTimer()
        self.timer.setInterval(HEARTBEAT_MS)
        self.timer.timeout.connect(self.beat)

    def start(self, phase: str) -> None:
        self.phase = phase
        self.gaps.setdefault(phase, [])
        self.last = self.clock.nsecsElapsed()
        faulthandler.dump_traceback_later(self.why_ms / 1000.0, repeat=False, file=self.dump)
        self.timer.start()

    def beat(self) -> None:
        now = self.clock.nsecsElapsed()
        gap = (now - self.last) / 1e6
        self.last = now
        faulthandler.dump_traceback_later(self.why_ms / 1000.0, repeat=False, file=self.dump)
        if gap >= self.why_ms + 1.0:  # the watchdog dumped during this gap
            if self.phase is not None:
                self.why.setdefault(self.phase, []).append(self.n_long)
            self.n_long += 1
        if self.phase is not None:
            self.gaps[self.phase].append(gap)

    def stop(self) -> None:
        self.beat()
        self.timer.stop()
        faulthandler.cancel_dump_traceback_later()
        self.phase = None

    def stacks(self) -> list[str]:
        self.dump.flush()
        return [b for b in re.split(r"^Timeout \(", self.dump_path.read_text(), flags=re.M) if b.strip()]


def culprit(block: str) -> str:
    """Where each thread was during one stall (innermost frames first), the UI thread first."""
    threads = re.split(r"^(?=(?:Thread|Current thread) 0x)", block, flags=re.M)[1:]
    out = []
    for t in threads:
        frames = [ln.strip() for ln in t.splitlines()[1:] if ln.strip().startswith("File")]
        short = [re.sub(r'File "([^"]*/)?([^"/]+)", line (\d+) in (\S+)', r"\2:\3 \4", f) for f in frames]
        short = [f for f in short if "importlib._bootstrap" not in f][:DEPTH]
        idle = not short or any(w in short[0] for w in ("threading.py", "selectors.py", "connection.py", "queue.py"))
        out.append((" < ".join(short), idle))
    # faulthandler lists the most recent thread first; the UI (main) thread is the last
    main = out[-1][0] if out else "?"
    busy = [o for o, idle in out[:-1] if not idle]
    return f"UI: {main}\n        busy: {' | '.join(busy) if busy else '-'}"


def wait_loop(ms: int) -> None:
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default=",".join(ALL_CASES), help=f"comma separated, from {', '.join(ALL_CASES)}")
    ap.add_argument("--seconds", type=float, default=10.0, help="busy case: how long the job works")
    ap.add_argument("--tab", choices=["3D", "2D", "Video"], default="3D", help="the central tab shown while a job runs")
    ap.add_argument(
        "--no-views", action="store_true", help="leave out the 2D/video/3D views (they need a display for VTK)"
    )
    ap.add_argument(
        "--why", type=float, default=TARGET_MS, help="record where the threads were for stalls over this (ms)"
    )
    ap.add_argument("--save-mb", type=float, default=72.0, help="save case: size of the project on disk (MB), about")
    ap.add_argument("--verbose", action="store_true", help="print where the threads were during the longest stalls")
    ap.add_argument("--frames", type=int, default=4, help="--verbose: frames shown per thread")
    ap.add_argument(
        "--profile",
        action="store_true",
        help="profile what the UI thread does with a job's result "
        "(MainWindow._add_result: thumbnail, list, show; cProfile, per case)",
    )
    args = ap.parse_args()
    globals()["DEPTH"] = args.frames
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    bad = [c for c in cases if c not in ALL_CASES]
    if bad:
        ap.error(f"unknown case(s) {', '.join(bad)}")
    os.environ.setdefault("CAPTURE_STUDIO_HOME", tempfile.mkdtemp(prefix="cs_bench_"))
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.pop("QT_QPA_PLATFORM_PLUGIN_PATH", None)
    import numpy as np
    from PySide6.QtCore import QEventLoop
    from PySide6.QtWidgets import QApplication

    import app  # noqa: F401  (PySide6 emit work-around)
    from app.main_window import MainWindow
    from app.settings import Settings
    from engines import registry

    qapp = QApplication.instance() or QApplication([])
    registry.register(busy_engine())
    views = not args.no_views and bool(os.environ.get("DISPLAY"))
    w = MainWindow(Settings(), samples=False, recovery=False, views=views)
    w.confirm_close = False
    w.resize(1400, 900)
    w.show()
    wait_loop(300)
    w.ensure_views()
    w.refresh_engines()
    work = Path(tempfile.mkdtemp(prefix="cs_ui_block_"))
    heart = Heart(args.why, work / "stalls.txt")
    renders: dict[str, list[float]] = {}  # phase -> duration of each VTK render in it (ms)
    if w.viewport is not None:
        rw = w.viewport.plotter.render_window
        began = [0.0]
        rw.AddObserver("StartEvent", lambda *a: began.__setitem__(0, time.perf_counter()))
        rw.AddObserver(
            "EndEvent",
            lambda *a: renders.setdefault(heart.phase or "-", []).append((time.perf_counter() - began[0]) * 1e3),
        )
    rows = []
    profiles: dict = {}
    if args.profile:
        import cProfile

        plain_add = w._add_result

        def profiled_add(*a, **k):
            pr = profiles.setdefault(heart.phase or "-", cProfile.Profile())
            pr.enable()
            try:
                return plain_add(*a, **k)
            finally:
                pr.disable()

        w._add_result = profiled_add  # a job's result: added to the project, listed, shown

    def import_all(plan_inputs) -> list[int]:
        rows_ = []
        for paths, kind in plan_inputs:
            got = []
            w.input_added.connect(got.append)
            failed = []
            w.import_failed.connect(failed.append)
            w.import_paths([str(p) for p in paths], kind)
            while not got and not failed:
                qapp.processEvents(QEventLoop.AllEvents, 50)
            w.input_added.disconnect(got.append)
            w.import_failed.disconnect(failed.append)
            if failed:
                raise RuntimeError(failed[0])
            rows_.append(got[0])
        return rows_

    def select_rows(rows_: list[int]) -> None:
        from PySide6.QtCore import QItemSelectionModel

        lst = w.inputs_panel.inputs
        lst.clearSelection()
        for r in rows_:
            lst.setCurrentRow(r, QItemSelectionModel.Select)

    for name in cases:
        if name == "save":
            continue
        try:
            plan_inputs, engine, values = case_plan(name, work, args.seconds)
            in_rows = import_all(plan_inputs)
        except Exception as e:  # a case that cannot be set up here is reported, not fatal
            rows.append((name, f"not run: {e}", None, None, "", []))
            continue
        select_rows(in_rows)
        w.engine_panel.select(engine)
        if values:
            w.engine_panel.form.set_values(values)
        w.tabs.setCurrentIndex(["3D", "2D", "Video"].index(args.tab))
        wait_loop(300)
        done = QEventLoop()
        ended = []
        fin = lambda *a: (ended.append(a), done.quit())  # noqa: B023, E731
        w.runner.finished.connect(fin)
        w.runner.failed.connect(fin)
        w.runner.cancelled.connect(fin)
        heart.start(f"{name} job")
        t0 = time.perf_counter()
        job = w.run_engine(engine)
        if job is None:
            heart.stop()
            rows.append((name, "refused", None, None, "", []))
            continue
        while job.state in ("queued", "running"):
            done.exec()
        wall = time.perf_counter() - t0
        heart.phase = f"{name} result"  # the result is drawn, its thumbnail made, from here on
        heart.gaps.setdefault(heart.phase, [])
        wait_loop(2000)
        heart.stop()
        for sig in (w.runner.finished, w.runner.failed, w.runner.cancelled):
            sig.disconnect(fin)
        state = job.state + ("" if job.state == "done" else f" ({job.message[:60]})")
        rows.append((name, state, wall, heart.gaps[f"{name} job"], f"{name} job", heart.gaps[f"{name} result"]))

    if "save" in cases:
        from app.project import ResultEntry
        from engines.api import Result
        from engines.types import DepthMap

        target = work / "bench.capstudio"
        tmp = work / "probe.capstudio"
        have = 0
        if w.project.results:
            w.project.save(tmp, remember=False)
            have = sum(f.stat().st_size for f in (work / "probe.results").glob("*")) / 1e6
            shutil.rmtree(work / "probe.results", ignore_errors=True)
        need = max(0.0, args.save_mb - have)
        if need > 1:
            # random (incompressible) depth + confidence + image: 12 bytes a pixel on disk
            side = int(np.sqrt(need * 1e6 / 12.0))
            rng = np.random.default_rng(0)
            dm = DepthMap(
                rng.random((side, side), np.float32) + 1,
                rng.random((side, side), np.float32),
                image=rng.integers(0, 255, (side, side, 4), np.uint8)[:, :, :3].copy(),
                name="ballast",
            )
            w.project.add_result(ResultEntry(Result(items=[dm]), "busy-benchmark", {}, "ballast"))
        wait_loop(300)
        heart.start("save")
        t0 = time.perf_counter()
        saved = w.save_project(target)
        wall = time.perf_counter() - t0
        wait_loop(500)
        heart.stop()
        size = (
            (target.stat().st_size + sum(f.stat().st_size for f in (work / "bench.results").glob("*"))) / 1e6
            if saved
            else 0.0
        )
        rows.append(("save", f"{'saved' if saved else 'FAILED'} {size:.0f} MB", wall, heart.gaps["save"], "save", []))

    w.close()
    stacks = heart.stacks()
    if profiles:
        import pstats

        for phase, pr in profiles.items():
            print(f"--- _add_result during {phase}: cumulative, top 14")
            pstats.Stats(pr).sort_stats("cumulative").print_stats(14)

    print(
        f"UI event-loop stalls (heartbeat {HEARTBEAT_MS} ms, platform "
        f"{'xcb' if os.environ.get('DISPLAY') else 'offscreen'}, views {'on' if views else 'off'}, "
        f"{args.tab} tab shown, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f})"
    )
    hdr = (
        f"{'case':<10}| {'state':<22}| {'wall s':>7} | {'median ms':>9} | {'p99 ms':>7} | {'longest ms':>10} | "
        f"{'> 100 ms':>8} | {'result drawn ms':>15}"
    )
    print(hdr)
    print("-" * len(hdr))
    worst = 0.0
    for name, state, wall, gaps, phase, after in rows:  # noqa: B007
        if gaps is None:
            print(f"{name:<10}| {state:<22}|")
            continue
        stall = [max(0.0, g - HEARTBEAT_MS) for g in gaps] or [0.0]
        after_stall = max([max(0.0, g - HEARTBEAT_MS) for g in after] or [0.0])
        worst = max(worst, max(stall), after_stall)
        print(
            f"{name:<10}| {state[:22]:<22}| {wall:>7.1f} | {statistics.median(gaps or [0]):>9.1f} | "
            f"{np.percentile(gaps or [0], 99):>7.1f} | {max(stall):>10.1f} | "
            f"{sum(1 for s in stall if s > TARGET_MS):>8} | {after_stall if after else float('nan'):>15.1f}"
        )
    print(
        f"longest stall over all cases: {worst:.1f} ms (target < {TARGET_MS:g} ms: "
        f"{'met' if worst < TARGET_MS else 'NOT met'})"
    )
    print(
        "stall = heartbeat gap minus the 5 ms interval; 'result drawn': the 2 s after the job ended "
        "(result conversion to VTK, render, thumbnail)"
    )
    if args.verbose:
        for phase, r in renders.items():
            if phase != "-":
                print(f"{phase}: {len(r)} VTK render(s), longest {max(r):.0f} ms, {sum(r):.0f} ms in all")
        for phase, idx in heart.why.items():
            gaps = heart.gaps[phase]
            longs = sorted([g for g in gaps if g >= args.why + 1.0], reverse=True)
            print(
                f"\n{phase}: {len(idx)} stall(s) over {args.why:g} ms; longest {', '.join(f'{g:.0f}' for g in longs[:5])} ms"  # noqa: E501
            )
            seen = set()
            for k in idx:
                if k < len(stacks):
                    c = culprit(stacks[k])
                    if c not in seen:
                        seen.add(c)
                        print("   ", c)
                if len(seen) >= 6:
                    break


if __name__ == "__main__":
    main()
