"""Benchmark: multi-view reconstruction (engines/multiview) per scene.

Scenes
* ``bunny``: the Stanford bunny with a procedural texture, rendered off-screen by pyvista
  from N known cameras (default 30 views at 800 x 600), photos -> textured mesh;
* ``sagrada``: the four real Sagrada Familia photos (718 x 480) in tests/data/multiview.

Per scene: registered images, camera-centre error after similarity alignment (% of the
scene size), mean reprojection error, Chamfer distance and F-score at 1 % of the scene
size against the ground-truth mesh (all of it, and the part seen by at least two cameras:
the bunny's underside is in no photo), and seconds per stage, plus the process CPU seconds
(wall time on a shared machine suffers from other load). Targets (issue 7): under
2 minutes from 30 photos at 800 px to a textured mesh on 2 cores; F-score >= 0.9.

Run under a display (pyvista renders): ``xvfb-run -a .venv/bin/python benchmarks/multiview.py
[--views 30] [--size 800] [--scenes bunny,sagrada] [--shots /tmp/shots]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run_engine(paths, **params):
    from engines.api import CancelToken, make_params
    from engines.multiview.engine import MultiViewEngine
    from engines.types import ImageSet

    p = make_params(MultiViewEngine, params)
    t0, c0 = time.perf_counter(), time.process_time()
    r = MultiViewEngine().run([ImageSet(list(paths))], p, lambda f, m="": None, CancelToken())
    r.metrics["cpu_seconds"] = time.process_time() - c0  # all threads; wall time suffers on a shared machine
    return r, time.perf_counter() - t0


def bunny(views: int, size: int, workdir: Path, shots: Path | None):
    from engines.multiview import evaluate as ev
    from tests.test_multiview_scenes import load_mesh, orbit_cameras, render_views, write_scene

    w, h = size, size * 3 // 4
    v, f = load_mesh()
    K, R, t = orbit_cameras(views, (w, h), 1.3)
    scene = dict(images=render_views(v, f, K, R, t, (w, h)))
    paths = write_scene(scene, workdir / "bunny")
    r, total = run_engine(paths, max_image_size=size, texture_size=2048, target_triangles=50000)
    size_gt = float(np.linalg.norm(np.ptp(v, axis=0)))
    cc = r.metrics["camera_centers"]
    gt_c = -np.einsum("nji,nj->ni", R, t)[[int(n.split("_")[1][:3]) for n in cc]]
    err, sim = ev.camera_error(np.array(list(cc.values())), gt_c)
    m = r.items[0]
    pred = ev.sample_surface(ev.apply_similarity(m.vertices, *sim), m.faces, 50000)
    gt_pts = ev.sample_surface(v, f, 50000)
    q = ev.chamfer_fscore(pred, gt_pts, 0.01 * size_gt)
    # F-score against the surface the cameras can see (the underside is in no photo)
    seen = ev.visible_from_cameras(gt_pts, v, f, K, R, t, (w, h), min_views=2)
    qv = ev.chamfer_fscore(pred, gt_pts[seen], 0.01 * size_gt)
    if shots:
        screenshots(r, shots, "bunny")
    return dict(
        scene=f"bunny {views}x{w}px",
        registered=f"{r.metrics['registered']}/{r.metrics['total_images']}",
        cam_err=f"{100 * err.max() / size_gt:.2f}% max, {100 * err.mean() / size_gt:.2f}% mean",
        reproj=r.metrics["mean_reprojection_error"],
        chamfer=f"{100 * q['chamfer'] / size_gt:.2f}%",
        fscore=f"{q['fscore']:.3f} / {qv['fscore']:.3f}",
        total=total,
        cpu=r.metrics["cpu_seconds"],
        timings=r.timings,
        tris=len(m.faces),
    )


def sagrada(workdir: Path, shots: Path | None):
    paths = sorted((ROOT / "tests" / "data" / "multiview").glob("resized_IMG_*.jpg"))
    r, total = run_engine(paths, max_image_size=800, texture_size=2048, target_triangles=50000)
    if shots:
        screenshots(r, shots, "sagrada")
    return dict(
        scene="sagrada 4x718px",
        registered=f"{r.metrics['registered']}/{r.metrics['total_images']}",
        cam_err="n/a (no ground truth)",
        reproj=r.metrics["mean_reprojection_error"],
        chamfer="n/a",
        fscore="n/a",
        total=total,
        cpu=r.metrics["cpu_seconds"],
        timings=r.timings,
        tris=len(r.items[0].faces),
    )


def screenshots(result, folder: Path, tag: str) -> None:
    """Cameras + points, and the textured mesh, rendered off-screen by pyvista."""
    import pyvista as pv

    from engines.types import Mesh, PointCloud

    folder.mkdir(parents=True, exist_ok=True)
    mesh = result.items[0]
    points = next(i for i in result.items[1:] if isinstance(i, PointCloud))
    frusta = next(i for i in result.items[1:] if isinstance(i, Mesh) and i.name == "cameras")

    def pv_mesh(m):
        return pv.PolyData(m.vertices, np.hstack([np.full((len(m.faces), 1), 3), m.faces]).astype(np.int64))

    def look(pl, fit_all: bool):
        c = frusta.vertices[::5]
        centre = np.median(points.points, axis=0)
        up = np.array([0.0, 1.0, 0.0])
        d = c[0] - centre  # from behind the first camera, a little higher
        pl.camera.focal_point = centre
        pl.camera.position = centre + 1.2 * d + 0.4 * np.linalg.norm(d) * up
        pl.camera.up = up
        if fit_all:  # robust bounds: stray far points would shrink everything
            b = np.vstack([np.percentile(points.points, [2, 98], axis=0), c.min(0)[None], c.max(0)[None]])
            lo, hi = b.min(0), b.max(0)
            pl.reset_camera(bounds=[lo[0], hi[0], lo[1], hi[1], lo[2], hi[2]])
        pl.reset_camera_clipping_range()

    pl = pv.Plotter(off_screen=True, window_size=(1000, 750))
    pl.background_color = "white"
    pc = pv.PolyData(points.points)
    pc["rgb"] = points.colors
    pl.add_mesh(pc, scalars="rgb", rgb=True, point_size=2, render_points_as_spheres=False)
    fm = pv_mesh(frusta)
    fm["rgb"] = frusta.vertex_colors
    pl.add_mesh(fm, scalars="rgb", rgb=True, style="wireframe", line_width=1.5)
    look(pl, True)
    pl.screenshot(str(folder / f"multiview_{tag}_cameras_points.png"))
    pl.close()

    pl = pv.Plotter(off_screen=True, window_size=(1000, 750))
    pl.background_color = "white"
    pm = pv_mesh(mesh)
    if mesh.texture is not None and mesh.uv is not None:
        pm.active_texture_coordinates = mesh.uv
        pl.add_mesh(pm, texture=pv.Texture(mesh.texture), lighting=False)
    else:
        pm["rgb"] = mesh.vertex_colors
        pl.add_mesh(pm, scalars="rgb", rgb=True)
    look(pl, False)
    pl.screenshot(str(folder / f"multiview_{tag}_textured_mesh.png"))
    pl.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--views", type=int, default=30)
    ap.add_argument("--size", type=int, default=800)
    ap.add_argument("--scenes", default="bunny,sagrada")
    ap.add_argument("--shots", type=Path, default=None, help="folder for screenshots")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for s in args.scenes.split(","):
            rows.append(
                bunny(args.views, args.size, Path(tmp), args.shots) if s == "bunny" else sagrada(Path(tmp), args.shots)
            )
    stages = ["frames", "sfm", "depth", "fusion", "texture"]
    head = (
        f"{'scene':18s} {'reg':>6s} {'camera error':>22s} {'reproj px':>9s} {'chamfer':>8s} {'F@1% all/seen':>13s} {'tris':>6s} "  # noqa: E501
        + " ".join(f"{s:>7s}" for s in stages)
        + f" {'total s':>8s} {'cpu s':>6s}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['scene']:18s} {r['registered']:>6s} {r['cam_err']:>22s} {r['reproj']:>9.3f} {r['chamfer']:>8s} "
            f"{str(r['fscore']):>13s} {r['tris']:>6d} "
            + " ".join(f"{r['timings'].get(s, 0.0):7.1f}" for s in stages)
            + f" {r['total']:8.1f} {r['cpu']:6.1f}"
        )


if __name__ == "__main__":
    main()
