"""A closed head from the face landmarks: dense face, parametric skull, ears, neck, eyes, mouth.

* Face: the 468-landmark face mesh subdivided twice (PN-triangle midpoints, see
  :mod:`engines.avatar.topology`), so landmarks stay exact and the surface is smooth.
* Skull: a loft from the face-oval boundary to a pole at the back of the head over an
  egg-shaped ellipsoid (upper and lower halves with their own vertical semi-axis) whose
  size follows the face (head breadth, height and length as multiples of face width and
  height, after anthropometric averages: Farkas, "Anthropometry of the Head and Face",
  1994). Ring 0 *is* the face oval (the same vertices), so there is no crack and no
  shading seam; in the UV atlas the skull chart is the ring around the face disc. The
  lower half narrows into a neck; each ear is a Gaussian rim with a hollow in front of it,
  between eye and nose-base height, just behind the face oval.
* Eyes: an eyeball (sphere, 12 mm radius, centre behind the iris landmark) sits inside a
  closed socket pocket hung from the eyelid opening; the mouth opening leads into a closed
  mouth pocket (dark interior; two flaps just behind the lips carry the teeth the photo
  shows and part when the jaw opens), so a blink or an open jaw never shows a hole.

All parts are one closed, outward-wound mesh (vertices duplicated only along UV seams: the
mouth and eye pockets' rims and the pole at the back of the head).
The layout of the UV atlas is fixed (it does not depend on the person), which lets the
texture baker precompute its texel-to-triangle map once.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from engines.avatar.topology import face_topology, loop_after, subdivide, vertex_normals

SKULL_RINGS = 40
EYE_RADIUS = 0.012
BAG_RINGS = 3
EYEBALL_LAT, EYEBALL_LON = 16, 32

# Atlas layout (u, v in 0..1, v = 0 at the bottom): the face chart is a disc in the middle and
# the skull chart the ring around it, continuing it outwards (so the face oval is no seam);
# the eyeballs and the mouth and eye pockets sit in the four corners outside the ring.
ATLAS_CENTRE = np.array([0.5, 0.5])
FACE_RADIUS = 0.31
SKULL_RADIUS = 0.495
CORNER = 0.145
EYEBALL_BOX = {"L": (0.0, 1 - CORNER, CORNER, 1.0), "R": (1 - CORNER, 1 - CORNER, 1.0, 1.0)}
MOUTH_BOX = (0.0, 0.0, CORNER, CORNER)
SOCKET_BOX = {"L": (1 - CORNER, 0.0, 1 - CORNER / 2, CORNER), "R": (1 - CORNER / 2, 0.0, 1.0, CORNER)}


@dataclass
class HeadTemplate:
    """Everything about the head that does not depend on the person."""

    faces: np.ndarray
    uv: np.ndarray
    n_vertices: int
    n_face: int
    sub1: object
    sub2: object
    oval: np.ndarray
    eye: dict
    mouth: np.ndarray
    skull_idx: np.ndarray
    """rings x columns vertex indices; row 0 is the face oval (shared with the face)."""
    skull_pole: np.ndarray
    bag_idx: dict
    """'L', 'R', 'mouth' -> (rings+1) x n indices, row 0 duplicating the opening loop."""
    bag_cap: dict
    eyeball_idx: dict
    """'L', 'R' -> vertex indices of the eyeball sphere (front pole first)."""
    part: np.ndarray
    """Per vertex: 0 face, 1 skull, 2 socket, 3 mouth, 4 eyeball."""
    face_uv_canonical: np.ndarray


def _sphere_dirs(n_lat: int, n_lon: int) -> np.ndarray:
    """Unit directions: the front pole (+z), then n_lat rings of n_lon (last ring = back pole copies)."""
    th = np.pi * np.arange(1, n_lat + 1) / n_lat
    ph = 2 * np.pi * np.arange(n_lon) / n_lon
    T, P = np.meshgrid(th, ph, indexing="ij")
    d = np.stack([np.sin(T) * np.cos(P), np.sin(T) * np.sin(P), np.cos(T)], -1).reshape(-1, 3)
    return np.vstack([[0, 0, 1.0], d])


def _box(box, u, v):
    u0, v0, u1, v1 = box
    u, v = np.asarray(u, float), np.asarray(v, float)
    return np.column_stack([u0 + (u1 - u0) * u, v0 + (v1 - v0) * v])


def _band(rows: np.ndarray, closed: bool) -> list[np.ndarray]:
    """Triangles between consecutive rows (row 0 wound like a hole boundary of the face)."""
    out = []
    n = rows.shape[1]
    cols = np.arange(n if closed else n - 1)
    nxt = (cols + 1) % n
    for k in range(len(rows) - 1):
        a, b = rows[k, cols], rows[k, nxt]
        c, d = rows[k + 1, cols], rows[k + 1, nxt]
        out += [np.stack([b, a, c], 1), np.stack([b, c, d], 1)]
    return out


@lru_cache(maxsize=1)
def head_template() -> HeadTemplate:
    topo = face_topology()
    s1 = subdivide(topo.faces, 468)
    s2 = subdivide(s1.faces, s1.n_old + len(s1.edges))
    n_face = s2.n_old + len(s2.edges)
    oval = loop_after(s2, loop_after(s1, topo.oval))
    eyes = {"L": loop_after(s2, loop_after(s1, topo.eye_left)), "R": loop_after(s2, loop_after(s1, topo.eye_right))}
    mouth = loop_after(s2, loop_after(s1, topo.mouth))

    # canonical face at level 2 -> fixed face-chart UVs (cylindrical unwrap about a vertical axis)
    c0 = topo.canonical
    c1 = s1.smooth(c0, vertex_normals(c0, topo.faces))
    c2 = s2.smooth(c1, vertex_normals(c1, s1.faces))
    ang = np.arctan2(c2[:, 0], c2[:, 2] + 0.05) * 0.1
    flat = np.column_stack([ang, c2[:, 1]])
    mid = 0.5 * (flat[oval].min(0) + flat[oval].max(0))
    flat = (flat - mid) * (FACE_RADIUS / np.linalg.norm(flat[oval] - mid, axis=1).max())
    uv = [ATLAS_CENTRE + flat]
    faces = [s2.faces]
    part = [np.zeros(n_face, np.int8)]
    n = n_face

    # skull: row 0 is the face oval itself (shared vertices), rows 1..K-1 new, then one pole
    # copy per column (each with its own UV on the outer circle of the atlas)
    cols = len(oval)
    skull_idx = np.vstack([oval[None], n + np.arange((SKULL_RINGS - 1) * cols).reshape(SKULL_RINGS - 1, cols)])
    n += (SKULL_RINGS - 1) * cols
    pole = n + np.arange(cols)
    n += cols
    faces += _band(skull_idx, closed=True)
    faces.append(np.stack([np.roll(skull_idx[-1], -1), skull_idx[-1], pole], 1))
    rel = uv[0][oval] - ATLAS_CENTRE
    rho0 = np.linalg.norm(rel, axis=1)
    direction = rel / rho0[:, None]
    k = np.arange(1, SKULL_RINGS + 1)[:, None] / SKULL_RINGS
    rho = rho0[None] + (SKULL_RADIUS - rho0[None]) * k
    ring_uv = ATLAS_CENTRE + rho[..., None] * direction[None]
    uv += [ring_uv[:-1].reshape(-1, 2), ring_uv[-1]]
    part.append(np.ones((SKULL_RINGS - 1) * cols + cols, np.int8))

    bag_idx, bag_cap = {}, {}
    for key, loop, box, label in [("L", eyes["L"], SOCKET_BOX["L"], 2), ("R", eyes["R"], SOCKET_BOX["R"], 2),
                                  ("mouth", mouth, MOUTH_BOX, 3)]:
        m = len(loop)
        idx = n + np.arange((BAG_RINGS + 1) * m).reshape(BAG_RINGS + 1, m)
        n += idx.size
        cap = n
        n += 1
        faces += _band(idx, closed=True)
        faces.append(np.stack([idx[-1, (np.arange(m) + 1) % m], idx[-1], np.full(m, cap)], 1))
        ang_b = np.arange(m) / m
        U, V = np.meshgrid(ang_b, 1 - np.arange(BAG_RINGS + 1) / (BAG_RINGS + 1), indexing="xy")
        uv += [_box(box, 0.05 + 0.9 * U.ravel(), 0.05 + 0.9 * V.ravel()), _box(box, [0.5], [0.02])]
        part.append(np.full(idx.size + 1, label, np.int8))
        bag_idx[key], bag_cap[key] = idx, cap

    eyeball_idx = {}
    dirs = _sphere_dirs(EYEBALL_LAT, EYEBALL_LON)
    for key in ("L", "R"):
        idx = n + np.arange(len(dirs))
        n += len(dirs)
        rings = idx[1:].reshape(EYEBALL_LAT, EYEBALL_LON)
        front = np.stack([np.full(EYEBALL_LON, idx[0]), rings[0], np.roll(rings[0], -1)], 1)
        faces.append(front)
        body = _band(rings[:-1], closed=True)
        faces += body
        # last ring: back pole copies -> triangles from the ring before
        a, b = rings[-2], np.roll(rings[-2], -1)
        faces.append(np.stack([a, rings[-1], b], 1))
        th = np.arccos(np.clip(dirs[:, 2], -1, 1)) / np.pi
        ph = np.arctan2(dirs[:, 1], dirs[:, 0])
        uv.append(_box(EYEBALL_BOX[key], 0.5 + 0.48 * th * np.cos(ph), 0.5 + 0.48 * th * np.sin(ph)))
        part.append(np.full(len(dirs), 4, np.int8))
        eyeball_idx[key] = idx

    faces = np.ascontiguousarray(np.concatenate(faces), np.int64)
    return HeadTemplate(faces, np.concatenate(uv).astype(np.float32), n, n_face, s1, s2, oval, eyes, mouth,
                        skull_idx, pole, bag_idx, bag_cap, eyeball_idx, np.concatenate(part), c2)


# ----------------------------------------------------------------------------- per person
@dataclass
class HeadShape:
    center: np.ndarray
    axes_upper: np.ndarray
    axes_lower: np.ndarray
    ear_y: float
    ear_z: float
    face_width: float


def head_shape(lm: np.ndarray) -> HeadShape:
    """Skull proportions from the face (landmarks in head coordinates, metres)."""
    width = abs(lm[454, 0] - lm[234, 0])
    eye_y = 0.5 * (lm[468, 1] + lm[473, 1])
    top_face, chin = lm[10, 1], lm[152, 1]
    face_h = top_face - chin
    glabella_z = lm[9, 2]
    ax = 0.51 * width
    az = 0.5 * 1.32 * width
    cy = eye_y + 0.10 * face_h
    top = top_face + 0.30 * face_h
    bottom = chin - 0.02 * face_h
    center = np.array([0.5 * (lm[454, 0] + lm[234, 0]), cy, glabella_z - az])
    return HeadShape(center, np.array([ax, top - cy, az]), np.array([ax, cy - bottom, az]),
                     float(0.5 * (eye_y + lm[2, 1])), float(0.5 * (lm[234, 2] + lm[454, 2]) - 0.012),
                     float(width))


def _skull_points(shape: HeadShape, oval_pts: np.ndarray, rings: int) -> np.ndarray:
    c = shape.center
    q = oval_pts - c
    a = np.where(q[:, 1:2] >= 0, shape.axes_upper, shape.axes_lower)
    qn = q / a
    r0 = np.linalg.norm(qn, axis=1)
    d = qn / r0[:, None]
    th0 = np.arccos(np.clip(d[:, 2], -1, 1))
    ph = np.arctan2(d[:, 1], d[:, 0])
    s = (np.arange(rings) / rings)[:, None]
    th = th0 + (np.pi - th0) * s
    blend = np.clip(s / 0.45, 0, 1)
    blend = blend * blend * (3 - 2 * blend)
    r = r0 * (1 - blend) + blend
    dirs = np.stack([np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th)], -1) * r[..., None]
    ay = np.where(dirs[..., 1:2] >= 0, shape.axes_upper[1], shape.axes_lower[1])
    p = c + dirs * np.concatenate([np.full_like(ay, shape.axes_upper[0]), ay, np.full_like(ay, shape.axes_upper[2])], -1)
    # neck: below 45 % of the lower semi-axis the meridians turn into a neck column (radius
    # about 0.42 face widths, behind the chin) and end in a flat disc
    yl = np.clip(-dirs[..., 1] / np.maximum(r[..., None], 1e-9)[..., 0], 0, 1)
    y0 = 0.45
    tn = np.clip((yl - y0) / (1 - y0), 0, 1)
    neck_z = c[2] + 0.2 * shape.axes_upper[2]
    neck_r = 0.42 * shape.face_width
    neck_len = 0.55 * shape.face_width
    hx, hz = p[..., 0] - c[0], p[..., 2] - neck_z
    hr = np.maximum(np.hypot(hx, hz), 1e-9)
    y_start = c[1] - y0 * shape.axes_lower[1]
    side = tn < 0.75
    s_side = np.clip(tn / 0.3, 0, 1)
    rad = np.where(side, hr + (neck_r - hr) * (s_side * s_side * (3 - 2 * s_side)), neck_r * (1 - tn) / 0.25)
    ny = np.where(side, y_start - neck_len * tn / 0.75, y_start - neck_len)
    neck = np.stack([c[0] + hx / hr * rad, ny, neck_z + hz / hr * rad], -1)
    wn = ((tn > 0) * blend)[..., None]
    p = p * (1 - wn) + neck * wn
    # ears: a rim standing out from the side of the head (about 15 mm, 60 mm tall, tilted
    # back) with a hollow in front of it (the concha), centred behind the tragus
    side_of = np.sign(p[..., 0] - c[0])
    away = np.clip(s / 0.04, 0, 1)  # ring 0 is the face oval: keep it exact
    for side in (-1.0, 1.0):
        dy = p[..., 1] - (shape.ear_y + 0.004)
        dz = p[..., 2] - (shape.ear_z - 0.014) + 0.25 * dy
        rim = np.exp(-0.5 * ((dy / 0.024) ** 2 + (dz / 0.010) ** 2))
        bowl = np.exp(-0.5 * ((dy / 0.012) ** 2 + ((dz - 0.008) / 0.006) ** 2))
        g = (side_of == side) * away
        p[..., 0] += side * (0.018 * rim - 0.004 * bowl) * g
        p[..., 2] -= 0.004 * rim * g
    return p


def _mouth_flaps(loop: np.ndarray) -> np.ndarray:
    """Ring 1 of the mouth pocket: the inner-lip loop pulled onto the line between the mouth
    corners, 3 mm behind the deeper of the two lips at each x (upper and lower chain)."""
    ia, ib = int(np.argmin(loop[:, 0])), int(np.argmax(loop[:, 0]))
    a, b = loop[ia], loop[ib]
    n = len(loop)
    chain1 = loop[[(ia + k) % n for k in range((ib - ia) % n + 1)]]
    chain2 = loop[[(ib + k) % n for k in range((ia - ib) % n + 1)]]

    def z_at(chain, x):
        o = np.argsort(chain[:, 0], kind="stable")
        return np.interp(x, chain[o, 0], chain[o, 2])

    x = loop[:, 0]
    tt = np.clip((x - a[0]) / max(b[0] - a[0], 1e-9), 0, 1)
    flap = loop.copy()
    flap[:, 1] = a[1] + tt * (b[1] - a[1])
    flap[:, 2] = np.minimum(z_at(chain1, x), z_at(chain2, x)) - 0.003
    return flap


def build_vertices(tpl: HeadTemplate, lm: np.ndarray) -> tuple[np.ndarray, HeadShape]:
    """All head vertices for one person from 478 landmarks in head coordinates."""
    topo = face_topology()
    v0 = lm[:468].astype(np.float64)
    v1 = tpl.sub1.smooth(v0, vertex_normals(v0, topo.faces))
    face = tpl.sub2.smooth(v1, vertex_normals(v1, tpl.sub1.faces))
    V = np.zeros((tpl.n_vertices, 3))
    V[: tpl.n_face] = face
    shape = head_shape(lm)
    sk = _skull_points(shape, face[tpl.oval], SKULL_RINGS)
    V[tpl.skull_idx[1:]] = sk[1:]
    back = shape.center.copy()
    back[2] -= shape.axes_upper[2]
    V[tpl.skull_pole] = back

    forward = np.array([0.0, 0.0, 1.0])
    for key in ("L", "R", "mouth"):
        loop = face[tpl.eye[key]] if key != "mouth" else face[tpl.mouth]
        idx = tpl.bag_idx[key]
        cen = loop.mean(0)
        rel = loop - cen
        if key == "mouth":
            depth, spread, drop = [0.0, 0.004, 0.02, 0.034], [1.0, 1.0, 1.1, 0.7], [0.0, 0.003, 0.012, 0.01]
        else:
            depth, spread, drop = [0.0, 0.004, 0.014, 0.022], [1.0, 1.1, 1.0, 0.5], [0.0, 0.002, 0.004, 0.002]
        for r in range(BAG_RINGS + 1):
            ring = cen + rel * spread[r] - forward * depth[r]
            if r:
                # open the pocket vertically so it has a volume behind a closed slit
                up = rel[:, 1] >= 0
                ring[:, 1] += np.where(up, 0.5, -1.0) * drop[r]
            V[idx[r]] = ring
        V[idx[0]] = loop
        if key == "mouth":
            # ring 1 closes the lips' opening as two flaps 3 mm behind the lips meeting on the
            # line between the mouth corners: the upper flap moves with the upper lip, the lower
            # with the lower lip, so the teeth the photo shows land on them (seen squarely) and an
            # opening jaw parts them onto the dark pocket behind
            # Both flaps meet on one curve (depth a function of x only, behind both lips), so
            # seen from the photo camera they tile the lip opening with no gap onto the pocket.
            V[idx[1]] = _mouth_flaps(loop)
        V[tpl.bag_cap[key]] = cen - forward * (depth[-1] + 0.004)

    dirs = _sphere_dirs(EYEBALL_LAT, EYEBALL_LON)
    for key, iris in (("L", 473), ("R", 468)):
        lid = face[tpl.eye[key]]
        front_z = min(lm[iris, 2], lid[:, 2].mean()) - 0.0015
        centre = np.array([lm[iris, 0], lm[iris, 1], front_z - EYE_RADIUS])
        V[tpl.eyeball_idx[key]] = centre + EYE_RADIUS * dirs
    return V, shape


def scalp_indices(tpl: HeadTemplate, V: np.ndarray, shape: HeadShape) -> np.ndarray:
    """Skull vertices where hair grows: above the ears, and the back of the head down to the nape."""
    idx = np.unique(np.concatenate([tpl.skull_idx[1:].ravel(), tpl.skull_pole]))
    p = V[idx]
    above = p[:, 1] > shape.ear_y + 0.02
    back = (p[:, 2] < shape.ear_z - 0.015) & (p[:, 1] > shape.ear_y - 0.04)
    return idx[above | back]
