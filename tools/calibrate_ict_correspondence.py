"""Calibrate the MediaPipe -> ICT correspondence on renders of the ICT model itself.

The geometric registration (:mod:`tools.build_ict_correspondence`) puts each MediaPipe
landmark where MediaPipe's canonical face has it after a non-rigid fit. What the fit needs
is where MediaPipe's *detector* puts that landmark on a real face of this topology. Both
differ by several pixels on eyelids, lips and the nose (measured: eye contour 3.7 % of the
inter-ocular distance, 4 px low, on a frontal render), and such a bias is read by the fit
as expression (eyes wider, lips apart) or identity.

So the detector is run on shaded (untextured, Lambertian) renders of ICT heads: the mean
head and random identities (unit-Gaussian coefficients scaled by 0.7), at yaws -20..20 and
pitches -10..10 degrees, under two lights; every detected landmark is cast back onto the
rendered surface (the rasteriser's triangle and barycentrics at that pixel) and carried to
the mean head through the shared topology. Per landmark the median of those points, made
left-right symmetric, projected onto the face surface, is the new correspondence. This
is the "landmark embedding from the detector's own output" of the model-fitting
literature (e.g. the FLAME landmark embedding of Li et al. 2017, refit to a detector in
DECA, Feng et al. 2021).

Landmarks that an untextured render cannot show are kept from the geometric map: the
brows (MediaPipe places them on the hair of the brows, which a shaded head lacks) and the
ten iris points (no iris is drawn). The script rewrites
``engines/avatar/data/ict/mediapipe_to_ict.npz``, keeping the other arrays, and records
which landmarks it calibrated and the mean residual before and after.

    .venv/bin/python tools/calibrate_ict_correspondence.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "engines" / "avatar" / "data" / "ict" / "mediapipe_to_ict.npz"
YAWS = (-20.0, -10.0, 0.0, 10.0, 20.0)
PITCHES = (-10.0, 0.0, 10.0)
N_IDENTITIES = 4
SIZE = (480, 560)
FOCAL = 1200.0


def _rot(pitch, yaw):
    a, b = np.radians(pitch), np.radians(yaw)
    Rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    Ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    return Rx @ Ry


def _skip_landmarks() -> np.ndarray:
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_LEFT_EYEBROW, FACEMESH_RIGHT_EYEBROW

    brows = {i for e in FACEMESH_LEFT_EYEBROW | FACEMESH_RIGHT_EYEBROW for i in e}
    # the upper brow rows that face mesh does not list as brow edges but that sit on the brows
    brows |= {46, 53, 52, 65, 55, 70, 63, 105, 66, 107, 276, 283, 282, 295, 285, 300, 293, 334, 296, 336}
    return np.array(sorted(brows | set(range(468, 478))), np.int64)


def render_shaded(V, F, n, R, t, K, light):
    from engines.avatar.raster import interpolate, project, rasterize

    xy, z = project(K, R, t, V)
    r = rasterize(xy, z, F, SIZE)
    nn = interpolate(r, F, n.astype(np.float32))
    nc = nn @ R.T  # normals in the camera frame: light from the camera side
    shade = np.clip(-(nc @ light), 0, 1) * 0.75 + 0.18
    img = (np.repeat(shade[..., None], 3, 2) * [232, 192, 170]).astype(np.uint8)
    img[~r.mask] = (45, 45, 48)
    return img, r


def main() -> None:
    from engines.avatar.correspondence import landmark_points
    from engines.avatar.fit import identity_vertices
    from engines.avatar.ict import load_model
    from engines.avatar.topology import face_topology
    from engines.types import vertex_normals
    from engines.api import EngineError
    from engines.face import detect_landmarks
    from tools.build_ict_correspondence import Surface

    m = load_model()
    mats = [m.materials.index(x) for x in ("M_Face", "M_BackHead", "M_ScleraLeft", "M_ScleraRight", "M_EyeLashes")]
    F = m.triangles[np.isin(m.triangle_material, mats)]
    K = np.array([[FOCAL, 0, (SIZE[0] - 1) / 2], [0, FOCAL, (SIZE[1] - 1) / 2], [0, 0, 1.0]])
    rng = np.random.default_rng(0)
    identities = [np.zeros(100, np.float32)] + [
        (rng.normal(0, 1, 100) * 0.7).astype(np.float32) for _ in range(N_IDENTITIES)
    ]
    lights = [np.array([0.3, -0.4, 1.0]), np.array([-0.35, -0.3, 1.0])]
    lights = [li / np.linalg.norm(li) for li in lights]
    neutral = m.neutral.astype(np.float64)
    samples = [[] for _ in range(478)]
    before = []
    for a in identities:
        V = identity_vertices(a).astype(np.float64) * 0.01
        n = vertex_normals(V, F)
        P3 = landmark_points(V)
        for yaw in YAWS:
            for pitch in PITCHES:
                R = np.diag([1.0, -1, -1]) @ _rot(pitch, yaw)
                t = np.array([0.0, 0.02, 0.55])
                for light in lights:
                    img, r = render_shaded(V, F, n, R, t, K, light)
                    try:
                        lm = detect_landmarks(img, "the render", method="face_landmarker")
                    except EngineError:
                        continue
                    from engines.avatar.raster import project

                    pxy, _ = project(K, R, t, P3)
                    before.append(np.linalg.norm(lm.xy - pxy, axis=1)[:468].mean() / lm.iod_px * 100)
                    px = np.round(lm.xy).astype(int)
                    ok = (px[:, 0] >= 0) & (px[:, 0] < SIZE[0]) & (px[:, 1] >= 0) & (px[:, 1] < SIZE[1])
                    for j in np.flatnonzero(ok):
                        tri = r.tri[px[j, 1], px[j, 0]]
                        if tri < 0:
                            continue
                        b = r.bary[px[j, 1], px[j, 0]]
                        samples[j].append(b @ neutral[F[tri]])
    print(f"{len(before)} renders detected; mean landmark offset before: {np.mean(before):.2f} % IOD")
    d = dict(np.load(OUT))
    skip = set(_skip_landmarks().tolist())
    mirror = face_topology().mirror
    target = np.full((478, 3), np.nan)
    for j in range(468):
        if j not in skip and len(samples[j]) >= 10:
            target[j] = np.median(np.array(samples[j]), 0)
    # symmetric: average each point with its mirror partner's reflection
    sym = target.copy()
    for j in range(468):
        k = mirror[j]
        if np.isfinite(target[j]).all() and np.isfinite(target[k]).all():
            sym[j] = (target[j] + target[k] * [-1, 1, 1]) / 2
            if k == j:
                sym[j, 0] = 0.0
    face = m.triangles[m.triangle_material == m.materials.index("M_Face")]
    surf = Surface(neutral, face)
    done = np.flatnonzero(np.isfinite(sym).all(1))
    q, tri_i, bc = surf.closest(sym[done])
    verts, bary = d["vertices"].copy(), d["barycentric"].copy()
    verts[done] = face[tri_i]
    bary[done] = np.clip(bc, 0, 1) / np.clip(bc, 0, 1).sum(1, keepdims=True)
    moved = np.linalg.norm(q - landmark_points(neutral)[done], axis=1) * 10
    print(f"calibrated {len(done)} landmarks; moved by median {np.median(moved):.2f} mm, max {moved.max():.2f} mm")
    d["vertices"], d["barycentric"] = verts.astype(np.int32), bary.astype(np.float32)
    d["calibrated"] = np.isin(np.arange(478), done)
    d["method"] = np.array(
        str(d["method"]).split(" | ")[0] + " | calibrated on shaded renders of the ICT model "
        f"(tools/calibrate_ict_correspondence.py; {len(before)} renders)"
    )
    np.savez(OUT, **d)


if __name__ == "__main__":
    main()
