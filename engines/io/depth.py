"""Depth maps: files (16-bit PNG in millimetres, float32 NPY in metres, PLY points) and
a depth map as a mesh.

``depth_to_mesh`` back-projects every valid pixel with the pinhole model (the same
camera -> display frame as :meth:`DepthMap.to_points`: x right, y up, z towards the
viewer) and joins neighbouring pixels in a grid of triangles. A triangle whose depths
differ by more than ``max_depth_jump`` times its nearest depth spans a depth
discontinuity (an occlusion edge), so it is dropped rather than stretched into a
"rubber sheet" between foreground and background -- the usual rule for meshing range
images (Turk & Levoy, "Zippered polygon meshes from range images", SIGGRAPH 1994).

16-bit PNG: depth in millimetres, 0 = unknown, so at most 65.535 m (farther values are
stored as 65535). The NPY file holds float32 metres with NaN for unknown pixels.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from engines.api import EngineError
from engines.io import atomic_path
from engines.types import DepthMap, Mesh


def _colours(dm: DepthMap) -> np.ndarray | None:
    img = dm.image
    if img is None or img.shape[:2] != dm.depth.shape:
        return None
    from engines.types import Image

    return Image(np.asarray(img)).rgb8()


def depth_to_mesh(dm: DepthMap, max_depth_jump: float = 0.05, stride: int = 1) -> Mesh:
    """A triangle mesh of the depth map (see the module docstring).

    ``stride`` takes every n-th pixel (for large maps). Vertex colours come from
    ``dm.image``; UVs map each vertex to its pixel in that image.
    """
    stride = max(1, int(stride))
    d = dm.depth[::stride, ::stride].astype(np.float64)
    H, W = dm.depth.shape
    h, w = d.shape
    ys, xs = np.mgrid[0:H:stride, 0:W:stride]
    valid = np.isfinite(d) & (d > 0)
    if valid.sum() < 3:
        raise EngineError(f"The depth map '{dm.name}' has fewer than 3 known pixels, so it cannot become a mesh.")
    index = np.full(d.shape, -1, np.int64)
    index[valid] = np.arange(int(valid.sum()))
    # the display frame (y up, z towards the viewer), seen from the photo's camera
    verts = dm.display_camera().unproject(np.column_stack([xs[valid], ys[valid]]), d[valid])
    # Two triangles per 2x2 cell, counter-clockwise as seen from the camera.
    i00, i01, i10, i11 = index[:-1, :-1], index[:-1, 1:], index[1:, :-1], index[1:, 1:]
    d00, d01, d10, d11 = d[:-1, :-1], d[:-1, 1:], d[1:, :-1], d[1:, 1:]
    faces, _ok = [], []
    for (a, b, c), (da, db, dc) in (((i00, i10, i01), (d00, d10, d01)), ((i01, i10, i11), (d01, d10, d11))):
        with np.errstate(invalid="ignore"):
            lo = np.fmin(np.fmin(da, db), dc)
            hi = np.fmax(np.fmax(da, db), dc)
            good = (a >= 0) & (b >= 0) & (c >= 0) & (hi - lo <= max_depth_jump * lo)
        faces.append(np.stack([a[good], b[good], c[good]], 1))
    faces = np.concatenate(faces)
    if len(faces) == 0:
        raise EngineError(
            f"The depth map '{dm.name}' has no neighbouring known pixels at similar depth, so no surface can be made; "
            "raise max_depth_jump or export points (PLY) instead."
        )
    uv = np.stack([xs[valid] / max(W - 1, 1), 1.0 - ys[valid] / max(H - 1, 1)], 1)
    cols = _colours(dm)
    if cols is not None:
        cols = cols[::stride, ::stride][valid]
    # Pixels left without a triangle (isolated by holes or edges) are dropped.
    used = np.zeros(len(verts), bool)
    used[faces.ravel()] = True
    remap = np.cumsum(used) - 1
    faces = remap[faces]
    verts, uv = verts[used], uv[used]
    if cols is not None:
        cols = cols[used]
    mesh = Mesh(verts, faces, uv=uv, vertex_colors=cols, name=dm.name + " mesh")
    if len(faces):
        mesh.compute_normals()
    return mesh


def _check(dm: DepthMap, path: Path) -> None:
    if dm.depth.ndim != 2 or dm.depth.size == 0:
        raise EngineError(f"{path.name}: the depth map is not a 2D array, so it cannot be saved.")


def write_depth_png16(dm: DepthMap, path: str | os.PathLike) -> list[Path]:
    """16-bit greyscale PNG, millimetres, 0 = unknown (at most 65.535 m)."""
    from PIL import Image as PILImage

    path = Path(path)
    _check(dm, path)
    d = dm.depth.astype(np.float64)
    ok = np.isfinite(d) & (d > 0)
    mm = np.zeros(d.shape, np.uint16)
    mm[ok] = np.clip(np.rint(d[ok] * 1000.0), 1, 65535).astype(np.uint16)
    with atomic_path(path) as tmp:
        PILImage.fromarray(mm).save(tmp, format="PNG")
    return [path]


def read_depth_png16(path: str | os.PathLike) -> DepthMap:
    """A 16-bit millimetre PNG (as written by :func:`write_depth_png16`) -> DepthMap."""
    from engines.io.images import read_image

    path = Path(path)
    px = read_image(path).pixels
    if px.ndim != 2 or px.dtype != np.uint16:
        raise EngineError(
            f"{path.name}: not a 16-bit greyscale depth PNG (millimetres). Choose the depth PNG Capture Studio exported."  # noqa: E501
        )
    d = px.astype(np.float32) / 1000.0
    d[px == 0] = np.nan
    return DepthMap(d, name=path.stem)


def write_depth_npy(dm: DepthMap, path: str | os.PathLike) -> list[Path]:
    """float32 metres, NaN = unknown."""
    path = Path(path)
    _check(dm, path)
    d = dm.depth.astype(np.float32).copy()
    d[~(np.isfinite(d) & (d > 0))] = np.nan
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, d, allow_pickle=False)
    return [path]


def read_depth_npy(path: str | os.PathLike) -> DepthMap:
    """A 2D NPY array of metres (NaN, 0 or negative = unknown) -> DepthMap.

    The array header is checked against the file and the limit policy
    (:func:`engines.io.limits.load_npy`) before the array is allocated.
    """
    from engines.io.limits import load_npy

    path = Path(path)
    if not path.exists():
        raise EngineError(f"{path}: no such file. Check the path or choose the file again.")
    a = load_npy(path)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim != 2 or a.dtype.kind not in "fiu":
        raise EngineError(f"{path.name}: holds a {a.dtype} array of shape {a.shape}, not a 2D depth map in metres.")
    d = a.astype(np.float32)
    d[~(np.isfinite(d) & (d > 0))] = np.nan
    return DepthMap(d, name=path.stem)


def write_depth_ply(dm: DepthMap, path: str | os.PathLike) -> list[Path]:
    """The back-projected, coloured points (:meth:`DepthMap.to_points`) as binary PLY."""
    from engines.io.mesh import write_points_ply

    path = Path(path)
    _check(dm, path)
    cloud = dm.to_points()
    if len(cloud.points) == 0:
        raise EngineError(f"{path.name}: the depth map has no known pixels, so there are no points to save.")
    return write_points_ply(cloud, path)


def write_depth_mesh_glb(dm: DepthMap, path: str | os.PathLike) -> list[Path]:
    from engines.io.mesh import write_glb

    return write_glb(depth_to_mesh(dm), path)


def write_depth_mesh_obj(dm: DepthMap, path: str | os.PathLike) -> list[Path]:
    from engines.io.mesh import write_obj

    return write_obj(depth_to_mesh(dm), path)
