"""Multi-view reconstruction engine: photos or an orbit video to cameras, points, a mesh
or voxels, on the CPU.

Stages (each one includes the ones before it, except voxels which needs only cameras):

* ``cameras``: structure from motion (pycolmap) -> sparse points + camera frusta;
* ``points``:  plane-sweep depth maps + TSDF fusion -> fused coloured point cloud;
* ``mesh``:    TSDF marching cubes or screened Poisson -> cleaned, decimated mesh with a
  texture atlas (or vertex colours);
* ``voxels``:  visual hull from silhouettes -> voxels and their marching-cubes mesh.

See the modules for the methods and papers: :mod:`.frames`, :mod:`.sfm`, :mod:`.dense`,
:mod:`.fusion`, :mod:`.hull`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from engines.api import CancelToken, Engine, EngineError, Result
from engines.types import ImageSet, Mesh, PointCloud, VideoClip


def _sub(progress, lo: float, hi: float):
    return lambda f, msg="": progress(lo + (hi - lo) * min(max(f, 0.0), 1.0), msg)


def _rotation_to(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation taking unit vector ``a`` to unit vector ``b``."""
    v, c = np.cross(a, b), float(a @ b)
    if np.linalg.norm(v) < 1e-9:
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1 + c)


def ground_normal(
    points: np.ndarray, up: np.ndarray, max_angle_deg: float = 30.0, min_share: float = 0.2, seed: int = 0
) -> np.ndarray | None:
    """The normal (on the side of ``up``) of a dominant plane of the points lying within
    ``max_angle_deg`` of ``up``: a floor or table the object stands on. RANSAC on three-point
    planes, inliers within 1 % of the points' extent; None when no such plane holds at least
    ``min_share`` of the points."""
    pts = np.asarray(points, np.float64)
    if len(pts) < 50:
        return None
    rng = np.random.default_rng(seed)
    lo, hi = np.percentile(pts, [2, 98], axis=0)
    tol = 0.01 * float(np.linalg.norm(hi - lo))
    sample = pts[rng.choice(len(pts), min(len(pts), 5000), replace=False)]
    best, best_n = 0, None
    cos_max = np.cos(np.radians(max_angle_deg))
    for _ in range(300):
        a, b, c = sample[rng.choice(len(sample), 3, replace=False)]
        n = np.cross(b - a, c - a)
        norm = np.linalg.norm(n)
        if norm < 1e-12:
            continue
        n /= norm
        if abs(float(n @ up)) < cos_max:
            continue
        count = int((np.abs((sample - a) @ n) < tol).sum())
        if count > best:
            best, best_n = count, (n if n @ up > 0 else -n, a)
    if best_n is None or best < min_share * len(sample):
        return None
    n, a = best_n
    inl = sample[np.abs((sample - a) @ n) < tol]  # refit: least squares on the inliers
    _, _, vt = np.linalg.svd(inl - inl.mean(0), full_matrices=False)
    n = vt[2] if vt[2] @ up > 0 else -vt[2]
    return n / np.linalg.norm(n)


def level_scene(model, up: str = "cameras", face_cameras: bool = False) -> str:
    """Move the SfM frame (arbitrary) so that the scene's up is +Y and the points are
    centred, which makes the viewport's front/top views meaningful.

    ``up``: ``cameras`` (the cameras' mean up: people hold cameras level), ``ground`` (the
    normal of the plane the object stands on, when one is found near the cameras' up; else
    the cameras'), or ``auto`` (same as ground). ``face_cameras`` also turns the scene about
    +Y so that +Z (the viewport's "front") points towards the cameras: their mean position
    when they stand on one side (photos of a facade), else the first camera's. Returns
    which up was used (``cameras`` or ``ground``).
    """
    cams = model.cameras
    cam_up = -cams.R[:, 1, :].mean(0)
    cam_up /= np.linalg.norm(cam_up) + 1e-12
    used = "cameras"
    upv = cam_up
    if up in ("ground", "auto") and len(model.points) >= 50:
        g = ground_normal(model.points, cam_up)
        if g is not None:
            upv, used = g, "ground"
    Q = _rotation_to(upv, np.array([0.0, 1.0, 0.0]))
    centre = np.median(model.points, 0) if len(model.points) >= 10 else cams.centers.mean(0)
    if face_cameras:
        rel = (cams.centers - centre) @ Q.T
        flat = rel[:, [0, 2]]
        mean = flat.mean(0)
        spread = np.linalg.norm(flat, axis=1).mean() + 1e-12
        towards = mean if np.linalg.norm(mean) > 0.3 * spread else flat[0]
        if np.linalg.norm(towards) > 1e-9:
            ang = np.arctan2(towards[0], towards[1])  # angle of the direction from +Z about +Y
            c, s = np.cos(-ang), np.sin(-ang)
            Q = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]) @ Q
    model.points = (model.points - centre) @ Q.T
    new_t = cams.t + np.einsum("nij,j->ni", cams.R, centre)
    cams.R = np.einsum("nij,kj->nik", cams.R, Q)
    cams.t = new_t
    return used


class MultiViewEngine(Engine):
    """Photos or an orbit video to cameras, a point cloud, a textured mesh or voxels."""

    name = "multiview"
    title = "Multi-view reconstruction"
    description = (
        "Structure from motion (COLMAP), plane-sweep stereo and TSDF fusion on the CPU: "
        "cameras, a coloured point cloud, a textured mesh, or a visual hull."
    )
    accepts = (ImageSet, VideoClip)
    produces = (Mesh, PointCloud)

    class Params(BaseModel):
        stages: Literal["cameras", "points", "mesh", "voxels"] = Field(
            "mesh", description="How far to go: cameras only, fused point cloud, mesh, or visual-hull voxels"
        )
        matching: Literal["auto", "exhaustive", "sequential"] = Field(
            "auto", description="Feature matching: every pair (photos), neighbours in order (video), or auto"
        )
        shared_intrinsics: bool = Field(True, description="All photos come from one camera and zoom setting")
        focal_px: float = Field(
            0.0,
            ge=0,
            le=100000,
            description="Known focal length in original-photo pixels (held fixed); 0 = estimate it",
        )
        cx: float = Field(
            0.0,
            ge=0,
            le=100000,
            description="Known principal point x (original pixels, OpenCV convention); 0 = image centre",
        )
        cy: float = Field(
            0.0,
            ge=0,
            le=100000,
            description="Known principal point y (original pixels, OpenCV convention); 0 = image centre",
        )
        max_image_size: int = Field(1000, ge=200, le=4000, description="Photos are scaled to this long side (px)")
        max_features: int = Field(4096, ge=256, le=16384, description="SIFT features per image")
        max_video_frames: int = Field(60, ge=20, le=80, description="Most frames picked from a video")
        dense_image_size: int = Field(400, ge=128, le=2000, description="Long side of the depth maps (px)")
        depth_planes: int = Field(64, ge=16, le=256, description="Depth hypotheses per view in plane sweep")
        voxel_size: float = Field(0.0, ge=0, description="TSDF voxel size in scene units; 0 = scene size / 200")
        surface: Literal["tsdf", "poisson"] = Field("tsdf", description="TSDF marching cubes or screened Poisson")
        target_triangles: int = Field(
            50000, ge=0, le=5000000, description="Decimate to this many triangles (0 = keep all)"
        )
        texture: bool = Field(True, description="Bake a texture atlas from the photos (else vertex colours)")
        texture_size: int = Field(2048, ge=256, le=8192, description="Texture atlas size (px)")
        silhouette: Literal["background", "person"] = Field(
            "background", description="Voxels: masks by difference to a plain background, or person segmentation"
        )
        hull_resolution: int = Field(128, ge=16, le=512, description="Voxels along the longest side of the hull")
        up: Literal["auto", "cameras", "ground"] = Field(
            "auto",
            description="Which way is up: the cameras' mean up, the ground plane the object stands on, "
            "or auto (the ground plane when one is found near the cameras' up)",
        )
        keep_fragments: bool = Field(
            False,
            description="Keep surface pieces and points floating apart from the main object "
            "(by default those farther than fragment_distance from it are removed)",
        )
        fragment_distance: float = Field(
            0.1,
            ge=0.0,
            le=10.0,
            description="Pieces farther than this fraction of the main object's size from it are fragments",
        )

    def run(self, inputs, params, progress, cancel: CancelToken) -> Result:
        from engines.multiview import frames, sfm

        result = Result()
        p = params
        with result.stage("frames"):
            progress(0.0, "Reading images")
            views, notes = self._views(inputs, p, cancel)
            result.notes += notes
        n_in = len(views)
        views, notes = frames.drop_duplicates(views)
        result.notes += notes
        if len(views) < frames.MIN_VIEWS:
            raise EngineError(
                f"Multi-view reconstruction needs at least {frames.MIN_VIEWS} different images of the scene; "
                f"got {n_in}"
                + (f" ({len(views)} after removing duplicates)" if len(views) != n_in else "")
                + ". Add photos taken from different viewpoints around the object."
            )
        cancel.raise_if_set()

        fixed = frames.fixed_intrinsics(views, p.focal_px, p.cx, p.cy)
        if fixed is not None:
            w, h = views[0].size
            result.notes.append(
                f"Intrinsics held fixed: f={fixed[0]:.1f}, cx={fixed[1] - 0.5:.1f}, cy={fixed[2] - 0.5:.1f} px "
                f"at the working size {w}x{h}."
            )
        matching = p.matching
        if matching == "auto":
            matching = "sequential" if isinstance(inputs[0], VideoClip) or len(views) > 60 else "exhaustive"
        with tempfile.TemporaryDirectory(prefix="multiview-") as tmp, result.stage("sfm"):
            model = sfm.run_sfm(
                views,
                Path(tmp),
                matching,
                p.shared_intrinsics,
                fixed,
                p.max_features,
                progress=_sub(progress, 0.02, 0.35),
                cancel=cancel,
            )
        result.notes += model.notes
        if model.registered < frames.MIN_VIEWS:
            raise EngineError(
                f"Only {model.registered} of {model.total_images} images could be placed. "
                + (model.notes[-1] if model.notes else "")
            )
        used_up = level_scene(model, p.up, face_cameras=True)
        result.notes.append(
            "Up is the normal of the ground plane the object stands on."
            if used_up == "ground"
            else "Up is the cameras' mean up direction."
        )
        cams = model.cameras
        scale = model.scene_scale()
        result.metrics.update(
            registered=model.registered,
            total_images=model.total_images,
            mean_reprojection_error=round(model.mean_reprojection_error, 4),
            sparse_points=int(len(model.points)),
            matching=matching,
            unregistered=list(model.unregistered),
            focal_px=round(float(np.mean(cams.K[:, 0, 0])), 2),
            scene_size=round(scale, 4),
            camera_centers={n: [round(float(x), 6) for x in c] for n, c in zip(cams.names, cams.centers)},
        )
        frusta = sfm.frusta_mesh(cams, self._frustum_size(cams.centers, scale))
        sparse = sfm.sparse_cloud(model)
        cancel.raise_if_set()
        if p.stages == "cameras":
            result.items = [sparse, frusta]
            progress(1.0, "Cameras done")
            return result
        images = {v.name: v.rgb for v in views}
        if p.stages == "voxels":
            return self._voxels(result, model, images, frusta, p, progress, cancel)
        return self._dense(result, model, images, frusta, sparse, p, progress, cancel)

    @staticmethod
    def _frustum_size(centers: np.ndarray, scale: float) -> float:
        """Depth of each drawn frustum: 0.6 of the median gap between neighbouring
        cameras (so the frusta of an orbit do not overlap), kept between 5 % and 8 % of
        the scene's robust extent so they stay visible next to the points even when the
        photos were taken from nearly one spot (the Sagrada Familia set: 1 % before)."""
        size = 0.06 * scale
        if len(centers) >= 2:
            d = np.linalg.norm(centers[:, None] - centers[None], axis=2)
            np.fill_diagonal(d, np.inf)
            size = 0.6 * float(np.median(d.min(1)))
        return float(np.clip(size, 0.05 * scale, 0.08 * scale))

    # -- stages ----------------------------------------------------------------------
    @staticmethod
    def _views(inputs, p, cancel):
        from engines.multiview import frames

        src = inputs[0]
        if isinstance(src, VideoClip):
            return frames.pick_video_frames(src, p.max_image_size, max_frames=p.max_video_frames, cancel=cancel)
        paths = [Path(x) for i in inputs for x in i.paths]
        if len(paths) < frames.MIN_VIEWS:
            raise EngineError(
                f"Multi-view reconstruction needs at least {frames.MIN_VIEWS} photos of the scene; "
                f"got {len(paths)}. Add photos taken from different viewpoints around the object."
            )
        names = [x.name for x in paths]
        if len(set(names)) != len(names):
            raise EngineError("Two photos have the same file name; rename them or import one folder at a time.")
        return frames.load_photos(paths, p.max_image_size, cancel)

    def _dense(self, result, model, images, frusta, sparse, p, progress, cancel):
        from engines.multiview import dense, fusion, texture

        cams = model.cameras
        scale = model.scene_scale()
        with result.stage("depth"):
            maps = dense.compute_depth_maps(
                images,
                cams,
                model.points,
                p.dense_image_size,
                p.depth_planes,
                progress=_sub(progress, 0.35, 0.7),
                cancel=cancel,
            )
        valid = float(np.mean([np.isfinite(m.depth).mean() for m in maps]))
        result.metrics["depth_valid_fraction"] = round(valid, 4)
        cancel.raise_if_set()
        voxel = p.voxel_size if p.voxel_size > 0 else scale / 200.0
        with result.stage("fusion"):
            progress(0.72, "Fusing depth maps (TSDF)")
            far = max(float(np.nanmax(m.depth)) if np.isfinite(m.depth).any() else 0.0 for m in maps)
            if far <= 0:
                raise EngineError(
                    "No depth could be measured in any photo: the surfaces may lack texture, "
                    "or the photos are too far apart. Take more photos with more overlap."
                )
            frames = [(m.depth, m.rgb, m.K, np.vstack([np.hstack([m.R, m.t[:, None]]), [0, 0, 0, 1]])) for m in maps]
            vol = fusion.tsdf_fuse(frames, voxel, max_depth=far * 1.01, cancel=cancel)
            target = p.target_triangles if p.stages == "mesh" else 0
            stats: dict = {}
            mesh, points = fusion.surface_from_volume(
                vol,
                p.surface if p.stages == "mesh" else "tsdf",
                target,
                keep_fragments=p.keep_fragments,
                fragment_distance=p.fragment_distance,
                stats=stats,
            )
        result.metrics.update(
            voxel_size=round(voxel, 6),
            dense_points=int(len(points.points)),
            fragments_removed=stats.get("fragments", 0),
            fragment_points_removed=stats.get("fragment_points", 0),
        )
        if stats.get("fragments") or stats.get("fragment_points"):
            result.notes.append(
                f"Removed {stats.get('fragments', 0)} surface piece(s) and "
                f"{stats.get('fragment_points', 0)} point(s) floating apart from the main object "
                "(keep_fragments keeps them)."
            )
        cancel.raise_if_set()
        if p.stages == "points":
            result.items = [points, frusta, sparse]
            progress(1.0, "Point cloud done")
            return result
        if p.texture:
            with result.stage("texture"):
                progress(0.88, "Baking the texture atlas")
                photos = self._undistorted(images, cams)
                mesh = texture.bake_texture(mesh, photos, p.texture_size, cancel=cancel)
        result.metrics["triangles"] = int(len(mesh.faces))
        result.items = [mesh, points, frusta]
        result.by_extension[".ply"] = points  # the issue: .ply gives the fused point cloud
        progress(1.0, "Mesh done")
        return result

    @staticmethod
    def _undistorted(images, cams):
        import cv2

        out = []
        for i, name in enumerate(cams.names):
            rgb = images[name]
            if cams.k1 is not None and abs(cams.k1[i]) > 1e-6:
                rgb = cv2.undistort(rgb, cams.K[i], np.array([cams.k1[i], 0, 0, 0], np.float64))
            out.append((rgb, cams.K[i], cams.R[i], cams.t[i]))
        return out

    def _voxels(self, result, model, images, frusta, p, progress, cancel):
        from engines.multiview import hull

        cams = model.cameras
        with result.stage("hull"):
            progress(0.4, "Finding silhouettes")
            photos = self._undistorted(images, cams)
            masks = hull.silhouettes([ph[0] for ph in photos], p.silhouette)
            cancel.raise_if_set()
            pts = model.points if len(model.points) >= 10 else cams.centers
            lo, hi = np.percentile(pts, [1, 99], axis=0)
            pad = 0.2 * (hi - lo)
            progress(0.6, "Carving voxels")
            occ, origin, vox = hull.carve(
                masks, cams.K, cams.R, cams.t, lo - pad, hi + pad, p.hull_resolution, cancel=cancel
            )
            mesh = hull.hull_mesh(occ, origin, vox)
            voxels = hull.voxel_points(occ, origin, vox)
        result.metrics.update(voxels=int(occ.sum()), voxel_size=round(vox, 6), triangles=int(len(mesh.faces)))
        result.items = [mesh, voxels, frusta]
        progress(1.0, "Voxels done")
        return result
