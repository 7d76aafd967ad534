"""Strand generator: a recipe becomes thousands of polylines on the canonical head.

The canonical head is an ellipsoid (x right, y up, z towards the face, metres, centre at
ear level) with radii :data:`HEAD_RADII` and a neck cylinder. Roots are spread evenly over
the scalp above the recipe's hairline; each strand then grows by marching along a
direction that starts tangent to the scalp (combed away from the parting, the crown or
backwards), bends under gravity (a discrete elastic rod reduced to a bending length, as in
the "follow-the-leader" integration of Mueller et al., "Fast Simulation of Inextensible
Hair and Fur", VRIPHYS 2012) and is pushed out of a thickened head shell, which gives the
hair its volume. Strands that would fall over the face are steered to its sides and,
beside it, back behind a face plane just behind the outer eye corners (in profile the hair
frames the face); a short cut's ``standoff`` holds its strands close to the head (stiff
side hair otherwise sticks out like a brim). Clumping pulls strands towards guide strands and curls/waves are a
helical or planar offset in each strand's moving frame (Ward et al., "A Survey on Hair
Modeling", IEEE TVCG 2007, sections 3-4). Ponytails, buns and braids route every strand
to a tie point over the scalp and then follow a parametric tail.

Everything is vectorised over strands (one loop over the points of a strand), and the
result for a recipe is cached: generation depends only on the recipe.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np

from engines.hair.recipe import Recipe

HEAD_RADII = np.array([0.078, 0.100, 0.098], np.float32)
"""Canonical head ellipsoid radii (metres): half width, height above the ear plane, half depth."""
NECK_RADIUS = 0.055
NECK_Z = -0.012
DEFAULT_HAIRLINE = (38.0, 26.0, 6.0, -42.0)
"""Front, temple, side, back hairline elevations (degrees) of an average head."""

_cache: OrderedDict[str, np.ndarray] = OrderedDict()
_lock = threading.Lock()


def hairline_at(azimuth_deg: np.ndarray, line) -> np.ndarray:
    """Hairline elevation at azimuths (0 = front, 180 = back) from (front, temple, side, back)."""
    a = np.abs((np.asarray(azimuth_deg) + 180.0) % 360.0 - 180.0)
    return np.interp(a, [0.0, 45.0, 90.0, 180.0], list(line))


def direction_angles(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Azimuth and elevation (degrees) of unit directions in the normalised head frame."""
    az = np.degrees(np.arctan2(q[..., 0], q[..., 2]))
    el = np.degrees(np.arcsin(np.clip(q[..., 1], -1, 1)))
    return az, el


def _norm(v: np.ndarray) -> np.ndarray:
    return np.sqrt(np.einsum("...i,...i->...", v, v))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(_norm(v), 1e-12)[..., None]


def _sample_roots(r: Recipe, rng: np.random.Generator) -> np.ndarray:
    """Unit directions (normalised head frame) of the roots, inside the recipe's scalp region."""
    line = (r.hairline.front, r.hairline.temple, r.hairline.side, r.hairline.back)
    got, need = [], r.strands
    while need > 0:
        q = _unit(rng.normal(size=(need * 4 + 64, 3)))
        az, el = direction_angles(q)
        ok = el > hairline_at(az, line)
        ears = (np.abs(np.abs(az) - 90.0) < 18.0) & (el < 14.0)
        ok &= ~ears
        q = q[ok][:need]
        got.append(q)
        need -= len(q)
    q = np.concatenate(got).astype(np.float32)
    if r.mohawk.width > 0:
        # Put a fixed share of the roots in the crest, the rest on the shaved sides.
        n_crest = int(r.strands * r.mohawk.crest_share)
        half = r.mohawk.width / HEAD_RADII[0]
        crest = []
        while sum(len(c) for c in crest) < n_crest:
            c = _unit(rng.normal(size=(n_crest * 8, 3)))
            az, el = direction_angles(c)
            c = c[(np.abs(c[:, 0]) < half) & (el > hairline_at(az, line))]
            crest.append(c)
        q = np.concatenate([np.concatenate(crest)[:n_crest], q[: r.strands - n_crest]])
    return q.astype(np.float32)


FACE_HALF_WIDTH = 0.064
FACE_TOP = 0.048
BROW_Y = 0.024
FACE_PLANE_Z = 0.045
"""Hair beside the face stays behind this plane (z, m), just behind the outer eye corners:
in profile the eyes, cheekbones, nose and mouth stay visible and the hair frames the face
from its sides instead of hanging across it."""
CHIN_Y = -0.105
"""Bottom of the face (m below the ear plane): lower down, hair may fall forward onto the chest."""
NECK_TOP = -0.04


def face_plane_z(y: np.ndarray) -> np.ndarray:
    """Frontmost z hair may reach at height ``y`` (not counting a fringe): the face plane from
    the chin to the brows, then rising over the temples and the forehead (temple roots keep
    their place, strands ease back instead of kinking, and nothing juts far out over the
    forehead); no limit below the chin."""
    y = np.asarray(y)
    lim = FACE_PLANE_Z + 1.5 * np.clip(y - BROW_Y, 0.0, None)
    return np.where(y > CHIN_Y, lim, np.inf)


def _behind_face(p: np.ndarray, shell: np.ndarray, fb: np.ndarray, side: np.ndarray | None) -> None:
    """Move points in front of the face plane back onto it (in place), then sideways (x only,
    so they stay behind the plane) out of the grown head ellipsoid and the neck."""
    zmax = face_plane_z(p[..., 1])
    over = np.nonzero(fb & (p[..., 2] > zmax))
    if len(over[0]) == 0:
        return
    q = p[over]  # the few points concerned (fancy indexing: a copy)
    q[:, 2] = zmax[over]
    sh = np.broadcast_to(shell, zmax.shape)[over]
    # The side a point is on (beside the face it is clear; in doubt, where the strand grew).
    ref = q[:, 0] if side is None else np.where(np.abs(q[:, 0]) > 0.01, q[:, 0], side[over])
    sx = np.where(ref >= 0, 1.0, -1.0)
    rmin = 1.0 + sh / 0.09
    need = rmin**2 - (q[:, 1] / HEAD_RADII[1]) ** 2 - (q[:, 2] / HEAD_RADII[2]) ** 2
    xmin = HEAD_RADII[0] * np.sqrt(np.maximum(need, 0.0))
    xn = np.sqrt(np.maximum((NECK_RADIUS + sh) ** 2 - (q[:, 2] - NECK_Z) ** 2, 0.0))
    xmin = np.where(q[:, 1] < NECK_TOP, np.maximum(xmin, xn), xmin)
    q[:, 0] = np.where(np.abs(q[:, 0]) < xmin, sx * xmin, q[:, 0])
    p[over] = q


def _hold(p: np.ndarray, reach: np.ndarray) -> np.ndarray:
    """Pull points above the neck that stand more than ``reach`` metres off the head ellipsoid
    back to that distance (a short cut lies on the head: no brim of stiff side hair)."""
    rad = _norm(p / HEAD_RADII)[..., None]
    rmax = 1.0 + reach[..., None] / 0.09
    far = (rad > rmax) & (p[..., 1:2] > NECK_TOP)
    return np.where(far, p * (rmax / np.maximum(rad, 1e-9)), p)


def _push_out(
    p: np.ndarray, shell: np.ndarray, face: np.ndarray | None = None, side: np.ndarray | None = None
) -> np.ndarray:
    """Move points out of the head ellipsoid grown by ``shell`` metres, out of the neck and,
    where ``face`` is set, sideways out of the box in front of the face (hair frames it)."""
    if face is not None:
        fb = face[..., None] if face.ndim < p.ndim - 1 else face
        box = fb & (p[..., 2] > -0.01) & (p[..., 1] < FACE_TOP) & (np.abs(p[..., 0]) < FACE_HALF_WIDTH)
        if box.any():
            sx = np.where((p[..., 0] if side is None else side) >= 0, 1.0, -1.0)
            p[..., 0] = np.where(box, sx * (FACE_HALF_WIDTH + 0.2 * shell), p[..., 0])
    rad = _norm(p / HEAD_RADII)[..., None]
    rmin = 1.0 + shell[..., None] / 0.09
    p = np.where(rad < rmin, p * (rmin / np.maximum(rad, 1e-9)), p)
    neck = p[..., 1] < NECK_TOP
    d = np.sqrt(p[..., 0] ** 2 + (p[..., 2] - NECK_Z) ** 2)
    rn = NECK_RADIUS + shell
    inside = neck & (d < rn)
    if inside.any():
        s = rn[inside] / np.maximum(d[inside], 1e-9)
        p[inside, 0] *= s
        p[inside, 2] = NECK_Z + (p[inside, 2] - NECK_Z) * s
    if face is not None:
        _behind_face(p, shell, fb, side)
    return p


def _comb_direction(r: Recipe, p: np.ndarray, n: np.ndarray, rng) -> np.ndarray:
    """Initial growth direction at the roots: the recipe's flow, projected on the scalp."""
    down = np.array([0.0, -1.0, 0.0])
    if r.flow == "up":
        f = n.copy()
    elif r.flow == "back":
        f = np.tile([0.0, -0.2, -1.0], (len(p), 1))
    elif r.flow == "forward":
        f = np.tile([0.0, -0.3, 1.0], (len(p), 1)) + 0.5 * _unit(p * [1, 0, 0] + 1e-9)
    else:
        part_x = r.parting * HEAD_RADII[0] * 0.55
        crown = np.array([part_x, HEAD_RADII[1] * 0.8, -HEAD_RADII[2] * 0.45])
        src = np.stack(
            [np.full(len(p), part_x), np.full(len(p), HEAD_RADII[1]), np.clip(p[:, 2], crown[2], HEAD_RADII[2] * 0.6)],
            1,
        )
        if r.flow == "crown":
            src = np.tile(crown, (len(p), 1))
        f = _unit(p - src) + 0.35 * down + r.back_bias * np.array([0, 0, -1.0]) * (p[:, 2:3] > 0)
    f = f - np.sum(f * n, 1, keepdims=True) * n
    f = _unit(f + 1e-6 * rng.normal(size=f.shape))
    return _unit(f * (1 - r.lift) + n * r.lift)


def _march(
    r: Recipe,
    roots: np.ndarray,
    n: np.ndarray,
    d0: np.ndarray,
    length: np.ndarray,
    layer: np.ndarray,
    rng,
    steps: int,
    gravity: np.ndarray,
    face: np.ndarray,
) -> np.ndarray:
    """Grow strands point by point: keep direction, bend under gravity, stay outside the shell."""
    S = len(roots)
    pts = np.empty((S, steps, 3), np.float32)
    length, gravity = length.astype(np.float32), gravity.astype(np.float32)
    pts[:, 0] = roots + n * 0.001
    h = (length / (steps - 1))[:, None]
    d = d0.copy()
    bend = 0.02 + 0.25 * r.stiffness**2  # bending length (m): stiffer hair keeps its heading longer
    down = np.array([0.0, -1.0, 0.0])
    arc = np.zeros(S, np.float32)
    d = d.astype(np.float32)
    down = down.astype(np.float32)
    for k in range(1, steps):
        d = _unit(
            d
            + (gravity[:, None] * h / bend) * down
            + r.noise * np.sqrt(h / 0.01) * 0.15 * rng.standard_normal(size=(S, 3), dtype=np.float32)
        )
        if r.hug > 0:
            # Near the scalp, lose part of the outward heading: the hair lies on the head.
            prev = pts[:, k - 1]
            nn = _unit(prev / HEAD_RADII**2)
            near = _norm(prev / HEAD_RADII) < 1.0 + (layer + 0.012) / 0.09
            out = np.maximum(np.sum(d * nn, 1), 0.0) * near * r.hug
            d = _unit(d - out[:, None] * nn)
        # Steer round the face before reaching it, so strands part smoothly to the sides.
        prev = pts[:, k - 1]
        zone = (
            face
            & (prev[:, 2] > 0.0)
            & (prev[:, 1] < FACE_TOP + 0.012)
            & (d[:, 1] < -0.3)
            & (np.abs(prev[:, 0]) < FACE_HALF_WIDTH + 0.02)
        )
        if zone.any():
            sx = np.where(prev[:, 0] >= 0, 1.0, -1.0)
            push = zone * sx * 3.0 * (1.0 - np.abs(prev[:, 0]) / (FACE_HALF_WIDTH + 0.02))
            d = _unit(d + push[:, None] * np.array([1.0, 0.0, 0.0]))
        # ... and, once beside it, back behind the face plane before passing the cheeks (seen
        # in profile, the hair frames the face instead of hanging in front of it).
        ahead = face_plane_z(prev[:, 1] - 0.02) - 0.015
        back = (
            face
            & (arc > 0.02)
            & (prev[:, 2] > ahead)
            & (d[:, 1] < -0.3)
            & (np.abs(prev[:, 0]) > FACE_HALF_WIDTH - 0.015)
        )
        if back.any():
            pull = back * 3.0 * np.clip((prev[:, 2] - ahead) / 0.015, 0.0, 1.0)
            d = _unit(d - pull[:, None] * np.array([0.0, 0.0, 1.0]))
        p = pts[:, k - 1] + d * h
        arc += h[:, 0]
        shell = layer * np.minimum(1.0, arc / 0.03)
        if r.standoff > 0:
            p = _hold(p, np.full(S, r.standoff, np.float32))
        p = _push_out(p, shell, face & (arc > 0.02))  # roots at the temples stay put
        d = _unit(p - pts[:, k - 1])
        pts[:, k] = p
    return pts


def _frames(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit normals per point, perpendicular to the strand (a simple moving frame)."""
    t = np.gradient(pts, axis=1)
    t = _unit(t)
    a = np.broadcast_to(np.array([0.0, 0.0, 1.0]), t.shape)
    a = np.where(np.abs(np.sum(t * a, -1, keepdims=True)) > 0.9, np.array([1.0, 0.0, 0.0]), a)
    u = _unit(np.cross(t, a))
    v = np.cross(t, u)
    return u, v


def _curl(r: Recipe, pts: np.ndarray, length: np.ndarray, roots: np.ndarray, rng) -> np.ndarray:
    c = r.curl
    if c.kind == "none" or c.radius <= 0:
        return pts
    S, P, _ = pts.shape
    arc = np.linspace(0, 1, P)[None, :] * length[:, None]
    env = np.clip(arc / max(c.start, 1e-3), 0, 1) * c.radius
    env = env * rng.uniform(0.7, 1.3, size=(S, 1))
    # Neighbouring strands share a phase (coherence), so waves read as locks, not fuzz.
    phase0 = (1 - c.coherence) * rng.uniform(0, 2 * np.pi, size=(S, 1)) + c.coherence * (
        (roots[:, :1] * 40 + roots[:, 1:2] * 25) % (2 * np.pi)
    )
    ph = 2 * np.pi * c.frequency * arc + phase0
    if c.kind == "wave":
        side = _unit(np.cross(np.gradient(pts, axis=1), [0.0, 1.0, 0.0]) + 1e-9)
        off = (env * np.sin(ph))[..., None] * side
    else:
        u, v = _frames(pts)
        off = (env * np.cos(ph))[..., None] * u + (env * np.sin(ph))[..., None] * v
    return pts + off


def _clump(r: Recipe, pts: np.ndarray, rng) -> np.ndarray:
    """Blend each strand towards the shape of its nearest guide (clump), more at the tips."""
    if r.clump <= 0:
        return pts
    from scipy.spatial import cKDTree

    S, P, _ = pts.shape
    n_guides = max(8, S // 25)
    gi = rng.choice(S, n_guides, replace=False)
    # Guides come from the same side of the face, so no clump straddles it.
    key = np.concatenate([pts[:, 0], np.sign(pts[:, :, 0].mean(1, keepdims=True))], 1)
    _, owner = cKDTree(key[gi]).query(key)
    g = pts[gi][owner]
    w = (r.clump * np.linspace(0, 1, P) ** 1.5)[None, :, None]
    shape_g = g - g[:, :1]
    shape_s = pts - pts[:, :1]
    return pts + w * (shape_g - shape_s)


def _gather(r: Recipe, q: np.ndarray, layer: np.ndarray, rng, P: int) -> np.ndarray:
    """Ponytail, bun or braid: scalp path to a tie point, then a parametric tail."""
    g = r.gather
    S = len(q)
    el = np.radians(g.elevation)
    q_tie = np.array([0.0, np.sin(el), -np.cos(el)])
    tie = q_tie * HEAD_RADII
    n_tie = _unit(tie / HEAD_RADII**2)
    p1 = max(6, P // 3)
    s = np.linspace(0, 1, p1)[None, :, None]
    qs = _unit((1 - s) * q[:, None] + s * q_tie[None, None])
    scalp = qs * HEAD_RADII * (1.0 + (0.002 + 0.3 * layer)[:, None, None] / 0.09)
    # Strands converge on the tie ring, keeping their angular order around it.
    e1 = _unit(np.cross(n_tie, [0.0, 1.0, 0.0]) + 1e-9)
    e2 = np.cross(n_tie, e1)
    ang = np.arctan2(q @ e2, q @ e1)
    rad = g.radius * np.sqrt(rng.uniform(0.05, 1.0, S))
    ring = tie + (rad * np.cos(ang))[:, None] * e1 + (rad * np.sin(ang))[:, None] * e2 + n_tie * 0.004
    scalp[:, -1] = ring
    t = np.linspace(0, 1, P - p1 + 1)[1:][None, :, None]
    L = g.tail_length * rng.uniform(0.85, 1.0, S)[:, None, None]
    off0 = ring - tie
    if g.kind == "ponytail":
        # Centre line: a quadratic Bezier that rises off the tie, clears the back of the
        # head and hangs down behind it.
        p0 = tie + n_tie * 0.01
        p1_ = tie + n_tie * 0.16 + np.array([0.0, 0.0, -0.03])
        p2 = np.array([0.0, tie[1] - 0.8 * g.tail_length, -HEAD_RADII[2] - 0.05])
        tt = t * (L / g.tail_length)
        centre = (1 - tt) ** 2 * p0 + 2 * (1 - tt) * tt * p1_ + tt**2 * p2
        tail = centre + off0[:, None] * (1 + g.spread * t)
    elif g.kind == "bun":
        turns = 2.2
        a = ang[:, None, None] + 2 * np.pi * turns * t
        R = g.radius * (2.2 - 1.2 * t) * rng.uniform(0.85, 1.15, S)[:, None, None]
        hgt = n_tie * (g.radius * 1.6 * np.sin(np.pi * t * 0.9))
        tail = tie + n_tie * g.radius * 0.9 + hgt + R * (np.cos(a) * e1 + np.sin(a) * e2)
    else:  # braid: three sub-bundles weave around a centre line down the back
        k = rng.integers(0, 3, S)[:, None, None]
        down = _unit(np.array([0.0, -1.0, -0.18]))
        w = g.radius * (1.0 - 0.35 * t)
        ph = 2 * np.pi * (t * L / (g.radius * 5.0)) + 2 * np.pi * k / 3
        centre = tie + n_tie * 0.01 + down * L * t
        lat = _unit(np.cross(down, n_tie))
        sub = centre + w * np.sin(ph) * lat + 0.5 * w * np.sin(2 * ph) * n_tie
        fan = np.where(t > 0.9, (t - 0.9) * 10, 0.0)
        tail = sub + off0[:, None] * (0.35 + 1.8 * fan)
    return np.concatenate([scalp, tail], axis=1)


def _lengths(r: Recipe, az: np.ndarray, rng) -> np.ndarray:
    L = np.interp(np.abs(az), [0, 90, 180], [r.length.front, r.length.side, r.length.back])
    return L * np.clip(1 + r.length.jitter * rng.normal(size=len(az)), 0.3, 1.8)


def recipe_key(r: Recipe) -> str:
    return hashlib.blake2b(r.model_dump_json().encode(), digest_size=12).hexdigest()


def generate(r: Recipe) -> np.ndarray:
    """Strands (S x P x 3, float32, canonical head frame) for a recipe; cached per recipe."""
    key = recipe_key(r)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    if r.is_bald:
        return np.zeros((0, r.points, 3), np.float32)
    rng = np.random.default_rng(r.seed)
    q = _sample_roots(r, rng)
    az, el = direction_angles(q)
    roots = q * HEAD_RADII
    n = _unit(roots / HEAD_RADII**2)
    layer = (0.002 + r.volume * rng.uniform(0, 1, len(q)) ** 0.6).astype(np.float32)
    face = np.ones((len(q), r.points), bool)
    side = None
    if r.gather.kind != "none":
        pts = _gather(r, q, layer, rng, r.points)
    else:
        length = _lengths(r, az, rng)
        grav = np.full(len(q), r.gravity)
        d0 = _comb_direction(r, roots, n, rng)
        if r.mohawk.width > 0:
            crest = np.abs(roots[:, 0]) < r.mohawk.width
            length = np.where(crest, length, r.mohawk.side_length)
            grav = np.where(crest, r.gravity, 1.0)
            d0 = np.where(crest[:, None], _unit(d0 * [0.2, 1.0, 1.0]), d0)  # a flat, upright crest
        fr = np.zeros(len(q), bool)
        if r.fringe.width > 0:
            # Fringe rows: the front strands are combed forward and cut above the brows.
            fr = (np.abs(az) < r.fringe.width) & (el < r.hairline.front + r.fringe.depth)
            fwd = np.tile(_unit(np.array([r.fringe.side * 0.6, 0.35, 1.0], np.float32)), (len(q), 1))
            fwd = _unit(fwd - np.sum(fwd * n, 1, keepdims=True) * n)
            d0 = np.where(fr[:, None], _unit(fwd + 0.5 * n), d0)
            length = np.where(fr, r.fringe.length * rng.uniform(0.92, 1.05, len(q)), length)
            grav = np.where(fr, 0.6, grav)
            layer = np.where(fr, np.minimum(layer, 0.006), layer)
        pts = _march(r, roots, n, d0, length, layer, rng, r.points, grav, ~fr)
        pts = _clump(r, pts, rng)
        side = pts[..., 0].copy()  # which side of the face each point was before curling
        pts = _curl(r, pts, length, roots, rng)
        if fr.any():  # a fringe is cut straight above the brows
            front = fr[:, None] & (pts[..., 2] > 0.02)
            pts[..., 1] = np.where(front, np.maximum(pts[..., 1], BROW_Y + 0.004), pts[..., 1])
        face = np.broadcast_to(~fr[:, None], pts.shape[:2])
    arc = np.concatenate([np.zeros((len(pts), 1)), np.cumsum(np.linalg.norm(np.diff(pts, axis=1), axis=2), axis=1)], 1)
    if r.standoff > 0 and r.gather.kind == "none":
        pts = _hold(pts, np.full(pts.shape[:2], r.standoff))
    pts = _push_out(pts, np.full(pts.shape[:2], 0.002), face & (arc > 0.02), side)
    out = pts.astype(np.float32)
    out.setflags(write=False)
    with _lock:
        _cache[key] = out
        while len(_cache) > 40:
            _cache.popitem(last=False)
    return out
