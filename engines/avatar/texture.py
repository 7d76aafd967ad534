"""Texture bake: the photo projected into the head's UV atlas.

Each texel's surface point is projected into the photo through the fitted camera and
weighted by how squarely that surface faced the camera (the cosine between normal and view
ray, ramped between 0.08 and 0.4) and whether the photo saw it (a z-buffer from the
photo camera, :mod:`engines.avatar.raster`). What the photo did not see is filled as in
view-based texture completion for single-image face models (e.g. Deng et al., "UV-GAN",
CVPR 2018, whose non-learned baseline is symmetry): first from the mirrored point of the
face (the other half, where the photo saw it much more squarely - a turned head), then
with the skin tone measured on the cheeks and forehead, blended with the colours seen
nearby (a normalised Gaussian blur in the atlas). The fill weights are smooth, so seams
are blended.

Speed: the atlas layout is fixed (:mod:`engines.avatar.head`), so the texel-to-triangle
map is computed once per process; geometry and weights are evaluated at a quarter of the atlas
resolution and upsampled (they vary smoothly), and the colour lookups run at full resolution
(OpenCV ``remap``) only over the face disc and the eye corners; the skull ring is upsampled.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from engines.avatar.raster import project, rasterize
from engines.avatar.topology import vertex_normals

ATLAS = 2048
EYE_WHITE = np.array([226, 220, 212], np.float32)
MOUTH_DARK = np.array([52, 18, 20], np.float32)
TEETH = np.array([214, 206, 190], np.float32)
SOCKET = np.array([96, 52, 50], np.float32)


@lru_cache(maxsize=2)
def texel_map(faces_key: bytes, uv_key: bytes, n_faces: int, res: int, skip_key: bytes = b""):
    """(flat texel indices, triangle per texel, barycentrics) for a res x res grid.

    Triangles listed in ``skip_key`` (int64 indices) are left out: the seam column of a
    pocket's closed band, whose UVs wrap across its whole chart (mirrored, over the other
    triangles) and would otherwise take arbitrary texels of that chart."""
    faces = np.frombuffer(faces_key, np.int64).reshape(n_faces, 3)
    keep = np.setdiff1d(np.arange(n_faces), np.frombuffer(skip_key, np.int64))
    uv = np.frombuffer(uv_key, np.float32).reshape(-1, 2).astype(np.float64)
    xy = np.column_stack([uv[:, 0] * res - 0.5, (1 - uv[:, 1]) * res - 0.5])
    r = rasterize(xy, np.ones(len(uv)), faces[keep], (res, res), cull_back=False)
    idx = np.flatnonzero(r.tri.ravel() >= 0)
    return idx, keep[r.tri.ravel()[idx]], r.bary.reshape(-1, 3)[idx]


def wrapped_pocket_triangles(faces: np.ndarray, uv: np.ndarray, part: np.ndarray) -> np.ndarray:
    """Pocket triangles (parts 2 and 3) whose UV winding is reversed: the band seams."""
    t = uv.astype(np.float64)[faces]
    a, b = t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]
    area = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
    return np.flatnonzero((area < 0) & (part[faces[:, 0]] >= 2) & (part[faces[:, 0]] <= 3)).astype(np.int64)


def _interp(values, faces, tri, bary):
    f = faces[tri]
    return (values[f[:, 0]] * bary[:, 0:1] + values[f[:, 1]] * bary[:, 1:2] + values[f[:, 2]] * bary[:, 2:3])


def _smooth(x, a, b):
    t = np.clip((x - a) / (b - a), 0, 1)
    return t * t * (3 - 2 * t)


def _bilinear(img: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Colours (float32) at sub-pixel positions, clamped at the borders."""
    h, w = img.shape[:2]
    x = np.clip(xy[:, 0], 0, w - 1.001)
    y = np.clip(xy[:, 1], 0, h - 1.001)
    x0, y0 = x.astype(np.int64), y.astype(np.int64)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    f = img.astype(np.float32)
    top = f[y0, x0] * (1 - fx) + f[y0, x0 + 1] * fx
    bot = f[y0 + 1, x0] * (1 - fx) + f[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bot * fy


def skin_tone(photo: np.ndarray, landmarks_xy: np.ndarray) -> np.ndarray:
    """Median colour around cheek and forehead landmarks (RGB float)."""
    h, w = photo.shape[:2]
    r = max(2, int(0.01 * max(h, w)))
    patches = []
    for i in (50, 280, 101, 330, 151, 108, 337):
        x, y = np.round(landmarks_xy[i]).astype(int)
        patch = photo[max(y - r, 0): y + r + 1, max(x - r, 0): x + r + 1].reshape(-1, 3)
        if len(patch):
            patches.append(patch)
    return np.median(np.concatenate(patches), 0).astype(np.float32)


def _fill_invalid(a: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Extend values a few texels past chart borders (normalised blur), so upsampling is clean."""
    import cv2

    m = valid.astype(np.float32)
    out = a.copy()
    for sigma in (1.5, 4.0):
        num = cv2.GaussianBlur(out * m[..., None] if out.ndim == 3 else out * m, (0, 0), sigma)
        den = cv2.GaussianBlur(m, (0, 0), sigma)
        den_ = den[..., None] if out.ndim == 3 else den
        fill = (m < 0.5) & (den > 1e-3)
        out[fill] = (num / np.maximum(den_, 1e-6))[fill]
        m = np.maximum(m, (den > 1e-3).astype(np.float32))
    return out


def bake(V, faces, uv, part, photo, K, R, t, landmarks_xy, skull_weight, fixed_color, fixed_weight,
         size: int = ATLAS):
    """The texture atlas (size x size x 3 uint8) and the fraction of the face the photo saw."""
    import cv2

    h, w = photo.shape[:2]
    res = size // 4
    skip = wrapped_pocket_triangles(faces, uv, part)
    idx, tri, bary = texel_map(faces.tobytes(), uv.astype(np.float32).tobytes(), len(faces), res, skip.tobytes())
    N = vertex_normals(V, faces)
    P = _interp(V, faces, tri, bary)
    Nt = _interp(N, faces, tri, bary)
    Nt /= np.maximum(np.linalg.norm(Nt, axis=1, keepdims=True), 1e-12)
    centre = -R.T @ t

    # z-buffer from the photo camera at reduced resolution
    zs = min(1.0, 640.0 / max(w, h))
    Kz = K.copy()
    Kz[:2] *= zs
    Kz[0, 2], Kz[1, 2] = (K[0, 2] + 0.5) * zs - 0.5, (K[1, 2] + 0.5) * zs - 0.5
    zw, zh = max(1, int(round(w * zs))), max(1, int(round(h * zs)))
    xyv, zv = project(Kz, R, t, V)
    zbuf = rasterize(xyv, zv, faces, (zw, zh)).depth
    zbuf = cv2.dilate(zbuf, np.ones((3, 3), np.uint8))

    def sample_weights(Q, Nq, tol, pocket=None):
        xy, z = project(K, R, t, Q)
        view = centre - Q
        view /= np.maximum(np.linalg.norm(view, axis=1, keepdims=True), 1e-12)
        facing = np.einsum("ij,ij->i", Nq, view)
        inside = (xy[:, 0] > 0) & (xy[:, 1] > 0) & (xy[:, 0] < w - 1) & (xy[:, 1] < h - 1)
        zx = np.clip(np.round((xy[:, 0] + 0.5) * zs - 0.5).astype(int), 0, zw - 1)
        zy = np.clip(np.round((xy[:, 1] + 0.5) * zs - 0.5).astype(int), 0, zh - 1)
        seen = z <= zbuf[zy, zx] + tol
        ramp = _smooth(facing, 0.08, 0.4)
        if pocket is not None:  # inside the mouth and eye pockets walls are seen edge-on: visibility only
            ramp = np.where(pocket, facing > -0.2, ramp)
        return xy, ramp * inside * seen, facing

    prt = part[faces[tri, 0]]
    fw = _interp(fixed_weight[:, None], faces, tri, bary)[:, 0]
    xy_d, w_d, f_d = sample_weights(P, Nt, 0.003, (prt == 2) | (prt == 3))
    # the mouth flaps (between the inner lips and ring 1 of the pocket) tile the lip opening as
    # the photo camera sees it (:func:`engines.avatar.head._mouth_flaps`), so they show exactly
    # what the photo shows there; a z-test against the lips a few mm in front of them would
    # only drop texels along the lip line at the z-buffer's resolution, and the interpolated
    # vertex normals near ring 1 lean into the pocket: the flaps take the photo wherever it is
    flap = (prt == 3) & (fw < 0.999)
    inside_d = (xy_d[:, 0] > 0) & (xy_d[:, 1] > 0) & (xy_d[:, 0] < w - 1) & (xy_d[:, 1] < h - 1)
    w_d = np.where(flap, inside_d.astype(w_d.dtype), w_d)
    mirror = np.array([-1.0, 1.0, 1.0])
    xy_m, w_m, f_m = sample_weights(P * mirror, Nt * mirror, 0.006)
    # the mirror only helps where it was seen much more squarely (a turned head); on a frontal
    # photo both sides are equally oblique and mirroring would only copy ghosts of the far side
    w_m = w_m * _smooth(f_m - f_d, 0.1, 0.3)
    sk = _interp(skull_weight[:, None], faces, tri, bary)[:, 0]
    fc = _interp(fixed_color, faces, tri, bary)
    is_eye = prt == 4
    w_d = w_d * sk
    w_m = w_m * sk * (1 - fw) * (prt <= 1)

    skin = skin_tone(photo, landmarks_xy)
    base = np.where(is_eye[:, None], EYE_WHITE, skin) * (1 - fw[:, None]) + fc * fw[:, None]

    # fill colour: the seen colours nearby (normalised Gaussian blur in the atlas, about 4 % of
    # its width), fading to the global skin tone far from anything seen - so seams blend
    src = np.ascontiguousarray(photo[..., :3])
    skin_like = prt <= 1
    col = np.zeros((len(idx), 3), np.float32)
    for xy_s, w_s in ((xy_m, w_m * (1 - w_d)), (xy_d, w_d)):
        col += _bilinear(src, xy_s) * w_s[:, None]
    seen_w = (w_d + (1 - w_d) * w_m) * skin_like
    acc = np.zeros((res * res, 4), np.float32)
    acc[idx, :3] = col * skin_like[:, None]
    acc[idx, 3] = seen_w
    small = cv2.resize(acc.reshape(res, res, 4), (res // 4, res // 4), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), 0.01 * res)
    acc = cv2.resize(small, (res, res), interpolation=cv2.INTER_LINEAR).reshape(-1, 4)[idx]
    conf = np.clip(acc[:, 3] / 0.25, 0, 1)[:, None]
    local = acc[:, :3] / np.maximum(acc[:, 3:4], 1e-6)
    base = np.where(skin_like[:, None], conf * local + (1 - conf) * skin, base)

    grid = np.zeros((res * res, 12), np.float32)
    grid[idx, 0:2] = xy_d
    grid[idx, 2:4] = xy_m
    grid[idx, 4] = w_d
    grid[idx, 5] = w_m
    grid[idx, 6:9] = base
    grid[idx, 9:12] = col + (1 - seen_w[:, None]) * base  # blended colour, for the low-detail skull strip
    valid = np.zeros((res, res), bool)
    valid.ravel()[idx] = True
    grid = _fill_invalid(grid.reshape(res, res, 12), valid)
    grid[~valid, 6:9] = skin
    grid[~valid, 9:12] = skin
    grid = np.ascontiguousarray(grid)
    # Colours everywhere from the low-resolution blend (skull ring: skin and the first rings
    # past the face), then full-resolution photo lookups where detail lives: the face disc and
    # the eyeball and pocket corners.
    from engines.avatar.head import ATLAS_CENTRE, CORNER, FACE_RADIUS

    low = np.clip(grid[..., 9:12] + 0.5, 0, 255).astype(np.uint8)
    tex = cv2.resize(low, (size, size), interpolation=cv2.INTER_LINEAR)
    f0 = int(np.floor((ATLAS_CENTRE[0] - FACE_RADIUS - 0.01) * res))
    f1 = int(np.ceil((ATLAS_CENTRE[0] + FACE_RADIUS + 0.01) * res))
    c = int(np.ceil(CORNER * res))
    for r0, r1, q0, q1 in ((f0, f1, f0, f1), (0, c, 0, c), (0, c, res - c, res), (res - c, res, 0, c),
                           (res - c, res, res - c, res)):
        tile = grid[r0:r1, q0:q1]
        full = ((q1 - q0) * size // res, (r1 - r0) * size // res)
        maps_d = cv2.resize(np.ascontiguousarray(tile[..., 0:2]), full, interpolation=cv2.INTER_LINEAR)
        maps_m = cv2.resize(np.ascontiguousarray(tile[..., 2:4]), full, interpolation=cv2.INTER_LINEAR)
        wd = cv2.resize(np.ascontiguousarray(np.clip(tile[..., 4], 0, 1)), full, interpolation=cv2.INTER_LINEAR)
        wm = cv2.resize(np.ascontiguousarray(np.clip(tile[..., 5], 0, 1)), full, interpolation=cv2.INTER_LINEAR)
        base_up = cv2.resize(np.clip(tile[..., 6:9] + 0.5, 0, 255).astype(np.uint8), full,
                             interpolation=cv2.INTER_LINEAR)
        direct = cv2.remap(src, maps_d, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        mirrored = cv2.remap(src, maps_m, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        mixed = cv2.blendLinear(mirrored, base_up, wm, 1.0 - wm)
        tex[r0 * size // res: r1 * size // res, q0 * size // res: q1 * size // res] = \
            cv2.blendLinear(direct, mixed, wd, 1.0 - wd)
    face_seen = float(np.mean(w_d[prt == 0] > 0.5)) if np.any(prt == 0) else 0.0
    return tex, face_seen
