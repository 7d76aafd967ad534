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
    supersample: int = 1,
    mipmap: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Unlit textured render (texture colours as they are) -> (H x W x 3 uint8, mask).

    ``mipmap`` filters the texture to each pixel's footprint (:func:`sample_mipmapped`);
    ``supersample`` > 1 renders ``supersample`` x larger and area-averages down, so the
    silhouette and the texture are antialiased as a camera's pixels are (the mask is then
    the pixels more than half covered). Both matter when a head is small in the frame: a
    2048-texel atlas on a face 60 pixels wide, point-sampled, is mostly aliasing."""
    import cv2

    K = np.asarray(K, float)
    w, h = size
    s = max(1, int(supersample))
    img = np.empty((h, w, 3), np.uint8)
    img[:] = np.asarray(background, np.uint8)
    mask = np.zeros((h, w), bool)
    # only the head's box is drawn (whole output pixels, so the area average lines up)
    xy0, z0 = project(K, R, t, V)
    ok = (z0 > 1e-6) & np.isfinite(xy0).all(1)
    if not ok.any():
        return img, mask
    x0, y0 = np.maximum(np.floor(xy0[ok].min(0)).astype(int) - 1, 0)
    x1, y1 = np.minimum(np.ceil(xy0[ok].max(0)).astype(int) + 2, [w, h])
    if x1 <= x0 or y1 <= y0:
        return img, mask
    bw, bh = int(x1 - x0), int(y1 - y0)
    Kb = K.copy()  # pixel centres at integers: x' = (x - x0 + 0.5) s - 0.5
    Kb[:2, :2] *= s
    Kb[:2, 2] = (K[:2, 2] - [x0, y0] + 0.5) * s - 0.5
    xy, z = project(Kb, R, t, V)
    r = rasterize(xy, z, faces, (bw * s, bh * s))
    th, tw = texture.shape[:2]
    st = interpolate(r, faces, uv.astype(np.float32))
    mx = (st[..., 0] * tw - 0.5).astype(np.float32)
    my = ((1.0 - st[..., 1]) * th - 0.5).astype(np.float32)
    tex = np.ascontiguousarray(texture[..., :3])
    if mipmap:
        box = sample_mipmapped(tex, mx, my, r.mask)
    else:
        box = cv2.remap(tex, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    box[~r.mask] = background
    cover = r.mask
    if s > 1:
        box = cv2.resize(box, (bw, bh), interpolation=cv2.INTER_AREA)
        cover = cv2.resize(r.mask.astype(np.float32), (bw, bh), interpolation=cv2.INTER_AREA) > 0.5
    img[y0:y1, x0:x1] = box
    mask[y0:y1, x0:x1] = cover
    return img, mask


def sample_mipmapped(texture: np.ndarray, mx: np.ndarray, my: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Texture lookups (uint8 H x W x 3) at texel coordinates ``mx``, ``my`` (H x W, pixel
    centres at integers), filtered to each pixel's footprint: a pyramid of box-averaged
    halvings and a per-pixel level from the texel distance to the next pixel, blended
    between the two nearest levels (trilinear mipmapping: Williams, "Pyramidal
    Parametrics", SIGGRAPH 1983). The footprint is the smaller of the forward and backward
    differences along each axis, so a UV seam between two neighbouring pixels does not
    read as a huge footprint."""
    import cv2

    def step(a, axis):
        d = np.abs(np.diff(a, axis=axis))
        pad = [(0, 0), (0, 0)]
        pad[axis] = (1, 0)
        back = np.pad(d, pad, mode="edge")
        pad[axis] = (0, 1)
        fwd = np.pad(d, pad, mode="edge")
        return np.minimum(back, fwd)

    fx = np.hypot(step(mx, 1), step(my, 1))
    fy = np.hypot(step(mx, 0), step(my, 0))
    lod = np.log2(np.maximum(np.maximum(fx, fy), 1.0)) * mask
    top = int(np.ceil(float(lod.max()))) if mask.any() else 0
    levels = [texture]
    for _ in range(min(top, 12)):
        a = levels[-1]
        if min(a.shape[:2]) < 2:
            break
        levels.append(cv2.resize(a, (a.shape[1] // 2, a.shape[0] // 2), interpolation=cv2.INTER_AREA))
    lod = np.minimum(lod, len(levels) - 1).astype(np.float32)
    out = np.zeros(mx.shape + (3,), np.float32)
    lo = np.floor(lod).astype(np.int32)
    frac = (lod - lo)[..., None]
    for k, tex in enumerate(levels):
        near = (lo == k) | (lo == k - 1)
        if not near.any():
            continue
        sx = np.float32(tex.shape[1] / texture.shape[1])
        sy = np.float32(tex.shape[0] / texture.shape[0])
        qx, qy = (mx + 0.5) * sx - 0.5, (my + 0.5) * sy - 0.5
        look = cv2.remap(tex, qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        wk = np.where(lo == k, 1.0 - frac[..., 0], np.where(lo == k - 1, frac[..., 0], 0.0)).astype(np.float32)
        out += look.astype(np.float32) * wk[..., None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
