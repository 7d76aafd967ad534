"""Viewport speed: orbit frame rate and emotion-slider step time (targets: 30 fps orbit,
under 33 ms a slider step; issue 15 item 7), with and without level of detail.

Three measurements, each printed as a table:

* **orbit**: a mouse drag on the view (button pressed, 6 px a frame: VTK's trackball
  style turns the camera and renders, Qt paints), with level of detail (a mouse press
  on the view has heavy parts drawn by their stand-ins, :mod:`app.lod`) and, for
  comparison, without. Scenes: the bald avatar head, the avatar with long hair, the depth
  surface of the bundled focal stack, and a 60k-triangle textured sphere. Frame time =
  mouse event to painted frame, glFinish included; fps = 1000 / median.
* **slider**: one emotion-slider step on the avatar with hair, the way the Avatar panel
  does it: blendshape weights -> vertices (:class:`engines.avatar.engine.Deformer`),
  ``Viewport.update_points(deferred=True)`` and the paint that follows, until the GL is done.
* **update_points**: the former benchmark: an animated 30k-vertex mesh updated in place.

Run under a display, e.g.::

    xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python benchmarks/viewport.py \
        [--frames 60] [--size 1000x700] [--skip-avatar]

The avatar is made from resources/samples/portrait.png by the avatar engine (about 5 s);
``--skip-avatar`` leaves those rows out.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
os.environ.pop("QT_QPA_PLATFORM_PLUGIN_PATH", None)
ORBIT_FPS = 30.0
CPU_MS: dict = {}  # CPU time of this process per orbit frame (all threads: llvmpipe's too)
SLIDER_MS = 33.0


def uv_sphere(n_lon: int, n_lat: int):
    """Vertices, faces and UVs of a latitude/longitude sphere (outward, CCW from outside)."""
    th = np.linspace(0, 2 * np.pi, n_lon + 1)
    ph = np.linspace(0, np.pi, n_lat + 1)
    T, P = np.meshgrid(th, ph)
    v = np.stack([np.sin(P) * np.sin(T), np.cos(P), np.sin(P) * np.cos(T)], -1).reshape(-1, 3)
    uv = np.stack([T / (2 * np.pi), 1 - P / np.pi], -1).reshape(-1, 2)
    idx = np.arange((n_lat + 1) * (n_lon + 1)).reshape(n_lat + 1, n_lon + 1)
    a, b, c, d = idx[:-1, :-1], idx[1:, :-1], idx[1:, 1:], idx[:-1, 1:]
    faces = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    return v, faces, uv


def make_avatar(hairstyle: str):
    from engines.api import CancelToken, make_params
    from engines.avatar.engine import AvatarEngine
    from engines.io import load_input

    photo = load_input([ROOT / "resources" / "samples" / "portrait.png"])
    params = make_params(AvatarEngine, {"hairstyle": hairstyle, "hair_color": "#5a3c23"})
    return AvatarEngine().run([photo], params, lambda f, m="": None, CancelToken()).main


def make_depth():
    from engines.api import CancelToken, make_params
    from engines.depth.engine import DepthFromFocusEngine
    from engines.io import load_input
    from engines.types import FocalStack

    stack = load_input([ROOT / "resources" / "samples" / "focal_stack"], prefer=(FocalStack,))
    r = DepthFromFocusEngine().run([stack], make_params(DepthFromFocusEngine, {}), lambda f, m="": None, CancelToken())
    return r.main


def drawn_size(vp) -> tuple[int, int]:
    """(triangles, line segments) VTK draws now (visible actors)."""
    tris = segs = 0
    for item in vp._items.values():
        lod = getattr(item, "lod", None)
        for actor, poly in [(item.actor, item.poly)] + ([(lod[0], lod[1])] if lod else []):
            if actor.GetVisibility():
                tris += 0 if poly.n_lines else poly.n_cells
                if poly.n_lines:
                    segs += poly.n_points - poly.n_lines
    return tris, segs


def orbit(app, vp, frames: int, lod: bool) -> tuple[float, float, int]:
    """(median ms, p95 ms, triangles drawn) of ``frames`` orbit frames made the way a user
    makes them: left button pressed on the view, the mouse moved 6 px a frame (VTK's
    trackball style turns the camera and renders; Qt paints the frame)."""
    from PySide6 import QtCore, QtGui

    rw = vp.plotter.render_window
    has_lod = hasattr(vp, "set_interacting")  # (older builds: no level of detail)
    if lod and not has_lod:
        return float("nan"), float("nan"), 0
    vp.lod_enabled = lod
    vp.reset_camera()
    widget = vp.plotter
    cx, cy = widget.width() // 2 - 150, widget.height() // 2

    def mouse(kind, x, buttons):
        ev = QtGui.QMouseEvent(
            kind,
            QtCore.QPointF(x, cy),
            QtCore.QPointF(x, cy),
            QtCore.Qt.LeftButton if kind != QtCore.QEvent.MouseMove else QtCore.Qt.NoButton,
            buttons,
            QtCore.Qt.NoModifier,
        )
        QtWidgets.QApplication.sendEvent(widget, ev)

    from PySide6 import QtWidgets

    mouse(QtCore.QEvent.MouseButtonPress, cx, QtCore.Qt.LeftButton)
    x = cx
    for _ in range(3):  # warm-up: stand-ins made, shaders compiled
        x += 6
        mouse(QtCore.QEvent.MouseMove, x, QtCore.Qt.LeftButton)
        app.processEvents()
    rw.WaitForCompletion()
    tris = drawn_size(vp)[0]
    times, cpu = [], []
    for _ in range(frames):
        x += 6
        t0, c0 = time.perf_counter(), time.process_time()
        mouse(QtCore.QEvent.MouseMove, x, QtCore.Qt.LeftButton)
        app.processEvents()
        rw.WaitForCompletion()
        times.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    CPU_MS[(id(vp), lod, len(CPU_MS))] = float(np.median(cpu))
    mouse(QtCore.QEvent.MouseButtonRelease, x, QtCore.Qt.NoButton)
    app.processEvents()
    app.processEvents()
    vp.lod_enabled = True
    t = np.array(times)
    return float(np.median(t)), float(np.percentile(t, 95)), tris


def slider_steps(app, vp, avatar, key: str, frames: int, lod: bool) -> tuple[float, float]:
    """(median ms, p95 ms) of emotion-slider steps, as the Avatar panel makes them."""
    from engines.avatar.engine import Deformer

    rw = vp.plotter.render_window
    has_lod = hasattr(vp, "set_interacting")
    if lod and not has_lod:
        return float("nan"), float("nan")
    deformer = Deformer(avatar)
    vp.lod_enabled = lod
    vp.reset_camera()
    times = []
    for i in range(frames + 3):
        emotions = {"happiness": 0.5 + 0.5 * np.sin(i * 0.3), "surprise": 0.3}
        t0 = time.perf_counter()
        verts = deformer.vertices(emotions)
        vp.update_points(f"{key}/head", verts, deferred=True)
        app.processEvents()  # the paint event renders
        rw.WaitForCompletion()
        if i >= 3:
            times.append((time.perf_counter() - t0) * 1e3)
    if has_lod:
        vp.set_interacting(False)
    vp.lod_enabled = True
    t = np.array(times)
    return float(np.median(t)), float(np.percentile(t, 95))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--size", default="1000x700", help="viewport size WxH in pixels")
    ap.add_argument("--skip-avatar", action="store_true", help="leave out the avatar rows (no avatar engine run)")
    args = ap.parse_args()
    w, h = (int(x) for x in args.size.split("x"))

    from PySide6 import QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    import app as _app  # noqa: F401  (PySide6 work-around)
    from app import renderers
    from app.renderers import VertexNormals
    from app.viewport import Viewport

    def prepare(obj):  # what the worker thread does for a new result (newer builds)
        if hasattr(renderers, "prepare"):
            renderers.prepare(obj)

    from engines.types import Avatar, Mesh, PointCloud

    scenes = {}
    if not args.skip_avatar:
        haired = make_avatar("long_straight")
        bald = Avatar(haired.mesh, dict(haired.emotions), haired.camera, None, list(haired.extra_meshes), name="bald")
        scenes["avatar, bald head"] = bald
        scenes["avatar, long hair"] = haired
    scenes["depth surface (sample stack)"] = make_depth()
    v, f, uv = uv_sphere(220, 140)
    rng = np.random.default_rng(0)
    tex = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8).repeat(16, 0).repeat(16, 1)
    scenes["textured sphere"] = Mesh(v, f, uv=uv, texture=tex)
    scenes["empty scene (fixed cost)"] = None
    for obj in scenes.values():
        if obj is not None:
            prepare(obj)

    vp = Viewport()
    vp.resize(w, h)
    vp.show()
    for _ in range(10):
        app.processEvents()
        time.sleep(0.02)
    rw = vp.plotter.render_window
    orbit_rows, slider_rows = [], []
    for name, obj in scenes.items():
        vp.clear()
        key = vp.show(obj, "bench") if obj is not None else None
        vp.frame_key = key
        app.processEvents()
        full = orbit(app, vp, args.frames, lod=False)
        full_cpu = list(CPU_MS.values())[-1]
        light = orbit(app, vp, args.frames, lod=True)
        light_cpu = list(CPU_MS.values())[-1] if not np.isnan(light[0]) else float("nan")
        orbit_rows.append((name, full + (full_cpu,), light + (light_cpu,)))
        if isinstance(obj, Avatar) and obj.hair is not None:
            slider_rows.append(
                (
                    name,
                    slider_steps(app, vp, obj, key, args.frames, lod=False),
                    slider_steps(app, vp, obj, key, args.frames, lod=True),
                )
            )

    # the former benchmark: update_points on an animated 30k-vertex mesh
    v2, f2, uv2 = uv_sphere(200, 150)
    cols = ((v2 * 0.5 + 0.5) * 255).astype(np.uint8)
    offset = (0.15 * np.sin(3 * v2[:, [1]]) * v2).astype(np.float32)
    upd_rows = []
    for name, obj in {
        "textured mesh": Mesh(v2, f2, uv=uv2, texture=tex),
        "vertex-coloured mesh": Mesh(v2, f2, vertex_colors=cols),
        "point cloud": PointCloud(v2, cols),
    }.items():
        prepare(obj)
        vp.clear()
        key = vp.show(obj, "bench")
        vp.reset_camera()
        base = obj.vertices if isinstance(obj, Mesh) else obj.points
        solver = VertexNormals(obj.faces, len(base)) if isinstance(obj, Mesh) else None
        times, normals = [], []
        for i in range(args.frames):
            pts = base + offset * np.float32(0.5 + 0.5 * np.sin(i * 0.2))
            t0 = time.perf_counter()
            vp.update_points(key, pts)
            rw.WaitForCompletion()
            times.append((time.perf_counter() - t0) * 1e3)
            if solver is not None:
                t1 = time.perf_counter()
                solver(pts)
                normals.append((time.perf_counter() - t1) * 1e3)
            app.processEvents()
        upd_rows.append(
            (
                name,
                len(base),
                float(np.median(times)),
                float(np.percentile(times, 95)),
                float(np.mean(normals)) if normals else 0.0,
            )
        )
    size = rw.GetSize()
    gl = [ln.strip() for ln in rw.ReportCapabilities().splitlines() if "renderer string" in ln]
    vp.close()

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"Viewport speed, window {size[0]}x{size[1]}, {args.frames} frames a case, {os.cpu_count()} CPUs, "
        f"load average {load:.1f}, software GL: {vp.software_gl}"
    )
    print(*gl, sep="\n")
    print(f"\norbit (target {ORBIT_FPS:g} fps)")
    hdr = (
        f"{'scene':<30}{'full: tris':>11}{'ms':>7}{'CPU ms':>7}{'fps':>6}{'LOD: tris':>11}{'ms':>7}{'p95':>7}"
        f"{'CPU ms':>7}{'fps':>6}"
    )
    print(hdr)
    print("-" * len(hdr))
    for name, (fm, fp, ft, fc), (lm, lp, lt, lc) in orbit_rows:  # noqa: B007
        print(
            f"{name:<30}{ft:>11}{fm:>7.1f}{fc:>7.1f}{1000 / fm:>6.1f}{lt:>11}{lm:>7.1f}{lp:>7.1f}{lc:>7.1f}"
            f"{1000 / lm:>6.1f}"
        )
    if slider_rows:
        print(f"\nemotion slider step: deform + update_points(deferred) + paint (target < {SLIDER_MS:g} ms)")
        hdr = f"{'scene':<30}{'full ms':>9}{'p95':>7}{'LOD ms':>9}{'p95':>7}"
        print(hdr)
        print("-" * len(hdr))
        for name, (fm, fp), (lm, lp) in slider_rows:
            print(f"{name:<30}{fm:>9.1f}{fp:>7.1f}{lm:>9.1f}{lp:>7.1f}")
    print("\nupdate_points + render (no level of detail: a single part)")
    hdr = f"{'case':<22}{'vertices':>9}{'median ms':>10}{'p95':>7}{'normals ms':>11}"
    print(hdr)
    print("-" * len(hdr))
    for name, nv, med, p95, nrm in upd_rows:
        print(f"{name:<22}{nv:>9}{med:>10.1f}{p95:>7.1f}{nrm:>11.1f}")
    print("wall-clock per frame, glFinish included; CPU ms: this process's CPU time per frame (all threads,")
    print("llvmpipe's too: less sensitive to other load on the machine); LOD = the view's interacting state")
    print("(mouse held down, wheel, slider), full detail returns when it rests; the empty scene is what a")
    print("frame costs with nothing drawn (the mouse event, the render of the background, Qt composing the GL")
    print("widget into the window)")


if __name__ == "__main__":
    main()
