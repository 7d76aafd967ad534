"""Texture atlas for a reconstructed mesh, baked from the registered photos.

xatlas (a port of Thekla's atlas generator) cuts the mesh into charts and packs them.
Each triangle then takes its colours from one photo: among the photos where the
triangle's centre is visible (a ray cast against the mesh, open3d/Embree) and inside
the frame, the one that sees it most frontally and from closest, as in the data term of
Waechter et al., "Let there be color! Large-scale texturing of 3D reconstructions"
(ECCV 2014), without their graph-cut smoothing and seam levelling. Chart borders are
padded outward so that mip-mapping does not bleed background into the surface.
"""

from __future__ import annotations

import warnings

import numpy as np

from engines.types import Camera, Mesh


def bilinear(img: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Sample an H x W x C image at float pixel positions (clamped to the image)."""
    h, w = img.shape[:2]
    u = np.clip(u, 0, w - 1.001)
    v = np.clip(v, 0, h - 1.001)
    u0, v0 = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    a, b = (u - u0)[:, None], (v - v0)[:, None]
    im = img.astype(np.float32)
    return (
        (1 - a) * (1 - b) * im[v0, u0]
        + a * (1 - b) * im[v0, u0 + 1]
        + (1 - a) * b * im[v0 + 1, u0]
        + a * b * im[v0 + 1, u0 + 1]
    )


def atlas(vertices: np.ndarray, faces: np.ndarray, size: int):
    """(vertex map, faces, uv in 0..1 with v down) from xatlas, tuned for speed."""
    import xatlas

    co = xatlas.ChartOptions()
    co.max_iterations = 1
    # capping a chart at 1 % of the surface: 3x faster charting (50k faces: 6.8 -> 2.3 s),
    # a similar chart count, ~10 % less of the atlas used
    V = np.asarray(vertices, np.float64)
    F = np.asarray(faces)
    area = 0.5 * np.linalg.norm(np.cross(V[F[:, 1]] - V[F[:, 0]], V[F[:, 2]] - V[F[:, 0]]), axis=1).sum()
    if area > 0:
        co.max_chart_area = float(area / 100.0)
    po = xatlas.PackOptions()
    po.resolution = int(size)
    po.padding = 2
    po.rotate_charts = False  # halves packing time; costs a little atlas space
    a = xatlas.Atlas()
    a.add_mesh(np.ascontiguousarray(vertices, np.float32), np.ascontiguousarray(faces, np.uint32))
    a.generate(co, po)
    vmap, idx, uv = a[0]
    return vmap, idx.astype(np.int64), uv


def view_weights(V, F, photos) -> np.ndarray:
    """(faces, photos) weights: cos(view angle) / distance where the photo sees the
    face's centre (ray cast against the mesh, inside the frame), else 0."""
    import open3d as o3d

    centres = V[F].mean(1)
    fn = np.cross(V[F[:, 1]] - V[F[:, 0]], V[F[:, 2]] - V[F[:, 0]])
    fn /= np.linalg.norm(fn, axis=1, keepdims=True) + 1e-12
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(V.astype(np.float32)), o3d.core.Tensor(F.astype(np.uint32)))
    W = np.zeros((len(F), len(photos)), np.float32)
    for k, (rgb, K, R, t) in enumerate(photos):
        cam = Camera(K, R, t)
        C = cam.centre
        u, v = cam.project(centres)[0].T  # NaN behind the camera: never a candidate
        h, w = rgb.shape[:2]
        view = C - centres
        dist = np.linalg.norm(view, axis=1) + 1e-12
        cos = np.abs(np.einsum("nd,nd->n", fn, view)) / dist  # two-sided: winding may be either way
        m = 2.0
        cand = np.flatnonzero((u >= m) & (u <= w - 1 - m) & (v >= m) & (v <= h - 1 - m) & (cos > 0.1))
        if cand.size == 0:
            continue
        rays = np.concatenate([np.broadcast_to(C, (cand.size, 3)), -view[cand] / dist[cand, None]], 1)
        hit = scene.cast_rays(o3d.core.Tensor(rays.astype(np.float32)))["t_hit"].numpy()
        cand = cand[hit > dist[cand] * (1 - 1e-3) - 1e-6]
        W[cand, k] = cos[cand] / dist[cand]  # frontal and close: more texels per triangle
    return W


def best_view_per_face(V, F, photos) -> np.ndarray:
    """Index of the photo that sees each face best (-1: none sees it)."""
    W = view_weights(V, F, photos)
    return np.where(W.max(1) > 0, W.argmax(1), -1)


def _project(P, K, R, t):
    u, v = Camera(K, R, t).project(P)[0].T
    return u, v


def photo_gains(centres: np.ndarray, W: np.ndarray, photos, iterations: int = 4) -> np.ndarray:
    """Per-photo, per-channel colour gains that make photos agree on the faces they share.

    Seam levelling in the spirit of Waechter et al. 2014 (global adjustment), reduced to
    one gain per photo and channel: alternately take each face's geometric-mean colour
    over the photos that see it, and set each photo's gain to the median ratio of those
    means to its own (blurred) samples. Gains are normalised to a geometric mean of 1.
    """
    import cv2

    n = len(photos)
    shared = np.flatnonzero((W > 0).sum(1) >= 2)
    if n < 2 or shared.size < 50:
        return np.ones((n, 3), np.float32)
    shared = shared[:: max(1, shared.size // 20000)]
    logc = np.full((shared.size, n, 3), np.nan, np.float32)
    for k, (rgb, K, R, t) in enumerate(photos):
        sel = np.flatnonzero(W[shared, k] > 0)
        if sel.size == 0:
            continue
        blur = cv2.GaussianBlur(rgb[:, :, :3], (0, 0), 2.0)  # tolerate small misalignment
        u, v = _project(centres[shared[sel]], K, R, t)
        c = bilinear(blur, u, v)
        ok = c.min(1) > 8  # near-black samples say nothing about gain
        logc[sel[ok], k] = np.log(c[ok])
    g = np.zeros((n, 3), np.float32)
    for _ in range(iterations):
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # faces with no usable sample: NaN
            face = np.nanmean(logc + g[None], axis=1)  # per face, over its photos
        diff = face[:, None, :] - logc
        for k in range(n):
            d = diff[:, k]
            d = d[np.isfinite(d[:, 0])]
            g[k] = np.median(d, 0) if len(d) >= 20 else 0.0
        g -= g.mean(0)
    return np.exp(np.clip(g, -0.7, 0.7))


def bake_texture(mesh: Mesh, photos, size: int = 2048, blend: bool = True, level: bool = True, cancel=None) -> Mesh:
    """Texture atlas for ``mesh`` from ``photos`` = [(rgb, K, R, t)] (world->camera, OpenCV).

    Each face takes its two best photos, blended by their view weights (sharpened, so the
    best one dominates but the hand-over between photos is gradual), after per-photo
    colour gains (:func:`photo_gains`) level exposure differences across seams.
    ``cancel`` (a CancelToken) is checked while rasterising and before each photo.
    """
    check = cancel.raise_if_set if cancel is not None else (lambda: None)
    import cv2

    vmap, F, uv = atlas(mesh.vertices, mesh.faces, size)
    V = mesh.vertices[vmap].astype(np.float64)
    uvpx = uv * (size - 1)
    tri_id = np.zeros((size, size), np.int32)
    for k, tri in enumerate(np.round(uvpx[F] * 16).astype(np.int32)):
        if k % 4096 == 0:
            check()
        cv2.fillConvexPoly(tri_id, tri, k + 1, lineType=cv2.LINE_8, shift=4)
    ys, xs = np.nonzero(tri_id)
    f = tri_id[ys, xs] - 1
    a, b, c = uvpx[F[f, 0]], uvpx[F[f, 1]], uvpx[F[f, 2]]
    p = np.stack([xs, ys], 1).astype(np.float64)
    v0, v1, v2 = b - a, c - a, p - a
    den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    den = np.where(np.abs(den) < 1e-12, 1e-12, den)
    w1 = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
    w2 = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
    bary = np.clip(np.stack([1 - w1 - w2, w1, w2], 1), 0, 1)
    bary /= bary.sum(1, keepdims=True)
    P = np.einsum("nk,nkd->nd", bary, V[F[f]])
    W = view_weights(V, F, photos)
    gains = photo_gains(V[F].mean(1), W, photos) if level else np.ones((len(photos), 3), np.float32)
    order = np.argsort(-W, axis=1)[:, :2] if W.shape[1] >= 2 else np.zeros((len(F), 1), np.int64)
    wt = np.take_along_axis(W, order, 1) ** 4  # sharpened: the best view dominates
    if not blend or wt.shape[1] < 2:
        wt = wt[:, :1]
    wt = wt / np.maximum(wt.sum(1, keepdims=True), 1e-30)
    seen_face = W.max(1) > 0
    acc = np.zeros((len(f), 3), np.float32)
    for r in range(wt.shape[1]):
        vr, wr = order[f, r], wt[f, r]
        for k, (rgb, K, R, t) in enumerate(photos):
            check()
            sel = np.flatnonzero((vr == k) & (wr > 1e-3) & seen_face[f])
            if sel.size == 0:
                continue
            u, v = _project(P[sel], K, R, t)
            acc[sel] += wr[sel, None] * gains[k] * bilinear(rgb[:, :, :3], u, v)
    tex = np.zeros((size, size, 3), np.uint8)
    filled = np.zeros((size, size), np.uint8)
    ok = seen_face[f]
    tex[ys[ok], xs[ok]] = np.clip(acc[ok], 0, 255).astype(np.uint8)
    filled[ys[ok], xs[ok]] = 1
    tex = _pad(tex, filled)
    out = Mesh(V, F, uv=np.stack([uv[:, 0], 1.0 - uv[:, 1]], 1), texture=tex, name=mesh.name)
    out.compute_normals()
    return out


def _pad(tex: np.ndarray, filled: np.ndarray, iterations: int = 8) -> np.ndarray:
    """Grow chart borders outward so that texture filtering does not bleed black seams."""
    import cv2

    k = np.ones((3, 3), np.uint8)
    tex = tex.copy()
    for _ in range(iterations):
        grown = cv2.dilate(tex, k)
        newly = (cv2.dilate(filled, k) > 0) & (filled == 0)
        tex[newly] = grown[newly]
        filled = filled | newly.astype(np.uint8)
    if filled.any():  # texels no photo saw: the average colour, not black
        tex[filled == 0] = tex[filled > 0].mean(0).astype(np.uint8)
    return tex
