"""Viewport redraw time for an animated 30k-vertex mesh (target: under 33 ms a frame).

Each frame deforms the mesh (as the avatar's emotion sliders do), calls
``Viewport.update_points`` (in-place vertex update, normals recomputed, render) and waits
for the GL to finish. Run under a display, e.g.::

    xvfb-run -a .venv/bin/python benchmarks/viewport.py [--frames 100] [--size 1000x700]

Prints one row per case: mean, median, 95th percentile and worst frame time in ms, the
process CPU time per frame (less sensitive to other load on the machine than wall time),
and the time spent recomputing normals.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "xcb")


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--size", default="1000x700", help="viewport size WxH in pixels")
    args = ap.parse_args()
    w, h = (int(x) for x in args.size.split("x"))

    from PySide6 import QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    from app.viewport import VertexNormals, Viewport
    from engines.types import Mesh, PointCloud

    v, f, uv = uv_sphere(200, 150)
    rng = np.random.default_rng(0)
    tex = (rng.integers(0, 255, (64, 64, 3), dtype=np.uint8).repeat(16, 0).repeat(16, 1))
    cols = ((v * 0.5 + 0.5) * 255).astype(np.uint8)
    # a smooth "expression" offset, animated by a weight per frame
    offset = (0.15 * np.sin(3 * v[:, [1]]) * v).astype(np.float32)
    cases = {
        "textured mesh": Mesh(v, f, uv=uv, texture=tex),
        "vertex-coloured mesh": Mesh(v, f, vertex_colors=cols),
        "point cloud": PointCloud(v, cols),
    }

    vp = Viewport()
    vp.resize(w, h)
    vp.show()
    app.processEvents()
    rw = vp.plotter.render_window
    rows = []
    for name, obj in cases.items():
        vp.clear()
        key = vp.show(obj, "bench")
        vp.reset_camera()
        base = obj.vertices if isinstance(obj, Mesh) else obj.points
        for i in range(5):  # warm-up
            vp.update_points(key, base + offset * (i / 5))
        times, normals, cpu = [], [], []
        normal_solver = VertexNormals(obj.faces, len(base)) if isinstance(obj, Mesh) else None
        for i in range(args.frames):
            pts = base + offset * np.float32(0.5 + 0.5 * np.sin(i * 0.2))
            t0, c0 = time.perf_counter(), time.process_time()
            vp.update_points(key, pts)
            rw.WaitForCompletion()
            times.append((time.perf_counter() - t0) * 1e3)
            cpu.append((time.process_time() - c0) * 1e3)
            if isinstance(obj, Mesh):
                t1 = time.perf_counter()
                normal_solver(pts)
                normals.append((time.perf_counter() - t1) * 1e3)
            app.processEvents()
        t = np.array(times)
        rows.append((name, len(base), len(f) if isinstance(obj, Mesh) else 0, t.mean(), np.median(t),
                     np.percentile(t, 95), t.max(), float(np.mean(cpu)), float(np.mean(normals)) if normals else 0.0))
    size = rw.GetSize()
    gl = [ln.strip() for ln in rw.ReportCapabilities().splitlines() if "renderer string" in ln]
    vp.close()

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"Viewport.update_points + render, {args.frames} frames, window {size[0]}x{size[1]}, "
          f"{os.cpu_count()} CPUs, load average {load:.1f}, software GL: {vp.software_gl}")
    print(*gl, sep="\n")
    hdr = (f"{'case':<22}{'vertices':>9}{'faces':>8}{'mean ms':>9}{'median':>8}{'p95':>8}{'max':>8}"
           f"{'CPU ms':>8}{'normals ms':>11}")
    print(hdr)
    print("-" * len(hdr))
    for name, nv, nf, mean, med, p95, mx, c, nrm in rows:
        print(f"{name:<22}{nv:>9}{nf:>8}{mean:>9.1f}{med:>8.1f}{p95:>8.1f}{mx:>8.1f}{c:>8.1f}{nrm:>11.1f}")
    print("wall-clock columns: update_points + render + glFinish per frame; CPU ms: this process's")
    print("CPU time per frame, all threads (llvmpipe rasterises on several); target: under 33 ms a frame")


if __name__ == "__main__":
    main()
