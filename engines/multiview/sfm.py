"""Cameras from photos: incremental structure from motion with pycolmap on the CPU.

COLMAP's pipeline (Schonberger & Frahm, "Structure-from-Motion Revisited", CVPR 2016):
SIFT features, exhaustive or sequential matching with geometric verification, then
incremental mapping with bundle adjustment. We add what users of COLMAP's GUI keep
asking for:

* known intrinsics (focal, cx, cy in the original photo's pixels) are held fixed in
  every bundle adjustment, so "fixing intrinsics just works";
* the focal prior comes only from trustworthy EXIF (see :mod:`.frames`), otherwise
  COLMAP's default of 1.2 x the long side, and when images stay unregistered the
  mapping is retried with other focal priors and the best model is kept;
* a report of registered images, why the others failed, reprojection error and points.

Poses are returned in the OpenCV convention: ``x_cam = R @ x_world + t`` with x right,
y down, z forward, and ``K`` with the centre of pixel (0, 0) at (0, 0).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engines.api import CancelToken, EngineError, no_progress
from engines.types import Camera, Mesh, PointCloud

log = logging.getLogger(__name__)


@dataclass
class Cameras:
    """Registered cameras, in the order of ``names``."""

    names: list[str]
    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    sizes: list[tuple[int, int]]
    k1: np.ndarray | None = None
    """Radial distortion (OpenCV k1) per camera, or None."""

    @property
    def centers(self) -> np.ndarray:
        return -np.einsum("nji,nj->ni", self.R, self.t)

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def camera(self, i: int) -> Camera:
        """Camera ``i`` as an :class:`engines.types.Camera` (pinhole: ``k1`` is left out)."""
        w, h = self.sizes[i]
        return Camera(self.K[i], self.R[i], self.t[i], int(w), int(h), name=str(self.names[i]))

    def to_list(self) -> list[Camera]:
        """Every camera as an :class:`engines.types.Camera`, in the order of ``names``."""
        return [self.camera(i) for i in range(len(self))]


@dataclass
class SparseModel:
    cameras: Cameras
    points: np.ndarray
    colors: np.ndarray
    total_images: int
    mean_reprojection_error: float
    unregistered: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def registered(self) -> int:
        return len(self.cameras)

    def scene_scale(self) -> float:
        """Robust size of the scene: spread of the sparse points (or of the cameras)."""
        pts = self.points if len(self.points) >= 10 else self.cameras.centers
        lo, hi = np.percentile(pts, [5, 95], axis=0)
        return float(max(np.linalg.norm(hi - lo), 1e-6))


def _write_images(views, image_dir: Path) -> None:
    import cv2

    image_dir.mkdir(parents=True, exist_ok=True)
    for v in views:
        cv2.imwrite(
            str(image_dir / v.name),
            cv2.cvtColor(v.rgb, cv2.COLOR_RGB2BGR),
            [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_JPEG_QUALITY, 95],
        )


def _set_cameras(db_path: Path, views, fixed: tuple | None, focal_prior: float | None, has_prior: bool) -> None:
    """Write the intrinsics prior (or the fixed intrinsics) into the COLMAP database."""
    import pycolmap

    by_name = {v.name: v for v in views}
    db = pycolmap.Database.open(str(db_path)) if hasattr(pycolmap.Database, "open") else pycolmap.Database(str(db_path))
    try:
        done = set()
        for img in db.read_all_images():
            if img.camera_id in done:
                continue
            done.add(img.camera_id)
            w, h = by_name[img.name].size
            if fixed is not None:
                f, cx, cy = fixed
                new = pycolmap.Camera.create_from_model_name(img.camera_id, "SIMPLE_PINHOLE", f, w, h)
                new.params = [f, cx, cy]
                new.has_prior_focal_length = True
            else:
                f = focal_prior if focal_prior else 1.2 * max(w, h)
                new = pycolmap.Camera.create_from_model_name(img.camera_id, "SIMPLE_RADIAL", f, w, h)
                new.params = [f, w / 2.0, h / 2.0, 0.0]
                new.has_prior_focal_length = has_prior
            db.update_camera(new)
    finally:
        db.close()


def _pose(img) -> tuple[np.ndarray, np.ndarray]:
    p = img.cam_from_world() if callable(img.cam_from_world) else img.cam_from_world
    m = np.asarray(p.matrix())
    return m[:, :3].astype(np.float64), m[:, 3].astype(np.float64)


def _to_model(rec, views, notes) -> SparseModel:
    names, Ks, Rs, ts, sizes, k1 = [], [], [], [], [], []
    order = {v.name: i for i, v in enumerate(views)}
    regs = sorted((rec.image(i) for i in rec.reg_image_ids()), key=lambda im: order.get(im.name, 0))
    for img in regs:
        cam = img.camera
        K = np.asarray(cam.calibration_matrix(), np.float64).copy()
        K[0, 2] -= 0.5  # COLMAP puts pixel centres at +0.5, OpenCV at 0
        K[1, 2] -= 0.5
        R, t = _pose(img)
        names.append(img.name)
        Ks.append(K)
        Rs.append(R)
        ts.append(t)
        sizes.append((int(cam.width), int(cam.height)))
        k1.append(float(cam.params[3]) if cam.model_name == "SIMPLE_RADIAL" else 0.0)
    pts = np.array([p.xyz for p in rec.points3D.values()], np.float64).reshape(-1, 3)
    cols = np.array([p.color for p in rec.points3D.values()], np.uint8).reshape(-1, 3)
    cams = Cameras(names, np.array(Ks), np.array(Rs), np.array(ts), sizes, np.array(k1))
    unreg = [v.name for v in views if v.name not in set(names)]
    return SparseModel(cams, pts, cols, len(views), float(rec.compute_mean_reprojection_error()), unreg, list(notes))


def run_sfm(
    views,
    workdir: Path,
    matching: str = "exhaustive",
    shared_intrinsics: bool = True,
    fixed_intrinsics: tuple[float, float, float] | None = None,
    max_features: int = 4096,
    num_threads: int = -1,
    progress=no_progress,
    cancel: CancelToken | None = None,
) -> SparseModel:
    """Structure from motion on ``views`` (see :mod:`.frames`); ``fixed_intrinsics`` is
    (focal, cx, cy) in working-image pixels. Returns the largest reconstructed model."""
    import pycolmap

    cancel = cancel or CancelToken()
    pycolmap.logging.minloglevel = 2  # COLMAP's INFO lines would flood the app log
    workdir = Path(workdir)
    image_dir, db_path = workdir / "images", workdir / "database.db"
    if db_path.exists():
        db_path.unlink()
    _write_images(views, image_dir)
    sizes = {v.size for v in views}
    notes: list[str] = []
    if shared_intrinsics and len(sizes) > 1:
        shared_intrinsics = False
        notes.append("Images of different sizes cannot share one camera; intrinsics are estimated per image.")
    mode = pycolmap.CameraMode.SINGLE if shared_intrinsics else pycolmap.CameraMode.PER_IMAGE
    ext = pycolmap.FeatureExtractionOptions()
    ext.num_threads = num_threads
    ext.use_gpu = False
    ext.sift.max_num_features = max_features
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = "SIMPLE_PINHOLE" if fixed_intrinsics else "SIMPLE_RADIAL"
    progress(0.05, f"Finding features in {len(views)} images")
    pycolmap.extract_features(
        db_path,
        image_dir,
        image_names=[v.name for v in views],
        camera_mode=mode,
        reader_options=reader,
        extraction_options=ext,
        device=pycolmap.Device.cpu,
    )
    cancel.raise_if_set()

    exif_f = [v.focal_px for v in views if v.focal_px]
    prior = float(np.median(exif_f)) if len(exif_f) >= len(views) / 2 else None
    _set_cameras(db_path, views, fixed_intrinsics, prior, prior is not None)

    progress(0.3, f"Matching features ({matching})")
    mopt = pycolmap.FeatureMatchingOptions()
    mopt.num_threads = num_threads
    mopt.use_gpu = False
    if matching == "sequential":
        pycolmap.match_sequential(db_path, matching_options=mopt, device=pycolmap.Device.cpu)
    else:
        pycolmap.match_exhaustive(db_path, matching_options=mopt, device=pycolmap.Device.cpu)
    cancel.raise_if_set()

    long_side = max(max(s) for s in sizes)
    tries: list[tuple[float | None, bool]] = [(prior, prior is not None)]
    if fixed_intrinsics is None:
        tries += [(f * long_side, False) for f in (1.2, 0.8, 2.0) if prior is not None or f != 1.2]
    best, best_key = None, None
    for k, (f, has_prior) in enumerate(tries):
        if k:
            _set_cameras(db_path, views, None, f, has_prior)
            notes.append(f"Retried mapping with a focal length prior of {f:.0f} px.")
        progress(0.5 + 0.1 * k, "Reconstructing cameras" + (f" (retry {k})" if k else ""))
        model = _map(db_path, image_dir, workdir, views, fixed_intrinsics is not None, num_threads, cancel)
        if model is None:
            continue
        key = (model.registered, -model.mean_reprojection_error)
        if best is None or key > best_key:
            best, best_key = model, key
        # a retry re-runs the whole mapping: only worth it when much is missing
        if model.registered >= max(len(views) - 1, 0.9 * len(views)):
            break
    if best is None or best.registered < 2:
        raise EngineError(
            f"No camera poses could be recovered from {len(views)} images: they share too few "
            "matching features. Take photos that overlap by at least 60 % with textured surfaces."
        )
    best.notes = notes + best.notes
    if best.unregistered:
        best.notes.append(_why_unregistered(db_path, best))
    return best


def _map(db_path, image_dir, workdir, views, fixed, num_threads, cancel) -> SparseModel | None:
    import pycolmap

    opts = pycolmap.IncrementalPipelineOptions()
    opts.num_threads = num_threads
    opts.min_model_size = 3
    opts.random_seed = 0
    opts.mapper.random_seed = 0
    opts.triangulation.random_seed = 0
    opts.extract_colors = True
    if fixed:
        opts.ba_refine_focal_length = False
        opts.ba_refine_principal_point = False
        opts.ba_refine_extra_params = False
        opts.mapper.abs_pose_refine_focal_length = False
        opts.mapper.abs_pose_refine_extra_params = False
    out = Path(workdir) / "sparse"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    # Cancel inside mapping: COLMAP calls back after the initial pair and after each new
    # image; a set CancelToken is passed on to COLMAP's own token, which stops the mapper.
    token = pycolmap.CancellationToken()

    def check() -> None:
        if cancel.is_set():
            token.cancel()

    # A failed attempt logs "Failed to create any sparse model" at ERROR level; run_sfm
    # retries with other focal priors and raises its own EngineError when all fail, so
    # COLMAP's line would only alarm the user. Only FATAL lines pass while mapping.
    level = pycolmap.logging.minloglevel
    pycolmap.logging.minloglevel = 3
    try:
        maps = pycolmap.incremental_mapping(
            db_path,
            image_dir,
            out,
            options=opts,
            initial_image_pair_callback=check,
            next_image_callback=check,
            cancellation_token=token,
        )
    except InterruptedError:  # COLMAP's answer to its token being cancelled
        cancel.raise_if_set()
        raise
    finally:
        pycolmap.logging.minloglevel = level
    cancel.raise_if_set()
    if not maps:
        return None
    rec = max(maps.values(), key=lambda r: (r.num_reg_images(), r.num_points3D()))
    notes = []
    if len(maps) > 1:
        notes.append(
            f"The photos fell into {len(maps)} separate groups; the largest ({rec.num_reg_images()} images) was kept."
        )
    return _to_model(rec, views, notes)


def _why_unregistered(db_path: Path, model: SparseModel) -> str:
    """A sentence naming the unregistered images and their verified matches."""
    import pycolmap

    db = pycolmap.Database.open(str(db_path)) if hasattr(pycolmap.Database, "open") else pycolmap.Database(str(db_path))
    try:
        ids = {im.name: im.image_id for im in db.read_all_images()}
        reg = {ids[n] for n in model.cameras.names}
        best_inliers = {}
        pairs, counts = db.read_two_view_geometry_num_inliers()
        for pid, c in zip(pairs, counts):
            a, b = pycolmap.pair_id_to_image_pair(pid)
            for x, y in ((a, b), (b, a)):
                if y in reg:
                    best_inliers[x] = max(best_inliers.get(x, 0), int(c))
    except Exception as e:  # the report is a courtesy; never fail the run on it
        log.debug("could not read match statistics: %s", e)
        best_inliers, ids = {}, {}
    finally:
        db.close()
    parts = [
        f"{n} ({best_inliers.get(ids.get(n), 0)} verified matches to a registered image)" for n in model.unregistered
    ]
    return (
        f"{model.registered} of {model.total_images} images registered. Not registered: "
        + ", ".join(parts)
        + ". An image needs about 30 or more matches with the others to be "
        "placed: take it closer to its neighbours' viewpoints, with more overlap."
    )


def frusta_mesh(cams: Cameras, size: float) -> Mesh:
    """Camera frusta as thin pyramids (apex at the centre, base ``size`` in front); the
    mesh carries the cameras themselves (``Mesh.cameras``) for "View from camera"."""
    verts, faces, cols = [], [], []
    n = len(cams)
    cameras = cams.to_list()
    for i, cam in enumerate(cameras):
        w, h = cam.image_size
        base = cam.unproject([[0, 0], [w, 0], [w, h], [0, h]], size)
        o = len(verts)
        verts += [cam.centre, *base]
        faces += [
            [o, o + 2, o + 1],
            [o, o + 3, o + 2],
            [o, o + 4, o + 3],
            [o, o + 1, o + 4],
            [o + 1, o + 2, o + 3],
            [o + 1, o + 3, o + 4],
        ]
        hue = i / max(n - 1, 1)
        cols += [[255, 255, 255]] + [[int(255 * hue), 80, int(255 * (1 - hue))]] * 4
    return Mesh(
        np.array(verts).reshape(-1, 3),
        np.array(faces).reshape(-1, 3),
        vertex_colors=np.array(cols, np.uint8).reshape(-1, 3),
        name="cameras",
        cameras=cameras,
    )


def sparse_cloud(model: SparseModel) -> PointCloud:
    return PointCloud(model.points, model.colors, name="sparse points")
