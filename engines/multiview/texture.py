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

import numpy as np

from engines.types import Mesh


def bilinear(img: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Sample an H x W x C image at float pixel positions (clamped to the image)."""
    h, w = img.shape[:2]
    u = np.clip(u, 0, w - 1.001)
    v = np.clip(v, 0, h - 1.001)
    u0, v0 = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    a, b = (u - u0)[:, None], (v - v0)[:, None]
    im = img.astype(np.float32)
    return ((1 - a) * (1 - b) * im[v0, u0] + a * (1 - b) * im[v0, u0 + 1]
            + (1 - a) * b * im[v0 + 1, u0] + a * b * im[v0 + 1, u0 + 1])


def atlas(vertices: np.ndarray, faces: np.ndarray, size: int):
    """(vertex map, faces, uv in 0..1 with v down) from xatlas, tuned for speed."""
    import xatlas

    co = xatlas.ChartOptions()
    co.max_iterations = 1
    po = xatlas.PackOptions()
    po.resolution = int(size)
    po.padding = 2
    po.rotate_charts = False  # halves packing time; costs a little atlas space
    a = xatlas.Atlas()
    a.add_mesh(np.ascontiguousarray(vertices, np.float32), np.ascontiguousarray(faces, np.uint32))
    a.generate(co, po)
    vmap, idx, uv = a[0]
    return vmap, idx.astype(np.int64), uv


def best_view_per_face(V, F, photos) -> np.ndarray:
    """Index of the photo that sees each face best (-1: none sees it)."""
    import open3d as o3d

    centres = V[F].mean(1)
    fn = np.cross(V[F[:, 1]] - V[F[:, 0]], V[F[:, 2]] - V[F[:, 0]])
    fn /= np.linalg.norm(fn, axis=1, keepdims=True) + 1e-12
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(V.astype(np.float32)), o3d.core.Tensor(F.astype(np.uint32)))
    best = np.full(len(F), -1, np.int64)
    best_w = np.zeros(len(F))
    for k, (rgb, K, R, t) in enumerate(photos):
        C = -R.T @ t
        x = centres @ R.T + t
        z = x[:, 2]
        zs = np.where(z > 1e-9, z, 1.0)
        u, v = x[:, 0] / zs * K[0, 0] + K[0, 2], x[:, 1] / zs * K[1, 1] + K[1, 2]
        h, w = rgb.shape[:2]
        view = C - centres
        dist = np.linalg.norm(view, axis=1) + 1e-12
        cos = np.abs(np.einsum("nd,nd->n", fn, view)) / dist  # two-sided: winding may be either way
        wgt = cos / dist  # frontal and close: more texels per triangle
        m = 2.0
        ok = (z > 0) & (u >= m) & (u <= w - 1 - m) & (v >= m) & (v <= h - 1 - m) & (cos > 0.1) & (wgt > best_w)
        cand = np.flatnonzero(ok)
        if cand.size == 0:
            continue
        rays = np.concatenate([np.broadcast_to(C, (cand.size, 3)), -view[cand] / dist[cand, None]], 1)
        hit = scene.cast_rays(o3d.core.Tensor(rays.astype(np.float32)))["t_hit"].numpy()
        cand = cand[hit > dist[cand] * (1 - 1e-3) - 1e-6]
        best[cand] = k
        best_w[cand] = wgt[cand]
    return best


def bake_texture(mesh: Mesh, photos, size: int = 2048) -> Mesh:
    """Texture atlas for ``mesh`` from ``photos`` = [(rgb, K, R, t)] (world->camera, OpenCV)."""
    import cv2

    vmap, F, uv = atlas(mesh.vertices, mesh.faces, size)
    V = mesh.vertices[vmap].astype(np.float64)
    uvpx = uv * (size - 1)
    tri_id = np.zeros((size, size), np.int32)
    for k, tri in enumerate(np.round(uvpx[F] * 16).astype(np.int32)):
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
    view = best_view_per_face(V, F, photos)[f]
    tex = np.zeros((size, size, 3), np.uint8)
    filled = np.zeros((size, size), np.uint8)
    for k, (rgb, K, R, t) in enumerate(photos):
        sel = np.flatnonzero(view == k)
        if sel.size == 0:
            continue
        x = P[sel] @ R.T + t
        u = x[:, 0] / x[:, 2] * K[0, 0] + K[0, 2]
        v = x[:, 1] / x[:, 2] * K[1, 1] + K[1, 2]
        tex[ys[sel], xs[sel]] = np.clip(bilinear(rgb[:, :, :3], u, v), 0, 255).astype(np.uint8)
        filled[ys[sel], xs[sel]] = 1
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
