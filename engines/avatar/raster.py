"""A small vectorised z-buffer rasteriser (numpy only) for the avatar engine.

Used for visibility while baking the texture (which texels the photo really saw), and to
render the avatar from the photo camera for the quality figures (PSNR/SSIM, landmark
re-detection) without a GPU or VTK, so the engine and its CLI stay Qt/VTK-free.
Every triangle's bounding box is expanded into candidate pixels at once, tested with edge
functions, and the nearest candidate per pixel wins (a sort on depth, then a unique on the
pixel index). Attributes are interpolated perspective-correctly (barycentrics over depth).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Raster:
    tri: np.ndarray
    """H x W triangle index, -1 where nothing was drawn."""
    bary: np.ndarray
    """H x W x 3 perspective-correct barycentric weights."""
    depth: np.ndarray
    """H x W camera depth (inf where empty)."""

    @property
    def mask(self) -> np.ndarray:
        return self.tri >= 0


def project(K: np.ndarray, R: np.ndarray, t: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Head-frame points -> (pixel xy, camera depth): :meth:`engines.types.Camera.project`
    (NaN pixels for points behind the camera)."""
    from engines.types import Camera

    return Camera(K=K, R=R, t=t).project(X)


def rasterize(
    xy: np.ndarray,
    z: np.ndarray,
    faces: np.ndarray,
    size: tuple[int, int],
    cull_back: bool = True,
    max_candidates: int = 30_000_000,
) -> Raster:
    """Rasterise triangles given pixel positions (integer = pixel centre) and depths."""
    w, h = size
    f = faces[(z[faces] > 1e-6).all(1)]
    p0, p1, p2 = xy[f[:, 0]], xy[f[:, 1]], xy[f[:, 2]]
    area = (p1[:, 0] - p0[:, 0]) * (p2[:, 1] - p0[:, 1]) - (p2[:, 0] - p0[:, 0]) * (p1[:, 1] - p0[:, 1])
    keep = area < -1e-12 if cull_back else np.abs(area) > 1e-12
    lo = np.floor(np.minimum(np.minimum(p0, p1), p2)).astype(np.int64) + 1
    hi = np.floor(np.maximum(np.maximum(p0, p1), p2)).astype(np.int64)
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, [w - 1, h - 1])
    keep &= (hi >= lo).all(1)
    f, p0, p1, p2, area, lo, hi = f[keep], p0[keep], p1[keep], p2[keep], area[keep], lo[keep], hi[keep]
    face_index = np.flatnonzero((z[faces] > 1e-6).all(1))[keep]
    bw = hi[:, 0] - lo[:, 0] + 1
    bh = hi[:, 1] - lo[:, 1] + 1
    counts = bw * bh
    total = int(counts.sum())
    tri = np.full((h, w), -1, np.int32)
    bary = np.zeros((h, w, 3), np.float32)
    depth = np.full((h, w), np.inf, np.float32)
    if total == 0:
        return Raster(tri, bary, depth)
    if total > max_candidates:
        raise ValueError(f"rasterize: {total} candidate pixels; render smaller")
    owner = np.repeat(np.arange(len(f)), counts)
    local = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    px = lo[owner, 0] + local % bw[owner]
    py = lo[owner, 1] + local // bw[owner]
    a, b, c = p0[owner], p1[owner], p2[owner]
    inv = 1.0 / area[owner]
    l0 = ((b[:, 0] - px) * (c[:, 1] - py) - (c[:, 0] - px) * (b[:, 1] - py)) * inv
    l1 = ((c[:, 0] - px) * (a[:, 1] - py) - (a[:, 0] - px) * (c[:, 1] - py)) * inv
    l2 = 1.0 - l0 - l1
    eps = -1e-7
    inside = (l0 >= eps) & (l1 >= eps) & (l2 >= eps)
    owner, px, py, l0, l1, l2 = owner[inside], px[inside], py[inside], l0[inside], l1[inside], l2[inside]
    fz = z[f[owner]]
    q = np.stack([l0 / fz[:, 0], l1 / fz[:, 1], l2 / fz[:, 2]], 1)
    s = q.sum(1)
    d = 1.0 / s
    pix = py * w + px
    order = np.lexsort((d, pix))
    pix_sorted = pix[order]
    first = np.ones(len(order), bool)
    first[1:] = pix_sorted[1:] != pix_sorted[:-1]
    win = order[first]
    flat = pix[win]
    tri.ravel()[flat] = face_index[owner[win]]
    bary.reshape(-1, 3)[flat] = q[win] / s[win, None]
    depth.ravel()[flat] = d[win]
    return Raster(tri, bary, depth)


def interpolate(r: Raster, faces: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per-vertex values (N x C) interpolated at every drawn pixel (H x W x C, 0 where empty)."""
    m = r.mask
    out = np.zeros(r.tri.shape + (values.shape[1],), np.float32)
    f = faces[r.tri[m]]
    b = r.bary[m]
    out[m] = values[f[:, 0]] * b[:, 0:1] + values[f[:, 1]] * b[:, 1:2] + values[f[:, 2]] * b[:, 2:3]
    return out


def render_textured(
    V: np.ndarray,
    faces: np.ndarray,
    uv: np.ndarray,
    texture: np.ndarray,
    K,
    R,
    t,
    size: tuple[int, int],
    background=(255, 255, 255),
) -> tuple[np.ndarray, np.ndarray]:
    """Unlit textured render (texture colours as they are) -> (H x W x 3 uint8, mask)."""
    import cv2

    xy, z = project(np.asarray(K, float), R, t, V)
    r = rasterize(xy, z, faces, size)
    th, tw = texture.shape[:2]
    st = interpolate(r, faces, uv.astype(np.float32))
    mx = st[..., 0] * tw - 0.5
    my = (1.0 - st[..., 1]) * th - 0.5
    img = cv2.remap(
        np.ascontiguousarray(texture[..., :3]),
        mx.astype(np.float32),
        my.astype(np.float32),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    img[~r.mask] = background
    return img, r.mask
