"""Per-view depth maps on the CPU: plane-sweep stereo with multi-view consistency filtering.

pycolmap's PatchMatch stereo needs CUDA, so dense depth here is the classical plane sweep
(Collins 1996; Gallup et al., "Real-time plane-sweeping stereo with multiple sweeping
directions", CVPR 2007): for each reference view, fronto-parallel planes sampled
uniformly in inverse depth induce homographies into its neighbour views; the
zero-mean normalised cross-correlation (NCC) of warped windows scores each plane, the
scores of the best two neighbours are averaged (robust to occlusion, as in Kang et al.
2001), and the best plane is refined to sub-plane accuracy with a parabola.
Depths are then kept only where they agree with at least two neighbours' depth maps
(the geometric consistency test of COLMAP's fusion, Schonberger et al. ECCV 2016).
Neighbours are picked by triangulation angle, as in COLMAP's view selection.

Speed on the CPU: each plane is one ``cv2.warpPerspective`` per source view of a uint8
image (with an "inside the frame" channel), window means come from ``cv2.boxFilter``,
the best two sources are kept as running maxima (no sort), and only the bounding box of
the reference image's textured pixels is swept. A silhouette rim of half a window is
dropped after filtering: window-based stereo "fattens" foreground edges by that much.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engines.api import CancelToken, no_progress
from engines.types import Camera


@dataclass
class ViewDepth:
    """A depth map (z along the optical axis, NaN = unknown) with its camera."""

    name: str
    depth: np.ndarray
    score: np.ndarray
    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    rgb: np.ndarray
    inv_step: float = 0.0
    """Spacing of the sweep planes in inverse depth: the depth resolution is z^2 * inv_step."""


def scale_intrinsics(K: np.ndarray, s: float) -> np.ndarray:
    """K for an image resized by ``s`` (OpenCV pixel-centre convention: :meth:`Camera.scaled`)."""
    return Camera(K, width=1, height=1).scaled(s).K


def select_neighbors(
    cams, i: int, k: int = 4, min_deg: float = 4.0, max_deg: float = 45.0, center: np.ndarray | None = None
) -> list[int]:
    """Up to ``k`` views that see the scene centre at a good triangulation angle from view i."""
    C = cams.centers
    if center is None:
        center = C.mean(0)
    rays = center - C
    rays /= np.linalg.norm(rays, axis=1, keepdims=True) + 1e-12
    fwd = cams.R[:, 2, :]
    ang = np.degrees(np.arccos(np.clip(rays @ rays[i], -1, 1)))
    same_dir = fwd @ fwd[i] > np.cos(np.radians(75))
    ok = (ang >= min_deg) & (ang <= max_deg) & same_dir
    ok[i] = False
    cand = np.flatnonzero(ok)
    if len(cand) < 2:  # few views: take the nearest by angle, whatever it is
        cand = np.array([j for j in np.argsort(ang) if j != i and same_dir[j]][:k], int)
    # prefer ~15 degrees: enough baseline for depth, similar enough for matching
    order = np.argsort(np.abs(ang[cand] - 15.0))
    return [int(j) for j in cand[order][:k]]


def depth_range(K, R, t, size, points: np.ndarray) -> tuple[float, float] | None:
    """Near/far depth of the sparse points seen inside the image, with a margin."""
    if len(points) == 0:
        return None
    uv, z = Camera(K, R, t).project(points)  # NaN behind the camera: never inside
    ok = (uv[:, 0] >= 0) & (uv[:, 0] < size[0]) & (uv[:, 1] >= 0) & (uv[:, 1] < size[1])
    if ok.sum() < 8:
        return None
    lo, hi = np.percentile(z[ok], [1, 99])
    return float(lo * 0.8), float(hi * 1.25)


def _box(a: np.ndarray, win: int) -> np.ndarray:
    import cv2

    return cv2.boxFilter(a, cv2.CV_32F, (win, win), normalize=True, borderType=cv2.BORDER_REFLECT)


def plane_sweep(
    ref: np.ndarray,
    srcs: list[np.ndarray],
    K_ref,
    K_srcs,
    R_rels,
    t_rels,
    dmin: float,
    dmax: float,
    n_planes: int = 64,
    window: int = 7,
    min_texture: float = 2.0,
    cancel: CancelToken | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Depth and NCC score for the grey float32 ``ref`` image from source images.

    ``R_rels``/``t_rels`` map reference-camera points into each source camera. Each
    source is warped once per plane (uint8, with a second channel that marks texels
    inside the source frame); window sums come from box filters, so a plane costs a
    few whole-image passes per source.
    """
    import cv2

    H0, W0 = ref.shape
    inv = np.linspace(1.0 / dmax, 1.0 / dmin, n_planes)  # uniform in disparity
    ref = ref.astype(np.float32)
    mu_r = _box(ref, window)
    sd_r = np.sqrt(np.maximum(_box(ref * ref, window) - mu_r * mu_r, 0))
    # sweep only the box around textured pixels: plain background has no depth anyway
    ys, xs = np.nonzero(sd_r >= min_texture)
    if len(ys) == 0:
        return np.full((H0, W0), np.nan, np.float32), np.full((H0, W0), -1.0, np.float32)
    y0, y1 = max(ys.min() - window, 0), min(ys.max() + window + 1, H0)
    x0, x1 = max(xs.min() - window, 0), min(xs.max() + window + 1, W0)
    ref, mu_r, sd_r = (a[y0:y1, x0:x1] for a in (ref, mu_r, sd_r))
    h, w = ref.shape
    Kinv = np.linalg.inv(K_ref) @ np.array([[1.0, 0, x0], [0, 1, y0], [0, 0, 1]])
    n = np.array([[0.0, 0.0, 1.0]])
    cost = np.empty((n_planes, h, w), np.float32)
    # grey + "inside" channel: after warping, 255 marks texels wholly inside the source
    packed = [cv2.merge([np.clip(s, 0, 255).astype(np.uint8), np.full(s.shape, 255, np.uint8)]) for s in srcs]
    denom_r = sd_r + 1e-3
    for p, invd in enumerate(inv):
        if cancel is not None:
            cancel.raise_if_set()
        best1 = np.full((h, w), -1.0, np.float32)
        best2 = np.full((h, w), -1.0, np.float32)
        for src, Ks, Rr, tr in zip(packed, K_srcs, R_rels, t_rels):
            H = Ks @ (Rr + np.outer(tr, n) * invd) @ Kinv
            wp = cv2.warpPerspective(
                src,
                H,
                (w, h),
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=0,
            )
            warped = wp[:, :, 0].astype(np.float32)
            inside = wp[:, :, 1] == 255
            mu_s = _box(warped, window)
            var_s = _box(warped * warped, window) - mu_s * mu_s
            cov = _box(warped * ref, window) - mu_s * mu_r
            ncc = cov / (denom_r * np.sqrt(np.maximum(var_s, 1e-6)))
            ncc[~inside | (var_s < min_texture**2)] = -1.0
            # running best two: the mean of the best two means an occluded view does not veto
            np.maximum(best2, np.minimum(best1, ncc), out=best2)
            np.maximum(best1, ncc, out=best1)
        cost[p] = 0.5 * (best1 + best2) if len(srcs) >= 2 else best1
    best = np.argmax(cost, axis=0)
    score = np.take_along_axis(cost, best[None], 0)[0]
    # parabola through the neighbouring planes' scores, in inverse depth
    b0 = np.clip(best - 1, 0, n_planes - 1)
    b2 = np.clip(best + 1, 0, n_planes - 1)
    c0 = np.take_along_axis(cost, b0[None], 0)[0]
    c2 = np.take_along_axis(cost, b2[None], 0)[0]
    denom = c0 - 2 * score + c2
    curved = (denom < -1e-6) & (best > 0) & (best < n_planes - 1)
    off = np.zeros_like(score)
    off[curved] = 0.5 * (c0 - c2)[curved] / denom[curved]
    step = inv[1] - inv[0] if n_planes > 1 else 0.0
    invd = inv[best] + np.clip(off, -0.5, 0.5) * step
    depth = (1.0 / invd).astype(np.float32)
    edge = (best == 0) | (best == n_planes - 1)
    depth[(sd_r < min_texture) | edge] = np.nan
    full_d = np.full((H0, W0), np.nan, np.float32)
    full_s = np.full((H0, W0), -1.0, np.float32)
    full_d[y0:y1, x0:x1] = depth
    full_s[y0:y1, x0:x1] = score
    return full_d, full_s


def consistency_mask(
    i: int, maps: list[ViewDepth], neighbors: list[int], rel_tol: float = 0.01, min_agree: int = 2
) -> np.ndarray:
    """Pixels of map i whose 3D point lands on the same depth in >= min_agree neighbours."""
    ref = maps[i]
    h, w = ref.depth.shape
    ys, xs = np.mgrid[0:h, 0:w]
    d = ref.depth
    valid = np.isfinite(d)
    P = Camera(ref.K, ref.R, ref.t).unproject(np.column_stack([xs[valid], ys[valid]]), d[valid])
    agree = np.zeros(len(P), np.int32)
    for j in neighbors:
        m = maps[j]
        xy, z = Camera(m.K, m.R, m.t).project(P)
        front = np.isfinite(xy[:, 0])
        xy[~front] = -1.0
        u, v = np.round(xy).astype(np.int64).T
        hj, wj = m.depth.shape
        ins = front & (u >= 0) & (u < wj) & (v >= 0) & (v < hj)
        dj = np.full(len(P), np.nan, np.float32)
        dj[ins] = m.depth[v[ins], u[ins]]
        # relative tolerance: at least rel_tol, and no finer than one sweep plane
        tol = np.maximum(rel_tol, z * max(ref.inv_step, m.inv_step))
        agree += (np.abs(dj - z) < tol * z).astype(np.int32)
    need = min(min_agree, len(neighbors))
    out = np.zeros_like(valid)
    out[valid] = agree >= need
    return out


def _drop_rims(keep: np.ndarray, rim: int = 3, min_area: float = 0.005) -> np.ndarray:
    """Drop a 1 px rim around every gap, and ``rim`` px around large gaps (silhouettes
    against an empty or far background): windows straddling a silhouette "fatten" the
    foreground by up to half a window, so depth there belongs to the wrong surface.
    Small holes inside a surface keep the thin rim, so completeness does not suffer."""
    import cv2

    k = keep.astype(np.uint8)
    out = cv2.erode(k, np.ones((3, 3), np.uint8)) > 0
    if rim <= 1:
        return out
    n, lab, stats, _ = cv2.connectedComponentsWithStats(1 - k, connectivity=4)
    big = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] >= min_area * k.size)
    gap = np.isin(lab, big[big > 0])  # label 0: the kept pixels
    near = cv2.dilate(gap.astype(np.uint8), np.ones((2 * rim + 1, 2 * rim + 1), np.uint8)) > 0
    return out & ~near


def compute_depth_maps(
    images: dict[str, np.ndarray],
    cams,
    points: np.ndarray,
    max_size: int = 400,
    n_planes: int = 64,
    n_neighbors: int = 4,
    min_score: float = 0.5,
    rel_tol: float = 0.03,
    rim: int = 3,
    progress=no_progress,
    cancel: CancelToken | None = None,
) -> list[ViewDepth]:
    """Filtered depth maps for every registered camera (``images`` by camera name, RGB)."""
    import cv2

    cancel = cancel or CancelToken()
    n = len(cams)
    center = np.median(points, axis=0) if len(points) >= 10 else None
    grays, rgbs, Ks = [], [], []
    for i, name in enumerate(cams.names):
        rgb = images[name]
        if cams.k1 is not None and abs(cams.k1[i]) > 1e-6:
            rgb = cv2.undistort(rgb, cams.K[i], np.array([cams.k1[i], 0, 0, 0], np.float64))
        h, w = rgb.shape[:2]
        s = min(1.0, max_size / max(h, w))
        if s < 1.0:
            rgb = cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
        rgbs.append(rgb)
        grays.append(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32))
        Ks.append(scale_intrinsics(cams.K[i], rgb.shape[1] / w))
    fallback = None
    if len(points):
        dist = np.linalg.norm(points - cams.centers.mean(0), axis=1)
        fallback = (float(np.percentile(dist, 2)) * 0.3, float(np.percentile(dist, 98)) * 2.0)
    maps, neigh = [], []
    for i in range(n):
        cancel.raise_if_set()
        progress(i / n, f"Depth map {i + 1} of {n}")
        nb = select_neighbors(cams, i, n_neighbors, center=center)
        rng = depth_range(Ks[i], cams.R[i], cams.t[i], rgbs[i].shape[1::-1], points) or fallback
        if not nb or rng is None:
            d = np.full(grays[i].shape, np.nan, np.float32)
            maps.append(ViewDepth(cams.names[i], d, np.zeros_like(d), Ks[i], cams.R[i], cams.t[i], rgbs[i]))
            neigh.append(nb)
            continue
        R_rel = [cams.R[j] @ cams.R[i].T for j in nb]
        t_rel = [cams.t[j] - R @ cams.t[i] for j, R in zip(nb, R_rel)]
        depth, score = plane_sweep(
            grays[i],
            [grays[j] for j in nb],
            Ks[i],
            [Ks[j] for j in nb],
            R_rel,
            t_rel,
            rng[0],
            rng[1],
            n_planes,
            cancel=cancel,
        )
        depth[score < min_score] = np.nan
        maps.append(
            ViewDepth(
                cams.names[i],
                depth,
                score,
                Ks[i],
                cams.R[i],
                cams.t[i],
                rgbs[i],
                (1.0 / rng[0] - 1.0 / rng[1]) / max(n_planes - 1, 1),
            )
        )
        neigh.append(nb)
    progress(1.0, "Checking depth maps against each other")
    # with only a handful of photos, one agreeing neighbour (a left-right check) must do
    agree = 2 if n >= 6 else 1
    keep = [consistency_mask(i, maps, neigh[i], rel_tol, agree) for i in range(n)]
    for m, k in zip(maps, keep):
        k = _drop_rims(k, rim)
        m.depth = np.where(k, m.depth, np.nan).astype(np.float32)
    return maps
