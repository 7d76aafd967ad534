"""Accuracy figures for reconstructions with a known ground truth (tests, benchmarks).

* Similarity alignment of camera centres by Umeyama's closed form (Umeyama, "Least-squares
  estimation of transformation parameters between two point patterns", PAMI 1991):
  SfM recovers a scene only up to scale, rotation and translation.
* Chamfer distance and F-score at a threshold between surfaces sampled as points, as in
  the Tanks and Temples benchmark (Knapitsch et al., SIGGRAPH 2017).
"""

from __future__ import annotations

import numpy as np


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Scale s, rotation R, translation t minimising |dst - (s R src + t)|^2."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    cov = b.T @ a / len(src)
    U, D, Vt = np.linalg.svd(cov)
    S = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2, 2] = -1
    R = U @ S @ Vt
    var = (a**2).sum() / len(src)
    s = float(np.trace(np.diag(D) @ S) / max(var, 1e-18))
    return s, R, mu_d - s * R @ mu_s


def apply_similarity(points: np.ndarray, s: float, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    return s * np.asarray(points, np.float64) @ R.T + t


def sample_surface(vertices: np.ndarray, faces: np.ndarray, n: int = 50000, seed: int = 0) -> np.ndarray:
    """Points spread uniformly by area over a triangle mesh."""
    v, f = np.asarray(vertices, np.float64), np.asarray(faces, np.int64)
    if len(f) == 0:
        return v.copy()
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    rng = np.random.default_rng(seed)
    k = rng.choice(len(f), size=n, p=area / area.sum())
    r1, r2 = rng.random(n), rng.random(n)
    s1 = np.sqrt(r1)
    return (1 - s1)[:, None] * a[k] + (s1 * (1 - r2))[:, None] * b[k] + (s1 * r2)[:, None] * c[k]


def chamfer_fscore(pred: np.ndarray, gt: np.ndarray, threshold: float) -> dict:
    """Mean symmetric Chamfer distance, accuracy, completeness and F-score at ``threshold``."""
    from scipy.spatial import cKDTree

    d_pg = cKDTree(gt).query(pred)[0]
    d_gp = cKDTree(pred).query(gt)[0]
    precision = float((d_pg < threshold).mean())
    recall = float((d_gp < threshold).mean())
    f = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "chamfer": float(0.5 * (d_pg.mean() + d_gp.mean())),
        "accuracy": float(d_pg.mean()),
        "completeness": float(d_gp.mean()),
        "precision": precision,
        "recall": recall,
        "fscore": f,
    }


def camera_error(est_centers: np.ndarray, gt_centers: np.ndarray) -> tuple[np.ndarray, tuple]:
    """Per-camera centre error after similarity alignment of the estimate onto the truth,
    and the similarity (s, R, t) used."""
    sim = umeyama(est_centers, gt_centers)
    aligned = apply_similarity(est_centers, *sim)
    return np.linalg.norm(aligned - gt_centers, axis=1), sim


def visible_from_cameras(
    points: np.ndarray,
    vertices: np.ndarray,
    faces: np.ndarray,
    K: np.ndarray,
    R: np.ndarray,
    t: np.ndarray,
    size: tuple[int, int],
    min_views: int = 1,
) -> np.ndarray:
    """Which surface points at least ``min_views`` cameras see (in frame, unoccluded):
    the part of a ground truth that any reconstruction from these photos could recover."""
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(np.asarray(vertices, np.float32)), o3d.core.Tensor(np.asarray(faces, np.uint32))
    )
    w, h = size
    count = np.zeros(len(points), np.int32)
    from engines.types import Camera

    for Ki, Ri, ti in zip(K, R, t):
        cam = Camera(K=Ki, R=Ri, t=ti, width=w, height=h)
        C = cam.centre
        uv, _z = cam.project(points)
        u, v = uv[:, 0], uv[:, 1]  # NaN behind the camera: not inside
        ins = (u >= 0) & (u < w) & (v >= 0) & (v < h)
        d = points - C
        dist = np.linalg.norm(d, axis=1) + 1e-12
        rays = np.concatenate([np.broadcast_to(C, d.shape), d / dist[:, None]], 1).astype(np.float32)
        hit = scene.cast_rays(o3d.core.Tensor(rays))["t_hit"].numpy()
        count += ins & (hit > dist * (1 - 1e-3) - 1e-4)
    return count >= min_views
