"""Voxels from silhouettes: the visual hull by space carving.

The visual hull (Laurentini, PAMI 1994) is the largest shape consistent with every
silhouette: a voxel survives when it projects onto the foreground in every view that
sees it (voxel carving as in Szeliski, CVGIP 1993). Silhouettes come from either

* ``background``: the colour distance to the background colour, estimated per image
  as the median of the image border (for objects on a plain backdrop or turntable), or
* ``person``: mediapipe's selfie segmentation (the model ships in the mediapipe wheel).

Masks are dilated by the projected size of half a voxel, so that carving at voxel
resolution stays conservative (the hull contains the object). The occupied voxels are
meshed by marching cubes (Lorensen & Cline 1987) and also returned as points.
"""

from __future__ import annotations

import numpy as np

from engines.api import CancelToken, EngineError
from engines.types import Camera, Mesh, PointCloud


def background_mask(rgb: np.ndarray, threshold: float = 30.0) -> np.ndarray:
    """Foreground where the colour differs from the border's median colour."""
    import cv2

    h, w = rgb.shape[:2]
    b = max(2, int(0.03 * min(h, w)))
    border = np.concatenate(
        [rgb[:b].reshape(-1, 3), rgb[-b:].reshape(-1, 3), rgb[:, :b].reshape(-1, 3), rgb[:, -b:].reshape(-1, 3)]
    )
    bg = np.median(border.astype(np.float32), axis=0)
    dist = np.linalg.norm(rgb.astype(np.float32) - bg, axis=2)
    m = (dist > threshold).astype(np.uint8)
    k = np.ones((3, 3), np.uint8)
    m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, k, iterations=2)
    m = cv2.morphologyEx(m, cv2.MORPH_OPEN, k)
    return m > 0


def person_mask(rgb: np.ndarray) -> np.ndarray:
    """Person foreground by mediapipe selfie segmentation (model_selection=0, general)."""
    import mediapipe as mp

    with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0) as seg:
        res = seg.process(np.ascontiguousarray(rgb[:, :, :3]))
    if res.segmentation_mask is None:
        return np.zeros(rgb.shape[:2], bool)
    return res.segmentation_mask > 0.5


def silhouettes(images: list[np.ndarray], method: str = "background", threshold: float = 30.0) -> list[np.ndarray]:
    masks = [person_mask(im) if method == "person" else background_mask(im, threshold) for im in images]
    empty = [i for i, m in enumerate(masks) if m.mean() < 0.002]
    if len(empty) == len(masks):
        raise EngineError(
            "No foreground found in any image for the visual hull: use a plain background "
            "(or silhouette=person for photos of a person)."
        )
    full = [i for i, m in enumerate(masks) if m.mean() > 0.98]
    if len(full) == len(masks):
        raise EngineError(
            "The whole image is foreground in every view: the visual hull needs the object "
            "in front of a plain background with some background visible around it."
        )
    return masks


def carve(
    masks, Ks, Rs, ts, lo, hi, resolution: int = 96, min_views: int = 2, cancel: CancelToken | None = None
) -> tuple[np.ndarray, np.ndarray, float]:
    """Occupancy grid (bool, X x Y x Z), grid origin and voxel size inside box lo..hi."""
    import cv2

    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    voxel = float((hi - lo).max() / resolution)
    dims = np.maximum(np.ceil((hi - lo) / voxel).astype(int), 1)
    axes = [lo[i] + (np.arange(dims[i]) + 0.5) * voxel for i in range(3)]
    X = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    keep = np.ones(len(X), bool)
    seen = np.zeros(len(X), np.int32)
    for m, K, R, t in zip(masks, Ks, Rs, ts):
        if cancel is not None:
            cancel.raise_if_set()
        xy, z = Camera(K, R, t).project(X)
        front = np.isfinite(xy[:, 0])
        xy[~front] = -1.0
        u, v = np.round(xy).astype(np.int64).T
        h, w = m.shape
        ins = front & (u >= 0) & (u < w) & (v >= 0) & (v < h)
        # dilate by the projected radius of a voxel (+1 px rounding) to stay conservative
        r = int(np.ceil(K[0, 0] * voxel * 0.87 / max(float(np.median(z[ins])) if ins.any() else 1.0, 1e-9))) + 1
        md = cv2.dilate(m.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))) > 0
        fg = np.zeros(len(X), bool)
        fg[ins] = md[v[ins], u[ins]]
        keep &= fg | ~ins
        seen += ins
    keep &= seen >= min(min_views, len(masks))
    return keep.reshape(tuple(dims)), lo, voxel


def hull_mesh(occ: np.ndarray, origin: np.ndarray, voxel: float) -> Mesh:
    """Marching cubes on the occupancy grid (padded so the surface is closed)."""
    from skimage.measure import marching_cubes

    if occ.sum() == 0:
        raise EngineError(
            "Space carving removed every voxel: the silhouettes do not agree with the "
            "cameras. Check that the object is fully inside every photo."
        )
    g = np.pad(occ.astype(np.float32), 1)
    from scipy.ndimage import gaussian_filter

    g = gaussian_filter(g, 0.6)
    verts, faces, _, _ = marching_cubes(g, level=min(0.5, 0.5 * float(g.max())))
    verts = (verts - 1 + 0.5) * voxel + origin
    # skimage orders triangles so that normals point towards increasing values (inward here)
    m = Mesh(verts, faces[:, ::-1], name="visual hull")
    m.compute_normals()
    return m


def voxel_points(occ: np.ndarray, origin: np.ndarray, voxel: float) -> PointCloud:
    """Centres of the surface voxels (occupied with an empty face neighbour)."""
    from scipy.ndimage import binary_erosion

    surf = occ & ~binary_erosion(occ, border_value=0)
    idx = np.argwhere(surf)
    return PointCloud((idx + 0.5) * voxel + origin, np.full((len(idx), 3), 200, np.uint8), name="voxels")


def inside_hull(points: np.ndarray, occ: np.ndarray, origin: np.ndarray, voxel: float) -> np.ndarray:
    """Whether each point lies in an occupied voxel."""
    idx = np.floor((np.asarray(points) - origin) / voxel).astype(int)
    ok = np.all((idx >= 0) & (idx < occ.shape), axis=1)
    out = np.zeros(len(idx), bool)
    out[ok] = occ[idx[ok, 0], idx[ok, 1], idx[ok, 2]]
    return out
