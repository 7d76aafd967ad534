"""A depth map as a surface that does not bridge depth jumps.

Neighbouring pixels on either side of an occluding edge (a branch against the sky, a
hill against the mountains behind it) are far apart in depth; a grid triangulation
joins them with long, thin triangles that point along the viewing rays: from the
photo's camera they are invisible, from anywhere else they are the "spiky fan" that hides
the scene. A triangle is cut when

* its depths differ by more than ``max_jump`` of the nearest (the engine's
  ``max_depth_jump``), or
* it is seen more nearly edge-on than ``max_slope_deg`` (the angle between its normal
  and the ray from the camera to it). A real surface that steep is sampled by the
  camera so thinly that the triangle says nothing about it; the depth discontinuity
  cut by the grazing test scales with the pixel footprint, so it works at any distance
  and focal length, where a fixed relative jump cuts too little far away (a 5 % jump at
  500 m is 25 m) and too much nearby.

The display frame is the viewport's: x right, y up, z towards the viewer, camera at the
origin looking down -z (:meth:`engines.types.DepthMap.to_points`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engines.types import DepthMap

MAX_SLOPE_DEG = 84.0
"""Default for cutting triangles seen nearly edge-on (see the module docstring)."""


def edge_on(
    vertices: np.ndarray, faces: np.ndarray, max_slope_deg: float = MAX_SLOPE_DEG, eye=(0.0, 0.0, 0.0)
) -> np.ndarray:
    """Boolean per face: seen from ``eye`` more nearly edge-on than ``max_slope_deg``."""
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    if len(f) == 0:
        return np.zeros(0, bool)
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    n = np.cross(b - a, c - a)
    ray = (a + b + c) / 3.0 - np.asarray(eye, np.float64)
    cos = np.abs(np.einsum("ij,ij->i", n, ray)) / np.maximum(
        np.linalg.norm(n, axis=1) * np.linalg.norm(ray, axis=1), 1e-30
    )
    return cos < np.cos(np.radians(max_slope_deg))


@dataclass
class DepthSurface:
    """A triangulated depth map: display-frame vertices, faces, and per vertex the pixel
    it came from (row, column in the full map) and that pixel's confidence."""

    vertices: np.ndarray  # N x 3 float32
    faces: np.ndarray  # F x 3 int64
    pixels: np.ndarray  # N x 2 int (row, column)
    confidence: np.ndarray  # N float32, 1 where the map has none
    stride: int


def depth_surface(
    dm: DepthMap, stride: int = 1, max_jump: float = 0.05, max_slope_deg: float = MAX_SLOPE_DEG
) -> DepthSurface:
    """Every ``stride``-th pixel of ``dm`` as a vertex, two triangles per grid cell, none
    across a depth jump (see the module docstring)."""
    stride = max(1, int(stride))
    H, W = dm.depth.shape
    d = np.asarray(dm.depth[::stride, ::stride], np.float32)
    ys, xs = np.mgrid[0:H:stride, 0:W:stride]
    valid = np.isfinite(d) & (d > 0)
    index = np.full(d.shape, -1, np.int64)
    index[valid] = np.arange(int(valid.sum()))
    # the display frame (y up, z towards the viewer), seen from the photo's camera
    verts = dm.display_camera().unproject(np.column_stack([xs[valid], ys[valid]]), d[valid]).astype(np.float32)
    i00, i01, i10, i11 = index[:-1, :-1], index[:-1, 1:], index[1:, :-1], index[1:, 1:]
    d00, d01, d10, d11 = d[:-1, :-1], d[:-1, 1:], d[1:, :-1], d[1:, 1:]
    faces = []
    for (a, b, c), (da, db, dc) in (((i00, i10, i01), (d00, d10, d01)), ((i01, i10, i11), (d01, d10, d11))):
        with np.errstate(invalid="ignore"):
            lo = np.fmin(np.fmin(da, db), dc)
            hi = np.fmax(np.fmax(da, db), dc)
            good = (a >= 0) & (b >= 0) & (c >= 0) & (hi - lo <= max_jump * lo)
        faces.append(np.stack([a[good], b[good], c[good]], 1))
    faces = np.concatenate(faces) if faces else np.zeros((0, 3), np.int64)
    if max_slope_deg and len(faces):
        faces = faces[~edge_on(verts, faces, max_slope_deg)]
    if dm.confidence is not None and dm.confidence.shape == dm.depth.shape:
        conf = np.nan_to_num(np.asarray(dm.confidence[::stride, ::stride], np.float32)[valid])
    else:
        conf = np.ones(len(verts), np.float32)
    pixels = np.stack([ys[valid], xs[valid]], 1)
    return DepthSurface(verts, faces.astype(np.int64), pixels, conf, stride)


def confident_fraction(dm: DepthMap, threshold: float) -> float:
    """Share of the known pixels whose confidence reaches ``threshold`` (1 with no confidence)."""
    ok = np.isfinite(dm.depth) & (dm.depth > 0)
    if dm.confidence is None or not ok.any():
        return 1.0 if ok.any() else 0.0
    return float((np.nan_to_num(dm.confidence[ok]) >= threshold).mean())
