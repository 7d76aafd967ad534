"""Gaussian splatting engine: photos or an orbit video to a trained 3D Gaussian splat.

Stages: the multiview engine's input handling (photos resized, or sharp well-spread frames
picked from a video: :mod:`engines.multiview.frames`) and its structure from motion
(pycolmap, :mod:`engines.multiview.sfm`), the scene levelled so +Y is up; the Gaussians
start at the sparse SfM points (or the multiview engine's fused dense cloud); the photos
are undistorted to pinhole images at a working resolution chosen from the time budget;
then training (:mod:`.train`, Kerbl et al. 2023). The dense start costs about 40 s of CPU
for 35 photos and gave 2 dB more held-out PSNR than the sparse one at the same total time
(benchmarks/splat.py's bunny scene: 33.0 against 31.8 dB, SfM excluded). With ``hold_out_every = 8`` every 8th
photo is registered but not trained on, and PSNR/SSIM on those photos are reported (the
3DGS / Mip-NeRF 360 evaluation protocol).

Progress carries a sentence every half second; a progress callable with a ``preview``
attribute (``progress.preview(rgb_uint8, message)``) also gets a render every few seconds.
Cancel is checked between training steps (each well under a second at the working sizes
chosen here) and nothing is returned on cancel.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from engines.api import CancelToken, Engine, EngineError, Result
from engines.types import Camera, ImageSet, Mesh, PointCloud, Splat, VideoClip

MIN_TRAIN_S = 20.0


def _sub(progress, lo: float, hi: float):
    def f(fraction, msg=""):
        progress(lo + (hi - lo) * min(max(fraction, 0.0), 1.0), msg)

    if hasattr(progress, "preview"):
        f.preview = progress.preview
    return f


def auto_resolution(time_budget_s: float, steps: int) -> int:
    """Working long side (px) for a training run: 256 px for a five-minute budget, pixels
    growing with the budget (a step costs about as much as its pixels), 128..512 px."""
    budget = time_budget_s if time_budget_s > 0 else steps * 0.1
    side = 256.0 * np.sqrt(max(budget, 1.0) / 300.0)
    return int(np.clip(round(side / 16) * 16, 128, 512))


def held_out_names(names: list[str], every: int) -> set[str]:
    """Every ``every``-th photo in name order (index 0, 8, 16... as the 3DGS/Mip-NeRF 360
    protocol does: ``idx % 8 == 0``)."""
    if every <= 0:
        return set()
    order = sorted(names)
    return {n for i, n in enumerate(order) if i % every == 0}


@dataclass
class PreparedScene:
    """Registered photos and their cameras, ready to train on (see :func:`prepare_scene`)."""

    views: list  # engines.multiview.frames.View, at the SfM working size
    model: object  # engines.multiview.sfm.SparseModel, levelled
    images: dict[str, np.ndarray]  # undistorted RGB at the SfM working size, by name
    held_out: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)


class SplatEngine(Engine):
    """Photos or an orbit video to a 3D Gaussian splat trained on the CPU."""

    name = "splat"
    title = "Gaussian splat (radiance field)"
    description = (
        "3D Gaussian splatting (Kerbl et al. 2023) trained on the CPU from photos or an orbit "
        "video: COLMAP cameras, then Gaussians optimised to reproduce the photos. Exports the "
        "standard 3DGS .ply (SuperSplat and other splat viewers) with cameras.json, a turntable "
        ".mp4, or a .zip with renders from every photo's camera."
    )
    accepts = (ImageSet, VideoClip)
    produces = (Splat, PointCloud, Mesh)
    writers = {
        ".ply": [("Splat", "engines.splat.ply:write_splat_ply")],  # + cameras.json beside it
        ".json": [("Splat", "engines.splat.ply:write_cameras_json")],
        ".mp4": [("Splat", "engines.splat.render:write_turntable_mp4")],
        ".zip": [("Splat", "engines.splat.render:write_splat_bundle")],  # ply, cameras.json, renders/
    }
    readers = {".ply": "engines.splat.ply:read_ply_any"}  # a 3DGS splat, else the mesh / points reader
    renderers = {"Splat": "app.splat_view:draw_splat"}  # imported only by the app

    class Params(BaseModel):
        time_budget_s: float = Field(
            300.0,
            ge=0,
            le=86400,
            description="Seconds for the whole run (cameras "
            "included); training stops when they are spent. 0 = no limit (steps only)",
        )
        steps: int = Field(5000, ge=1, le=100000, description="Most training steps (one photo each)")
        resolution: int = Field(
            0,
            ge=0,
            le=2048,
            description="Long side of the training images (px); 0 = chosen from the time budget (256 px for 5 minutes)",
        )
        sh_degree: int = Field(
            3,
            ge=0,
            le=3,
            description="Spherical-harmonic degree of the colours "
            "(0 = one colour per Gaussian; 3 = view-dependent shine)",
        )
        init: Literal["sparse", "dense"] = Field(
            "dense",
            description="Start from the multiview engine's fused "
            "dense cloud (plane sweep + TSDF on the training photos; falls "
            "back to the SfM points), or from the SfM points alone (faster start)",
        )
        hold_out_every: int = Field(
            0,
            ge=0,
            le=100,
            description="Keep every N-th photo out of training and "
            "report PSNR/SSIM on it (8 is the usual protocol); 0 = train on all",
        )
        max_gaussians: int = Field(300000, ge=1000, le=5000000, description="Most Gaussians densification may make")
        densify_grad_threshold: float = Field(
            0.0005,
            gt=0,
            le=0.1,
            description="View-space gradient above which "
            "a Gaussian is cloned or split (the paper's 0.0002 suits 30k-step runs; "
            "short CPU runs do better with fewer, better-trained Gaussians)",
        )
        background: Literal["black", "white"] = Field("black", description="Colour behind the Gaussians")
        matching: Literal["auto", "exhaustive", "sequential"] = Field(
            "auto", description="Feature matching: every pair (photos), neighbours in order (video), or auto"
        )
        max_image_size: int = Field(
            1000, ge=200, le=4000, description="Photos are scaled to this long side for SfM (px)"
        )
        max_video_frames: int = Field(60, ge=20, le=80, description="Most frames picked from a video")
        focal_px: float = Field(
            0.0,
            ge=0,
            le=100000,
            description="Known focal length in original-photo pixels (held fixed); 0 = estimate it",
        )
        seed: int = Field(0, ge=0, description="Random seed (view order, splits)")

    def run(self, inputs, params, progress, cancel: CancelToken) -> Result:
        t_start = time.perf_counter()
        result = Result()
        p = params
        with result.stage("cameras"):
            scene = prepare_scene(inputs, p, _sub(progress, 0.0, 0.3), cancel)
        result.notes += scene.notes
        result.metrics.update(scene.metrics)
        cancel.raise_if_set()
        init_cloud = scene_points(scene, p, _sub(progress, 0.3, 0.4), cancel, result)
        cancel.raise_if_set()
        elapsed = time.perf_counter() - t_start
        budget = 0.0
        if p.time_budget_s > 0:
            budget = max(p.time_budget_s - elapsed, MIN_TRAIN_S)
            if p.time_budget_s - elapsed < MIN_TRAIN_S:
                result.notes.append(
                    f"Finding the cameras and starting points took {elapsed:.0f} s of the "
                    f"{p.time_budget_s:.0f} s budget; training still got {MIN_TRAIN_S:.0f} s."
                )
        res = p.resolution or auto_resolution(p.time_budget_s, p.steps)
        with result.stage("train"):
            splat, report, tviews = train_scene(scene, init_cloud, p, res, budget, _sub(progress, 0.4, 0.97), cancel)
        result.metrics.update(
            gaussians=len(splat),
            initial_gaussians=report.gaussians_start,
            steps=report.steps,
            stopped_by=report.stopped_by,
            train_seconds=round(report.seconds, 2),
            initial_psnr=round(report.initial_psnr, 3),
            seconds_per_step=round(report.seconds_per_step, 4),
            train_psnr=round(report.train_psnr, 3),
            resolution=[tviews[0].view.width, tviews[0].view.height],
            sh_degree=splat.sh_degree,
            densify_rounds=report.densify_rounds,
            cloned=report.cloned,
            split=report.split,
            pruned=report.pruned,
            train_images=len(tviews),
            held_out_images=len(scene.held_out),
        )
        if scene.held_out:
            progress(0.97, "Rendering the held-out photos")
            ev = evaluate_held_out(splat, scene, res, p, cancel)
            result.metrics.update(
                heldout_psnr=round(ev["psnr"], 3), heldout_ssim=round(ev["ssim"], 4), heldout_per_image=ev["per_image"]
            )
        cancel.raise_if_set()
        from engines.multiview import sfm

        frusta = sfm.frusta_mesh(scene.model.cameras, 0.06 * scene.model.scene_scale())
        init_cloud.name = "initial points"
        result.items = [splat, init_cloud, frusta]
        result.notes.append(
            f"Trained {len(splat):,} Gaussians in {report.steps} steps ({report.seconds:.0f} s, "
            f"{report.seconds_per_step * 1000:.0f} ms a step) at {tviews[0].view.width}x{tviews[0].view.height}; "
            f"training PSNR {report.train_psnr:.1f} dB"
            + (f", held-out PSNR {result.metrics['heldout_psnr']:.1f} dB." if scene.held_out else ".")
        )
        progress(1.0, "Splat done")
        return result


# ----------------------------------------------------------------------------- stages
def prepare_scene(inputs, p, progress, cancel: CancelToken) -> PreparedScene:
    """Photos or video frames -> registered, levelled cameras and undistorted images."""
    from engines.multiview import frames, sfm
    from engines.multiview.engine import MultiViewEngine, level_scene

    notes: list[str] = []
    progress(0.0, "Reading images")
    views, n = MultiViewEngine._views(inputs, p, cancel)
    notes += n
    n_in = len(views)
    views, n = frames.drop_duplicates(views)
    notes += n
    if len(views) < frames.MIN_VIEWS:
        raise EngineError(
            f"Gaussian splatting needs at least {frames.MIN_VIEWS} different photos of the scene; got {n_in}. "
            "Add photos taken from different viewpoints around the object."
        )
    cancel.raise_if_set()
    fixed = frames.fixed_intrinsics(views, p.focal_px)
    matching = p.matching
    if matching == "auto":
        matching = "sequential" if isinstance(inputs[0], VideoClip) or len(views) > 60 else "exhaustive"
    with tempfile.TemporaryDirectory(prefix="splat-") as tmp:
        model = sfm.run_sfm(views, Path(tmp), matching, True, fixed, 4096, progress=progress, cancel=cancel)
    notes += model.notes
    if model.registered < frames.MIN_VIEWS:
        raise EngineError(
            f"Only {model.registered} of {model.total_images} photos could be placed. "
            + (model.notes[-1] if model.notes else "Take more photos with more overlap.")
        )
    level_scene(model)
    cams = model.cameras
    by_name = {v.name: v for v in views}
    images = {}
    for (rgb, _K, _R, _t), name in zip(MultiViewEngine._undistorted({v.name: v.rgb for v in views}, cams), cams.names):
        images[name] = rgb
    held = held_out_names(list(cams.names), p.hold_out_every)
    if held and len(cams.names) - len(held) < frames.MIN_VIEWS:
        raise EngineError(
            f"Holding out every {p.hold_out_every}th photo leaves too few to train on; "
            "set hold_out_every=0 or add photos."
        )
    metrics = dict(
        registered=model.registered,
        total_images=model.total_images,
        mean_reprojection_error=round(model.mean_reprojection_error, 4),
        sparse_points=int(len(model.points)),
        matching=matching,
        unregistered=list(model.unregistered),
        focal_px=round(float(np.mean(cams.K[:, 0, 0])), 2),
    )
    scene = PreparedScene([by_name[n] for n in cams.names], model, images, held, notes, metrics)
    return scene


def scene_points(scene: PreparedScene, p, progress, cancel, result: Result) -> PointCloud:
    """The cloud the Gaussians start from: SfM points, or the fused dense cloud."""
    from engines.multiview import sfm

    model = scene.model
    if p.init == "dense":
        from engines.multiview import dense, fusion

        progress(0.0, "Dense depth maps for the starting points")
        with result.stage("dense"):
            # training photos only: a held-out photo must not shape the start either
            names = [n for n in model.cameras.names if n not in scene.held_out]
            raw = {v.name: v.rgb for v in scene.views if v.name in names}  # undistorted in there
            maps = dense.compute_depth_maps(
                raw, subset_cameras(model.cameras, names), model.points, 400, 64, progress=progress, cancel=cancel
            )
            cancel.raise_if_set()
            far = max((float(np.nanmax(m.depth)) for m in maps if np.isfinite(m.depth).any()), default=0.0)
            if far > 0:
                fr = [(m.depth, m.rgb, m.K, np.vstack([np.hstack([m.R, m.t[:, None]]), [0, 0, 0, 1]])) for m in maps]
                vol = fusion.tsdf_fuse(fr, model.scene_scale() / 200.0, max_depth=far * 1.01, cancel=cancel)
                _, cloud = fusion.surface_from_volume(vol, "tsdf", 0)
                if len(cloud.points) >= 100:
                    result.metrics["dense_points"] = int(len(cloud.points))
                    return cloud
        result.notes.append("The dense cloud came out empty; the Gaussians start from the SfM points.")
    cloud = sfm.sparse_cloud(model)
    if len(cloud.points) < 10:
        raise EngineError(
            "Structure from motion found too few 3D points to start from; take photos with more texture and overlap."
        )
    return cloud


def subset_cameras(cams, names):
    """The :class:`engines.multiview.sfm.Cameras` of ``names``, in that order."""
    from engines.multiview.sfm import Cameras

    idx = [cams.names.index(n) for n in names]
    return Cameras(
        [cams.names[i] for i in idx],
        cams.K[idx],
        cams.R[idx],
        cams.t[idx],
        [cams.sizes[i] for i in idx],
        None if cams.k1 is None else cams.k1[idx],
    )


def training_views(scene: PreparedScene, long_side: int, names=None):
    """TrainViews (undistorted photos at ``long_side``) for ``names`` (default: not held out)."""
    import cv2

    from engines.splat.project import View
    from engines.splat.train import TrainView

    cams = scene.model.cameras
    out = []
    for i, name in enumerate(cams.names):
        if names is None and name in scene.held_out or names is not None and name not in names:
            continue
        rgb = scene.images[name]
        h, w = rgb.shape[:2]
        s = min(1.0, long_side / max(w, h))
        W, H = max(1, round(w * s)), max(1, round(h * s))
        small = cv2.resize(rgb, (W, H), interpolation=cv2.INTER_AREA) if (W, H) != (w, h) else rgb
        view = View(cams.K[i], cams.R[i], cams.t[i], w, h, name).scaled(W, H)
        out.append(TrainView(view, small.astype(np.float32) / 255.0, name))
    return out


def _background(p) -> tuple[float, float, float]:
    return (1.0, 1.0, 1.0) if p.background == "white" else (0.0, 0.0, 0.0)


def train_scene(
    scene: PreparedScene, cloud: PointCloud, p, long_side: int, budget_s: float, progress, cancel: CancelToken
):
    """Initialise from ``cloud`` and train; returns (Splat with cameras, TrainReport, views)."""
    from engines.splat import raster
    from engines.splat.model import Gaussians
    from engines.splat.train import TrainConfig, train

    tviews = training_views(scene, long_side)
    raster.set_threads()
    pts, cols = cloud.points, cloud.colors
    # More starting Gaussians than twice a photo's pixels only slow the steps down (a dense
    # cloud from 400 px depth maps can have 50k points for 96 x 72 training images)
    most = min(p.max_gaussians, 2 * tviews[0].view.width * tviews[0].view.height)
    if len(pts) > most:
        keep = np.sort(np.random.default_rng(p.seed).choice(len(pts), most, replace=False))
        pts, cols = pts[keep], None if cols is None else cols[keep]
    g = Gaussians.from_points(pts, cols, max_sh_degree=p.sh_degree)
    progress(
        0.0, f"Training {len(g):,} Gaussians on {len(tviews)} photos at {tviews[0].view.width}x{tviews[0].view.height}"
    )
    cfg = TrainConfig(
        steps=p.steps,
        time_budget_s=budget_s,
        sh_degree=p.sh_degree,
        max_gaussians=p.max_gaussians,
        grad_threshold=p.densify_grad_threshold,
        background=_background(p),
        seed=p.seed,
    )
    preview = getattr(progress, "preview", None)
    report = train(g, tviews, cfg, progress, cancel, preview)
    splat = g.to_splat(splat_cameras(scene), name="splat", degree=p.sh_degree)
    return splat, report, tviews


def splat_cameras(scene: PreparedScene) -> list[Camera]:
    """Every registered photo's camera, at the photo's original size, for Splat.cameras."""
    cams = scene.model.cameras
    out = []
    for i, name in enumerate(cams.names):
        v = scene.views[i]
        w, h = v.size
        W, H = v.original_size
        s = W / w
        K = np.asarray(cams.K[i], np.float64).copy()
        K[0, 0] *= s
        K[1, 1] *= s
        K[0, 2] = (K[0, 2] + 0.5) * s - 0.5
        K[1, 2] = (K[1, 2] + 0.5) * s - 0.5
        out.append(Camera(K, cams.R[i], cams.t[i], int(W), int(H), name=name, held_out=name in scene.held_out))
    return out


def evaluate_held_out(splat: Splat, scene: PreparedScene, long_side: int, p, cancel=None) -> dict:
    """PSNR / SSIM of renders against the held-out photos (undistorted, working size)."""
    from engines.splat.metrics import psnr, ssim_np
    from engines.splat.render import render_splat

    tv = training_views(scene, long_side, names=scene.held_out)
    renders = render_splat(splat, [t.view for t in tv], background=_background(p), cancel=cancel)
    per = {}
    for t, r in zip(tv, renders):
        per[t.name] = dict(psnr=round(psnr(r, t.image), 3), ssim=round(ssim_np(r, t.image), 4))
    return dict(
        psnr=float(np.mean([v["psnr"] for v in per.values()])),
        ssim=float(np.mean([v["ssim"] for v in per.values()])),
        per_image=per,
        renders=renders,
        targets=[t.image for t in tv],
    )
