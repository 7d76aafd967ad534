"""Build the MediaPipe face-mesh (478 landmarks) -> ICT Face Model correspondence, once.

Writes ``engines/avatar/data/ict/mediapipe_to_ict.npz``: for every MediaPipe landmark the
three vertices of one ICT triangle and barycentric weights on it (read by
``engines.avatar.correspondence``). Run from the repository root::

    .venv/bin/python tools/build_ict_correspondence.py

Inputs: the 468-vertex MediaPipe canonical face (the vertex block of mediapipe's
``modules/face_geometry/data/canonical_face_model.obj``, kept in
``engines/avatar/data/canonical_face_model.obj`` because the 0.10.21 wheel does not ship it;
centimetres, x towards the subject's left, y up, z out of the face: the ICT axes) with the
triangles of ``engines.avatar.topology``, and the ICT neutral head (``engines.avatar.ict``).

Method
------
(a) Similarity alignment (Umeyama, "Least-squares estimation of transformation parameters
    between two point patterns", PAMI 1991) of the canonical face onto the ICT neutral from
    the 51 inner points of the dlib / Multi-PIE 68 (``MEDIAPIPE_68`` below against ICT's
    ``landmarks68``; the jaw contour 0-16 is a view-dependent silhouette and is left out).
(b) Non-rigid registration of the canonical mesh onto the ICT face surface (M_Face
    triangles only: no eyeballs, mouth socket or back of the head) by optimal-step
    non-rigid ICP (Amberg, Romdhani and Vetter, "Optimal Step Nonrigid ICP Algorithms for
    Surface Registration", CVPR 2007): one affine transform per vertex, a stiffness term
    on the transforms' differences over the mesh edges (decreasing stiffness schedule),
    a closest-point data term (pairs dropped on the surface border, beyond a distance, or
    with normals more than ~60 degrees apart) and landmark terms. The landmark terms put
    the dlib-equivalent points on ICT's own 68 landmark vertices (jaw excepted) and the
    MediaPipe eyelid, inner-lip and outer-lip contours on the matching ICT feature curves:
    edge paths through ICT's landmarks (eyelid margin: the edge loop two rings out from
    the eye-socket border on which ICT's eye landmarks sit; inner lip: the contact line of
    the closed lips, an edge loop of the lip flesh), each contour point placed at the
    arc-length fraction it has between its dlib anchors on the canonical face.
(c) Each registered point is projected to the closest point of the ICT face surface
    (triangle + barycentrics); contour points keep their exact place on the feature-curve
    edge. The map is made left-right symmetric: MediaPipe mirror pairs (canonical x
    mirrored) are averaged through the mirror plane, right-side (-x) points and midline
    points are projected, and their partners take the mirrored ICT triangle (``m.mirror``)
    with the same barycentrics, or the projection of the mirrored point where the mirrored
    vertices are no triangle (quads split along the other diagonal).

Irises (468-477): MediaPipe's iris centres sit on the pupil centre of the ICT iris front
surface (468 is the centre of the image-left eye, the subject's right eye, ICT -x; 473 the
subject's left eye, +x); the rings are the points of the iris front a radius of 0.585 cm
(MediaPipe's iris model assumes an 11.7 mm iris diameter) from the centre seen from the
front, in MediaPipe's ring order: image right, top, image left, bottom (checked on the face
mesh's output for a real photo: 469 / 474 are at +x in the image, 470 / 475 above).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra
from scipy.sparse.linalg import splu
from scipy.spatial import cKDTree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engines.avatar.ict import load_model  # noqa: E402
from engines.avatar.topology import boundary_loops, face_topology  # noqa: E402
from engines.types import vertex_normals  # noqa: E402

OUT = ROOT / "engines" / "avatar" / "data" / "ict" / "mediapipe_to_ict.npz"

# MediaPipe face-mesh index of each of the dlib / Multi-PIE 68 points, in dlib order.
# Jaw 0-16 (face oval, subject's right to left), brows 17-26 (upper brow contour, outer to
# inner on the right, inner to outer on the left), nose bridge 27-30, nostrils 31-35, right
# eye 36-41 (outer corner, upper lid, inner corner, lower lid), left eye 42-47, outer lips
# 48-59, inner lips 60-67. Chosen on the mesh's contours (eye, lip, brow, oval) for the
# relative place along the contour that the dlib point has, checked against ICT's
# landmarks68 after the similarity alignment (residuals printed by this script).
MEDIAPIPE_68 = [
    127,
    234,
    93,
    132,
    58,
    136,
    150,
    176,
    152,
    400,
    379,
    365,
    288,
    361,
    323,
    454,
    356,
    70,
    63,
    105,
    66,
    107,
    336,
    296,
    334,
    293,
    300,
    168,
    197,
    5,
    4,
    98,
    97,
    2,
    326,
    327,
    33,
    160,
    158,
    133,
    153,
    144,
    362,
    385,
    387,
    263,
    373,
    380,
    61,
    39,
    37,
    0,
    267,
    269,
    291,
    321,
    314,
    17,
    84,
    91,
    78,
    81,
    13,
    311,
    308,
    402,
    14,
    178,
]
JAW = np.arange(17)

# Feature contours on the subject's right (-x) half, with their dlib anchors. The left half
# is the mirror image. (MediaPipe contour, {MediaPipe index: dlib index}, ring-following)
CURVES = [
    ([33, 246, 161, 160, 159, 158, 157, 173, 133], {33: 36, 160: 37, 158: 38, 133: 39}, "eye"),
    ([133, 155, 154, 153, 145, 144, 163, 7, 33], {133: 39, 153: 40, 144: 41, 33: 36}, "eye"),
    ([78, 191, 80, 81, 82, 13], {78: 60, 81: 61, 13: 62}, "mouth"),
    ([78, 95, 88, 178, 87, 14], {78: 60, 178: 67, 14: 66}, "mouth"),
    ([61, 185, 40, 39, 37, 0], {61: 48, 39: 49, 37: 50, 0: 51}, None),
    ([61, 146, 91, 181, 84, 17], {61: 48, 91: 59, 84: 58, 17: 57}, None),
]
IRIS_RADIUS = 0.585
"""cm; MediaPipe's iris landmark model takes the human iris diameter as 11.7 mm."""
IRIS_RING_DIRS = np.array([[1.0, 0, 0], [0, 1.0, 0], [-1.0, 0, 0], [0, -1.0, 0]])
"""Directions of ring points 1-4 of each iris (image right = +x, top = +y)."""


# ----------------------------------------------------------------------------- geometry
def umeyama(src: np.ndarray, dst: np.ndarray):
    """Similarity (s, R, t) minimising |s R src + t - dst|^2 (Umeyama 1991)."""
    ms, md = src.mean(0), dst.mean(0)
    s0, d0 = src - ms, dst - md
    U, S, Vt = np.linalg.svd(d0.T @ s0 / len(src))
    D = np.eye(3)
    D[2, 2] = np.sign(np.linalg.det(U @ Vt))
    R = U @ D @ Vt
    s = (S * np.diag(D)).sum() / ((s0**2).sum() / len(src))
    return s, R, md - s * R @ ms


def closest_on_triangles(p, a, b, c):
    """Closest points of p on triangles (a, b, c) (broadcast, ... x 3); barycentrics too.

    Ericson, "Real-Time Collision Detection" (2005), 5.1.5, vectorised: the Voronoi regions
    are tested in reverse order so that earlier tests win.
    """
    ab, ac, ap = b - a, c - a, p - a
    bp, cp = p - b, p - c
    dot = lambda x, y: np.einsum("...i,...i->...", x, y)  # noqa: E731
    d1, d2, d3, d4, d5, d6 = dot(ab, ap), dot(ac, ap), dot(ab, bp), dot(ac, bp), dot(ab, cp), dot(ac, cp)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    with np.errstate(divide="ignore", invalid="ignore"):
        den = va + vb + vc
        v = np.where(den != 0, vb / den, 1 / 3)
        w = np.where(den != 0, vc / den, 1 / 3)
        bary = np.stack([1 - v - w, v, w], -1)
        t_bc = (d4 - d3) / ((d4 - d3) + (d5 - d6))
        t_ac = d2 / (d2 - d6)
        t_ab = d1 / (d1 - d3)
    z = np.zeros_like(d1)
    regions = [  # (condition, barycentrics), lowest priority first
        ((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0), np.stack([z, 1 - t_bc, t_bc], -1)),
        ((vb <= 0) & (d2 >= 0) & (d6 <= 0), np.stack([1 - t_ac, z, t_ac], -1)),
        ((d6 >= 0) & (d5 <= d6), np.stack([z, z, z + 1], -1)),
        ((vc <= 0) & (d1 >= 0) & (d3 <= 0), np.stack([1 - t_ab, t_ab, z], -1)),
        ((d3 >= 0) & (d4 <= d3), np.stack([z, z + 1, z], -1)),
        ((d1 <= 0) & (d2 <= 0), np.stack([z + 1, z, z], -1)),
    ]
    for cond, bc in regions:
        bary = np.where(cond[..., None], bc, bary)
    q = bary[..., :1] * a + bary[..., 1:2] * b + bary[..., 2:] * c
    return q, bary


class Surface:
    """Closest-point queries on a triangle set (candidates from a centroid k-d tree)."""

    def __init__(self, V: np.ndarray, F: np.ndarray, k: int = 48):
        self.V, self.F, self.k = V, F, min(k, len(F))
        self.tree = cKDTree(V[F].mean(1))
        n = np.cross(V[F[:, 1]] - V[F[:, 0]], V[F[:, 2]] - V[F[:, 0]])
        self.normals = n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)

    def closest(self, P: np.ndarray):
        """(points, triangle index into F, barycentrics) of the closest surface points."""
        _, cand = self.tree.query(P, k=self.k)
        T = self.F[cand]
        q, bc = closest_on_triangles(P[:, None], self.V[T[..., 0]], self.V[T[..., 1]], self.V[T[..., 2]])
        best = np.argmin(((q - P[:, None]) ** 2).sum(-1), 1)
        r = np.arange(len(P))
        return q[r, best], cand[r, best], bc[r, best]


# ----------------------------------------------------------------------------- ICT features
def edge_list(F: np.ndarray) -> np.ndarray:
    e = np.concatenate([F[:, [0, 1]], F[:, [1, 2]], F[:, [2, 0]]])
    return np.unique(np.sort(e, 1), axis=0)


def graph(n: int, e: np.ndarray, w: np.ndarray):
    G = sp.coo_matrix((w, (e[:, 0], e[:, 1])), shape=(n, n)).tocsr()
    return G + G.T


def ring_path(G, a: int, b: int) -> list[int]:
    _, pred = dijkstra(G, indices=a, return_predecessors=True)
    p = [b]
    while p[-1] != a:
        if p[-1] < 0:
            raise RuntimeError(f"no path {a} -> {b}")
        p.append(int(pred[p[-1]]))
    return p[::-1]


def point_on_polyline(V: np.ndarray, path: list[int], f: float):
    """(u, v, t): the point at arc-length fraction f of the path, on edge u-v at (1-t, t)."""
    P = V[path]
    seg = np.linalg.norm(np.diff(P, axis=0), axis=1)
    s = np.concatenate([[0], np.cumsum(seg)]) / seg.sum()
    k = int(np.clip(np.searchsorted(s, f, side="right") - 1, 0, len(seg) - 1))
    t = float(np.clip((f - s[k]) / max(s[k + 1] - s[k], 1e-12), 0, 1))
    return path[k], path[k + 1], t


def pupil(V: np.ndarray, F: np.ndarray):
    """Pupil of one ICT iris: (centre, three rim vertices, their barycentric weights).

    The ICT iris is a closed shell whose front is an annulus: the pupil is an opening of
    1.4 mm radius (a 20-vertex loop). The inner border loop of the front-facing triangles is
    that rim; its centroid is the pupil centre, written as a barycentric combination of
    three rim vertices about 120 degrees apart (the rim is a planar circle, so it is exact).
    """
    n = np.cross(V[F[:, 1]] - V[F[:, 0]], V[F[:, 2]] - V[F[:, 0]])
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    cz = V[F].mean(1)[:, 2]
    front = F[(n[:, 2] > 0.7) & (cz > cz.max() - 0.4)]
    loops = boundary_loops(front)
    rim = min(loops, key=len)
    centre = V[rim].mean(0)
    tri = rim[[0, len(rim) // 3, (2 * len(rim)) // 3]]
    T = V[tri]
    w = np.linalg.lstsq(np.vstack([T.T, np.ones(3)]), np.r_[centre, 1.0], rcond=None)[0]
    assert (w > 0).all(), w
    return centre, tri, w


def ray_hit_front(V: np.ndarray, F: np.ndarray, xy: np.ndarray):
    """First hit of the ray from +z straight down -z at (x, y) on triangles F: (tri, bary)."""
    A, B, C = V[F[:, 0]], V[F[:, 1]], V[F[:, 2]]
    o = np.array([xy[0], xy[1], 100.0])
    d = np.array([0, 0, -1.0])
    e1, e2 = B - A, C - A
    p = np.cross(d, e2)
    det = (e1 * p).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        tv = o - A
        u = (tv * p).sum(1) / det
        q = np.cross(tv, e1)
        v = (q @ d) / det
        t = (e2 * q).sum(1) / det
    hit = np.flatnonzero((u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0) & np.isfinite(t))
    if not len(hit):
        raise RuntimeError(f"no iris triangle under {xy}")
    h = hit[np.argmin(t[hit])]
    return h, np.array([1 - u[h] - v[h], u[h], v[h]])


# ----------------------------------------------------------------------------- N-ICP
def nicp(src, faces, surf: Surface, border_tris, lm_idx, lm_pos, lm_w, stiffness, gamma=1.0, iters=4):
    """Optimal-step non-rigid ICP (Amberg et al. 2007); returns the deformed vertices."""
    n = len(src)
    e = edge_list(faces)
    ne = len(e)
    rows = np.repeat(np.arange(4 * ne), 2)
    cols = np.stack([4 * e[:, 0][:, None] + np.arange(4), 4 * e[:, 1][:, None] + np.arange(4)], -1).reshape(-1)
    vals = np.tile([1.0, -1.0], 4 * ne) * np.repeat(np.tile([1, 1, 1, gamma], ne), 2)
    MG = sp.csr_matrix((vals, (rows, cols)), shape=(4 * ne, 4 * n))
    Dh = np.c_[src, np.ones(n)]
    D = sp.csr_matrix((Dh.ravel(), (np.repeat(np.arange(n), 4), np.arange(4 * n))), shape=(n, 4 * n))
    DL = D[lm_idx]
    X = np.tile(np.vstack([np.eye(3), np.zeros((1, 3))]), (n, 1))
    for alpha in stiffness:
        for _ in range(iters):
            cur = D @ X
            q, tri, _ = surf.closest(cur)
            # normals of the deformed mesh
            nrm = vertex_normals(cur, faces)
            dist = np.linalg.norm(q - cur, axis=1)
            ok = (~border_tris[tri]) & ((surf.normals[tri] * nrm).sum(1) > 0.5) & (dist < max(1.0, 3 * np.median(dist)))
            w = ok.astype(float)
            W = sp.diags(w)
            A = sp.vstack([alpha * MG, W @ D, sp.diags(lm_w) @ DL]).tocsc()
            B = np.vstack([np.zeros((4 * ne, 3)), w[:, None] * q, lm_w[:, None] * lm_pos])
            X = splu((A.T @ A).tocsc()).solve(A.T @ B)
    return D @ X


# ----------------------------------------------------------------------------- main
def build(verbose: bool = True) -> dict:
    m = load_model()
    V = m.neutral.astype(np.float64)
    nf = m.parts["face"][1]
    Fall = m.triangles[m.triangle_material == m.materials.index("M_Face")]
    Fface = Fall[(Fall < nf).all(1)]
    mirror = m.mirror
    R_x = np.array([-1.0, 1, 1])

    topo = face_topology()
    C = topo.canonical * 100.0  # metres -> cm
    mp_mirror = topo.mirror
    mp68 = np.array(MEDIAPIPE_68)
    L68 = V[m.landmarks68]
    # dlib mirror pairs, from ICT's symmetric landmarks
    dmir = np.array([int(np.flatnonzero(m.landmarks68 == mirror[v])[0]) for v in m.landmarks68])
    assert (mp_mirror[mp68] == mp68[dmir]).all(), "MEDIAPIPE_68 is not left-right symmetric"

    # (a) similarity from the 51 inner points
    inner = np.setdiff1d(np.arange(68), JAW)
    s, R, t = umeyama(C[mp68[inner]], L68[inner])
    A0 = C @ (s * R).T + t
    res_sim = np.linalg.norm(A0[mp68] - L68, axis=1) * 10

    # ICT feature curves (symmetric edge graph; ring-following cost near eyes and mouth)
    e = edge_list(Fface)
    eset = set(map(tuple, e))
    sym = np.array([tuple(sorted(x)) in eset for x in mirror[e]])
    es = e[sym]
    length = np.linalg.norm(V[es[:, 0]] - V[es[:, 1]], axis=1)
    loops = boundary_loops(Fface)
    hop_graph = graph(nf, e, np.ones(len(e)))
    lm = m.landmarks68
    loop_of = {}
    for name, dl in (("eye", 36), ("mouth", 60)):
        # the border loop nearest the feature (the eye-socket or mouth-socket border)
        li = min(range(1, len(loops)), key=lambda i: np.linalg.norm(V[loops[i]] - V[lm[dl]], axis=1).min())
        loop_of[name] = loops[li]
    G_plain = graph(nf, es, length)
    G_ring = {}
    for name, loop in loop_of.items():
        hop = dijkstra(hop_graph, indices=loop, min_only=True, unweighted=True)
        G_ring[name] = graph(nf, es, length * (1 + 8 * np.abs(hop[es[:, 0]] - hop[es[:, 1]])))

    # contour landmarks: (mediapipe index -> (u, v, t) on an ICT edge), right half + midline
    curve_pts: dict[int, tuple[int, int, float]] = {}
    for contour, anchors, kind in CURVES:
        G = G_ring[kind] if kind else G_plain
        idx = [i for i, c in enumerate(contour) if c in anchors]
        for a, b in zip(idx, idx[1:]):
            seg = contour[a : b + 1]
            path = ring_path(G, int(lm[anchors[seg[0]]]), int(lm[anchors[seg[-1]]]))
            arc = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(A0[seg], axis=0), axis=1))])
            for j, f in zip(seg, arc / arc[-1]):
                curve_pts[j] = point_on_polyline(V, path, float(f))
    for j in list(curve_pts):
        u, v, tt = curve_pts[j]
        if mp_mirror[j] != j:
            curve_pts[int(mp_mirror[j])] = (int(mirror[u]), int(mirror[v]), tt)

    def curve_xyz(j):
        u, v, tt = curve_pts[j]
        return (1 - tt) * V[u] + tt * V[v]

    # landmark terms: 68 (no jaw) on ICT's landmarks, contour points on the curves
    lm_idx, lm_pos, lm_w = [], [], []
    for i in inner:
        j = int(mp68[i])
        if j not in curve_pts:
            lm_idx.append(j), lm_pos.append(L68[i]), lm_w.append(4.0)
    for j in curve_pts:
        lm_idx.append(j), lm_pos.append(curve_xyz(j)), lm_w.append(6.0)
    lm_idx, lm_pos, lm_w = np.array(lm_idx), np.array(lm_pos), np.array(lm_w)

    # (b) N-ICP
    surf = Surface(V, Fface)
    border_v = np.zeros(nf, bool)
    for loop in loops:
        border_v[loop] = True
    border_tris = border_v[Fface].any(1)
    P = nicp(A0, topo.faces, surf, border_tris, lm_idx, lm_pos, lm_w, stiffness=[50.0, 20.0, 10.0, 5.0, 3.0, 2.0])
    for j in curve_pts:
        P[j] = curve_xyz(j)

    # (c) symmetric projection
    P = 0.5 * (P + P[mp_mirror] * R_x)
    P[mp_mirror == np.arange(468), 0] = 0.0
    tri_index = {tuple(sorted(f)): f for f in map(tuple, Fface)}
    edge_tri = {}
    for f in Fface:
        for k in range(3):
            edge_tri.setdefault(tuple(sorted((f[k], f[(k + 1) % 3]))), f)
    verts = np.zeros((478, 3), np.int64)
    bary = np.zeros((478, 3))

    def put(j, f, wts):
        verts[j], bary[j] = f, wts

    def on_edge(j):
        u, v, tt = curve_pts[j]
        f = edge_tri[tuple(sorted((u, v)))]
        wts = np.zeros(3)
        wts[list(f).index(u)] += 1 - tt
        wts[list(f).index(v)] += tt
        put(j, f, wts)

    right = [j for j in range(468) if C[j, 0] <= 0]
    for j in right:
        if j in curve_pts:
            on_edge(j)
            if mp_mirror[j] != j:
                on_edge(int(mp_mirror[j]))
            continue
        q, ti, bc = surf.closest(P[j][None])
        put(j, Fface[ti[0]], bc[0])
        k = int(mp_mirror[j])
        if k == j:
            continue
        mf = mirror[Fface[ti[0]]]
        if tuple(sorted(mf)) in tri_index:
            put(k, mf, bc[0])
        else:
            q2, ti2, bc2 = surf.closest((q * R_x))
            put(k, Fface[ti2[0]], bc2[0])

    # irises
    Fr = m.triangles[m.triangle_material == m.materials.index("M_IrisRight")]
    Fl = m.triangles[m.triangle_material == m.materials.index("M_IrisLeft")]
    Fl_index = {tuple(sorted(f)): f for f in map(tuple, Fl)}
    centre, rim3, w3 = pupil(V, Fr)
    put(468, rim3, w3)
    put(473, mirror[rim3], w3)
    for k, d in enumerate(IRIS_RING_DIRS, start=1):
        h, bc = ray_hit_front(V, Fr, centre[:2] + IRIS_RADIUS * d[:2])
        put(468 + k, Fr[h], bc)
        k_left = 473 + [3, 2, 1, 4][k - 1]  # right <-> left swap under the mirror
        mf = mirror[Fr[h]]
        if tuple(sorted(mf)) in Fl_index:
            put(k_left, mf, bc)
        else:
            h2, bc2 = ray_hit_front(V, Fl, (bc @ V[Fr[h]])[:2] * R_x[:2])
            put(k_left, Fl[h2], bc2)

    bary = np.clip(bary, 0, None)
    bary /= bary.sum(1, keepdims=True)
    mapped = np.einsum("ij,ijk->ik", bary, V[verts])

    # ----- report
    res = np.linalg.norm(mapped[mp68] - L68, axis=1) * 10
    mir_pairs = np.r_[mp_mirror, [473, 476, 475, 474, 477, 468, 471, 470, 469, 472]]
    sym_err = np.linalg.norm(mapped * R_x - mapped[mir_pairs], axis=1) * 10
    s2, R2, t2 = umeyama(C, mapped[:468])
    rms = np.sqrt((((C @ (s2 * R2).T + t2) - mapped[:468]) ** 2).sum(1).mean()) * 10
    reg_rms = np.sqrt(((P - mapped[:468]) ** 2).sum(1).mean()) * 10
    stats = dict(res_sim=res_sim, res=res, sym_err=sym_err, rms=rms, reg_rms=reg_rms)
    if verbose:
        np.set_printoptions(precision=1, suppress=True, linewidth=120)
        print(f"similarity: scale {s:.4f}")
        print("68-point residuals after similarity (mm):\n", res_sim)
        print(
            f"  inner 51: mean {res_sim[inner].mean():.2f} max {res_sim[inner].max():.2f}; "
            f"jaw: mean {res_sim[JAW].mean():.1f} max {res_sim[JAW].max():.1f}"
        )
        print("68-point residuals of the final map (mm):\n", res)
        print(
            f"  inner 51: mean {res[inner].mean():.2f} max {res[inner].max():.2f}; "
            f"jaw: mean {res[JAW].mean():.1f} max {res[JAW].max():.1f}"
        )
        print(f"symmetry error (mm): max {sym_err.max():.3f} mean {sym_err.mean():.3f}")
        print(f"canonical vs map after similarity: RMS {rms:.2f} mm")
        print(f"registered mesh to projected points: RMS {reg_rms:.3f} mm")
        for a, b, name in (
            (13, 14, "inner lip mid"),
            (82, 87, "inner lip"),
            (159, 145, "right eye"),
            (386, 374, "left eye"),
        ):
            print(f"  gap {name} {a}-{b}: {10 * (mapped[a, 1] - mapped[b, 1]):.2f} mm")
        print(
            f"  ICT eye opening (lm 37/38 - 41/40): {10 * (L68[[37, 38], 1].mean() - L68[[41, 40], 1].mean()):.2f} mm"
        )
        print("iris centres", mapped[468], mapped[473])
    return dict(
        vertices=verts.astype(np.int32),
        barycentric=bary.astype(np.float32),
        landmarks68_mediapipe=mp68.astype(np.int32),
        stats=stats,
    )


METHOD = (
    "Umeyama similarity on 51 dlib-68 points, optimal-step non-rigid ICP (Amberg et al. 2007) "
    "of the MediaPipe canonical face onto ICT M_Face with dlib and eyelid/lip contour landmark "
    "terms, closest-point barycentrics, mirror-symmetrised; irises on the ICT iris front "
    "(centre = pupil, ring at 0.585 cm: right, top, left, bottom). tools/build_ict_correspondence.py"
)


def main() -> None:
    r = build()
    np.savez_compressed(
        OUT,
        vertices=r["vertices"],
        barycentric=r["barycentric"],
        landmarks68_mediapipe=r["landmarks68_mediapipe"],
        method=np.array(METHOD),
    )
    print(f"wrote {OUT.relative_to(ROOT)} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
