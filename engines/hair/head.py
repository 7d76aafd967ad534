"""Fitting canonical strands to a reconstructed head.

Per head (cached by the vertex data), from the skin only (the ``head`` face group of the
mesh, all faces for a mesh without groups: eyeballs, teeth, tongue and eyelashes lie inside
or on the head by design and are no collision surface):

* a head frame: up and face axes snapped to the mesh's axes (from the photo camera, or the
  +Y up / +Z face convention), and the skull's size and centre measured on horizontal
  cross-sections of the skin above the ears, compared with the same sections of the
  canonical head (so the frame does not depend on how far down the scalp region reaches);
* the scalp's hairline in that frame (the ears, which the avatar's scalp may include, are
  left out as on the canonical head: no roots grow on them);
* a signed-distance grid over the whole skin, face, neck and shoulders included: nearest
  of dense surface samples, with the sign and, near the surface, the distance from the
  sample's face plane (the pseudo-normal test of Baerentzen and Aanaes, "Signed distance
  computation using the angle weighted pseudonormal", IEEE TVCG 2005, on samples instead
  of exact features). Below the open rim at the bottom of the skin (the cut under the neck
  and shoulders) the body is taken to go on straight down: the distance there is the one
  to the rim's outline, extruded. The grid is made more conservative by each vertex's
  largest morph-target displacement, so that a raised brow or an open jaw never reaches
  hair that was fitted on the neutral face.

Per style: roots are warped so the canonical hairline lands on the head's hairline,
scaled into the head frame, slid along rays from the head centre onto the real surface,
and every point is then pushed out along the distance gradient (a projection step as in
position-based dynamics, Mueller et al. 2007). Strands that go deep into the neck or
shoulders (long hair falling through them) are laid again instead, segment by segment
from where they first come near the skin, lengths kept and each point projected out of
the skin, so they drape over the shoulders ("follow the leader", Mueller, Kim and
Chentanez, VRIPHYS 2012). A strand that still cannot get out is cut where it enters (its
remaining points spread over its last segment), and so is hair that would go on down the
body below the bottom rim of a bust (the avatar ends there; hair hanging free goes on).
Before that, the rules the generator follows on the canonical head are kept on this one:
a short cut's points stay within its ``standoff`` of the skin (pulled in along the distance
gradient), nothing but a fringe lies in front of the face plane between brows and chin
(beside the face, points go back onto the plane and sideways out of the cheek), and a
fringe that the hairline stretch lowered over the eyes is cut above the brows again.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from functools import lru_cache

import numpy as np

from engines.hair.generate import (
    BROW_Y,
    DEFAULT_HAIRLINE,
    HEAD_RADII,
    direction_angles,
    face_plane_z,
    hairline_at,
)
from engines.types import Mesh

SKIN_MARGIN = 0.0025
"""Strand points are kept at least this far (m) outside the skin."""
_AZ_BINS = np.arange(-180.0, 180.0, 15.0) + 7.5
SKIN_GROUP = "head"
"""The face group of a mesh that is its skin (the collision surface of the hair)."""
EAR_HALF_WIDTH, EAR_TOP = 18.0, 14.0
"""The ears (no roots): azimuth within this of +-90 degrees and elevation below this."""
DEEP = 0.004
"""A strand with a point this far (m) inside the neck or shoulders is draped, not pushed
point by point (which would leave it zigzagging between the nearest surfaces)."""
CUT_REACH = 0.03
"""Hair that comes within this (m) of the body below the bottom rim of a bust (the cut under
the shoulders; not under a bare neck) ends at the rim: the body it would lie on is not there."""
_SECTIONS = np.array([0.3, 0.45, 0.6, 0.75])
"""Heights (fractions of the canonical height above the ear plane) of the skull sections."""


def _unit(v):
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def canonical_head() -> tuple[Mesh, np.ndarray]:
    """The canonical head and its scalp vertex indices (a fresh copy each call)."""
    v, f, s = _canonical_geometry()
    m = Mesh(v.copy(), f.copy(), name="head")
    m.compute_normals()
    m.vertex_colors = np.tile(np.array([224, 182, 160], np.uint8), (len(v), 1))
    return m, s.copy()


@lru_cache(maxsize=1)
def _canonical_geometry(rows: int = 40, cols: int = 64):
    """A closed ellipsoid head with jaw, nose and ears, plus a neck tube.

    It is the head the styles are designed on (thumbnails, tests, the canonical frame
    of every recipe). Its scalp region lies 2 degrees below the default hairline.
    """
    th = np.linspace(0, np.pi, rows + 1)[1:-1]
    ph = np.linspace(-np.pi, np.pi, cols, endpoint=False)
    T, P = np.meshgrid(th, ph, indexing="ij")
    q = np.stack([np.sin(T) * np.sin(P), np.cos(T), np.sin(T) * np.cos(P)], -1).reshape(-1, 3)
    q = np.concatenate([[[0, 1, 0]], q, [[0, -1, 0]]])
    p = q * HEAD_RADII
    low = np.clip(-q[:, 1], 0, 1)
    p[:, 1] *= 1 + 0.3 * low * np.clip(q[:, 2] + 0.3, 0, 1)  # chin below the ellipsoid
    p[:, 0] *= 1 - 0.22 * low  # narrower jaw
    nose = np.exp(-((q[:, 0] / 0.12) ** 2 + ((q[:, 1] + 0.2) / 0.2) ** 2)) * (q[:, 2] > 0)
    ears = np.exp(-((np.abs(q[:, 0]) - 1) ** 2 / 0.004 + (q[:, 1] + 0.05) ** 2 / 0.03 + (q[:, 2] + 0.05) ** 2 / 0.02))
    p += q * (0.022 * nose + 0.012 * ears)[:, None]
    f = []
    n = cols
    for j in range(n):
        f.append([0, 1 + (j + 1) % n, 1 + j])
    for i in range(rows - 2):
        for j in range(n):
            a, b = 1 + i * n + j, 1 + i * n + (j + 1) % n
            f += [[a, b, b + n], [a, b + n, a + n]]
    last = 1 + (rows - 1) * n
    base = 1 + (rows - 2) * n
    for j in range(n):
        f.append([last, base + j, base + (j + 1) % n])
    faces = np.array(f)[:, [0, 2, 1]]  # outward (counter-clockwise seen from outside)
    # Neck: an open tube under the skull, its own component.
    ring = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    ys = np.linspace(-0.04, -0.24, 6)
    nv = np.array([[0.052 * np.sin(a), y, -0.012 + 0.052 * np.cos(a)] for y in ys for a in ring])
    nf = []
    for i in range(len(ys) - 1):
        for j in range(32):
            a, b = i * 32 + j, i * 32 + (j + 1) % 32
            nf += [[a, b + 32, b], [a, a + 32, b + 32]]
    verts = np.concatenate([p, nv])
    faces = np.concatenate([faces, np.array(nf) + len(p)])
    az, el = direction_angles(q)
    scalp = np.nonzero((el > hairline_at(az, DEFAULT_HAIRLINE) - 2.0) & ~_ear_zone(az, el))[0]
    return verts, faces, scalp


def _face_normals(v, f):
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    return _unit(n)


def _snap_axis(cue: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
    axes = np.concatenate([np.eye(3), -np.eye(3)])
    score = axes @ cue
    if exclude is not None:
        score[np.abs(axes @ exclude) > 0.5] = -np.inf
    return axes[int(np.argmax(score))]


def skin_faces(mesh: Mesh) -> np.ndarray:
    """The faces of the skin: the ``head`` face group, or every face of a mesh without it."""
    g = mesh.face_groups.get(SKIN_GROUP) if mesh.face_groups else None
    if g is not None and len(g):
        return mesh.faces[g]
    return mesh.faces


def _ear_zone(az: np.ndarray, el: np.ndarray) -> np.ndarray:
    """Directions (head frame) of the ears, where no hair grows (the canonical scalp's rule)."""
    return (np.abs(np.abs(az) - 90.0) < EAR_HALF_WIDTH) & (el < EAR_TOP)


def _cross_sections(v: np.ndarray, f: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """x and z extents (x_lo, x_hi, z_lo, z_hi) of a surface's horizontal sections at heights
    ``ys`` (its local frame: y up), from the edges that cross each height; NaN where none."""
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    a, b = v[e[:, 0]], v[e[:, 1]]
    ylo, yhi = np.minimum(a[:, 1], b[:, 1]), np.maximum(a[:, 1], b[:, 1])
    out = np.full((len(ys), 4), np.nan)
    for i, y in enumerate(ys):
        s = (ylo < y) & (yhi >= y)
        if s.sum() < 8:
            continue
        t = ((y - a[s, 1]) / (b[s, 1] - a[s, 1]))[:, None]
        p = a[s] + t * (b[s] - a[s])
        out[i] = p[:, 0].min(), p[:, 0].max(), p[:, 2].min(), p[:, 2].max()
    return out


def _welded(v: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertices merged by position and the faces on them (a render mesh splits its vertices
    along the UV seams)."""
    _, first, inv = np.unique(np.round(v / 1e-6).astype(np.int64), axis=0, return_index=True, return_inverse=True)
    return v[first], inv.ravel()[f]


def _bottom_rims(loc: np.ndarray, f: np.ndarray, centre_y: float) -> list[np.ndarray]:
    """Closed boundary loops of the surface (head frame, welded) below the skull centre that
    open downwards: the cut under a neck or shoulder stump. Each is an ordered L x 3 polygon."""
    wv, wf = _welded(loc, f)
    e = np.sort(np.concatenate([wf[:, [0, 1]], wf[:, [1, 2]], wf[:, [2, 0]]]), axis=1)
    u, cnt = np.unique(e, axis=0, return_counts=True)
    be = u[cnt == 1]
    nbr: dict[int, list[int]] = {}
    for i, j in be:
        nbr.setdefault(int(i), []).append(int(j))
        nbr.setdefault(int(j), []).append(int(i))
    if any(len(n) != 2 for n in nbr.values()):
        return []  # not simple loops (touching holes): leave the surface as it is
    loops, seen = [], set()
    for start in nbr:
        if start in seen:
            continue
        loop, prev, cur = [start], -1, start
        seen.add(start)
        while True:
            nxt = nbr[cur][0] if nbr[cur][0] != prev else nbr[cur][1]
            if nxt == start or nxt in seen:
                break
            loop.append(nxt)
            seen.add(nxt)
            prev, cur = cur, nxt
        p = wv[loop]
        if len(p) < 6 or p[:, 1].max() >= centre_y:
            continue
        along = wf[np.isin(wf, loop).any(1)]
        if wv[along][..., 1].mean() > p[:, 1].mean():  # the surface rises from it: open downwards
            loops.append(p)
    return loops


def _prism_distance(q: np.ndarray, poly: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signed 2-D distance (x, z) of points to a closed polygon (negative inside), and the
    height of the polygon's nearest point."""
    a = poly[:, [0, 2]]
    b = np.roll(a, -1, axis=0)
    ya, yb = poly[:, 1], np.roll(poly[:, 1], -1)
    x = q[:, [0, 2]]
    best = np.full(len(q), np.inf)
    height = np.zeros(len(q))
    wind = np.zeros(len(q), bool)
    for k in range(len(a)):
        ab = b[k] - a[k]
        t = np.clip(((x - a[k]) @ ab) / max(ab @ ab, 1e-18), 0.0, 1.0)
        d = np.linalg.norm(x - (a[k] + t[:, None] * ab), axis=1)
        closer = d < best
        best = np.where(closer, d, best)
        height = np.where(closer, ya[k] + t * (yb[k] - ya[k]), height)
        # Even-odd rule for inside.
        cross = (a[k, 1] > x[:, 1]) != (b[k, 1] > x[:, 1])
        xint = a[k, 0] + (x[:, 1] - a[k, 1]) * ab[0] / np.where(ab[1] == 0, 1e-18, ab[1])
        wind ^= cross & (x[:, 0] < xint)
    return np.where(wind, -best, best), height


class HeadFit:
    """Everything about one head that strand fitting needs, computed once."""

    def __init__(self, mesh: Mesh, scalp: np.ndarray | None, camera: dict | None = None, voxels: int = 56):
        self.key = ""
        from scipy.spatial import cKDTree

        v = mesh.vertices.astype(np.float64)
        f = skin_faces(mesh)
        skin = np.unique(f)
        self.vertices = v
        if scalp is None or len(scalp) == 0:
            scalp = skin[v[skin, 1] > np.percentile(v[skin, 1], 70)]
        scalp = np.asarray(scalp, np.int64)
        if camera and "R" in camera:
            # A portrait is taken upright and roughly from the front: the camera's up and
            # viewing axes, snapped to the mesh axes, give the head's up and face axes.
            Rc = np.asarray(camera["R"], float)
            up_cue, fwd_cue = -Rc[1], -Rc[2]
        else:  # no photo camera: the convention of engines.types (y up, z out of the face)
            up_cue, fwd_cue = np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0])
        up = _snap_axis(up_cue)
        fwd = _snap_axis(fwd_cue - (fwd_cue @ up) * up, exclude=up)
        self.axes = np.stack([np.cross(up, fwd), up, fwd], 1)  # columns: head x, y, z in world
        loc = v @ self.axes
        self.scale, centre_loc = _skull_frame(loc, f, skin, scalp)
        self.centre = self.axes @ centre_loc
        # The scalp, less the ears (an avatar's scalp may run over them; roots never do).
        az, el = direction_angles(_unit((loc[scalp] - centre_loc) / (self.scale * HEAD_RADII)))
        self.scalp_mask = np.zeros(len(v), bool)
        self.scalp_mask[scalp[~_ear_zone(az, el)]] = True
        self.hairline = self._measure_hairline(loc[scalp] - centre_loc)
        self._build_sdf(mesh, v, f, voxels)
        self.skin = skin
        self.tree = cKDTree(v[skin])
        self.alpha_cache: dict = {}

    # -- frame helpers --------------------------------------------------------------
    def to_world(self, p_canon: np.ndarray) -> np.ndarray:
        return (p_canon * self.scale) @ self.axes.T + self.centre

    def to_canonical(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.centre) @ self.axes) / self.scale

    def _measure_hairline(self, scalp_loc: np.ndarray) -> np.ndarray:
        q = _unit(scalp_loc / (self.scale * HEAD_RADII))
        az, el = direction_angles(q)
        ok = ~_ear_zone(az, el)
        az, el = az[ok], el[ok]
        out = hairline_at(_AZ_BINS, DEFAULT_HAIRLINE)
        for i, a in enumerate(_AZ_BINS):
            d = np.abs((az - a + 180) % 360 - 180)
            sel = el[d < 7.5]
            if len(sel) >= 3:
                out[i] = np.percentile(sel, 3)
        return out

    def hairline_at(self, az: np.ndarray) -> np.ndarray:
        return np.interp(az, _AZ_BINS, self.hairline, period=360.0)

    # -- signed distance ------------------------------------------------------------
    def _build_sdf(self, mesh: Mesh, v, f, voxels: int) -> None:
        from scipy.spatial import cKDTree

        rng = np.random.default_rng(0)
        fn = _face_normals(v, f)
        area = 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)
        sv = v[np.unique(f)]
        lo, hi = sv.min(0) - 0.04, sv.max(0) + 0.04
        h = float((hi - lo).max() / (voxels - 1))
        n_s = int(np.clip(area.sum() / (0.5 * h) ** 2, 20000, 60000))
        tri = rng.choice(len(f), n_s, p=area / area.sum())
        r1, r2 = np.sqrt(rng.uniform(size=n_s)), rng.uniform(size=n_s)
        bary = np.stack([1 - r1, r1 * (1 - r2), r1 * r2], 1)
        samples = np.einsum("nk,nkd->nd", bary, v[f[tri]])
        # Largest displacement any morph target gives each vertex (cap 3 cm).
        disp = np.zeros(len(v))
        for off in mesh.morph_targets.values():
            if len(off) == len(v):
                disp = np.maximum(disp, np.linalg.norm(off, axis=1))
        disp = np.minimum(disp, 0.03)
        s_disp = np.einsum("nk,nk->n", bary, disp[f[tri]])
        dims = np.ceil((hi - lo) / h).astype(int) + 1
        axes = [lo[i] + h * np.arange(dims[i]) for i in range(3)]
        G = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
        dist, idx = cKDTree(samples).query(G, workers=1)
        plane = np.einsum("nd,nd->n", G - samples[idx], fn[tri[idx]])
        sign = np.where(plane < 0, -1.0, 1.0)
        # Near the surface the sample's face plane is far closer to the true distance than the
        # sample itself (which lies up to about one sample spacing to the side).
        rho2 = area.sum() / n_s
        mag = np.sqrt(np.maximum(plane**2, dist**2 - rho2))
        sdf = sign * mag - s_disp[idx]
        # Under the cut at the bottom of the neck or shoulders the body goes on: below a
        # bottom rim the distance is the one to the rim's outline extruded straight down.
        Gl = G @ self.axes
        cut = np.full(len(G), np.inf)
        self.rim_top = -np.inf
        for poly in _bottom_rims(v @ self.axes, f, float((self.centre @ self.axes)[1])):
            below = Gl[:, 1] < poly[:, 1].max() + 2 * h
            d2, y_rim = _prism_distance(Gl[below], poly)
            sdf[below] = np.where(Gl[below, 1] < y_rim, d2, sdf[below])
            if 0.5 * np.ptp(poly[:, 0]) > self.scale[0] * HEAD_RADII[0]:
                # A bust (the rim is wider than the skull: shoulders): where hair would go on
                # down along the body under its cut, it ends. Under a bare neck it hangs on.
                self.rim_top = max(self.rim_top, float(poly[:, 1].max()) + 2 * h)
                near = np.maximum(Gl[below, 1] - y_rim, d2 - CUT_REACH * self.scale[1])
                cut[below] = np.minimum(cut[below], near)
        self.cut_grid = None if np.isinf(cut).all() else np.minimum(cut, 1.0).reshape(dims).astype(np.float32)
        sdf = sdf.reshape(dims)
        self.grid_lo, self.grid_h, self.sdf_grid = lo, h, sdf.astype(np.float32)
        self.grad_grid = np.stack(np.gradient(sdf, h), 0).astype(np.float32)

    def sdf(self, x: np.ndarray, with_grad: bool = False):
        """Conservative signed distance (m, negative inside) at world points N x 3."""
        from scipy.ndimage import map_coordinates

        c = ((x - self.grid_lo) / self.grid_h).T
        d = map_coordinates(self.sdf_grid, c, order=1, mode="nearest")
        if not with_grad:
            return d
        g = np.stack([map_coordinates(self.grad_grid[i], c, order=1, mode="nearest") for i in range(3)], 1)
        return d, _unit(g)

    def beyond_bust(self, x: np.ndarray) -> np.ndarray:
        """Points under the bottom rim of the skin and near the body: hair ends before them."""
        if self.cut_grid is None:
            return np.zeros(len(x), bool)
        from scipy.ndimage import map_coordinates

        c = ((x - self.grid_lo) / self.grid_h).T
        return map_coordinates(self.cut_grid, c, order=1, mode="nearest") < 0

    def in_scalp(self, x: np.ndarray) -> np.ndarray:
        _, i = self.tree.query(x)
        return self.scalp_mask[self.skin[i]]


def _skull_frame(loc: np.ndarray, f: np.ndarray, skin: np.ndarray, scalp: np.ndarray):
    """Scale (x, y, z) and centre (head frame) that map the canonical skull onto this skin.

    Width and depth are the ratios of the skin's horizontal sections to the canonical head's
    at the same heights above the ear plane (:data:`_SECTIONS`, fractions of the canonical
    height: above the ears and brows, where the canonical head is its plain ellipsoid); the
    height scale is their geometric mean and the top of the skin sets the vertical centre.
    Falls back to the scalp's extent when the sections cannot be measured.
    """
    c_ext, c_top = _canonical_sections()
    top = float(loc[skin, 1].max())
    sy = 1.0
    ext = None
    for _ in range(4):
        ys = top - sy * (c_top - _SECTIONS * HEAD_RADII[1])
        e = _cross_sections(loc, f, ys)
        ok = np.isfinite(e).all(1) & np.isfinite(c_ext).all(1)
        if ok.sum() < 2:
            ext = None
            break
        ext = (e[ok], c_ext[ok])
        sx = float(np.median((e[ok, 1] - e[ok, 0]) / (c_ext[ok, 1] - c_ext[ok, 0])))
        sz = float(np.median((e[ok, 3] - e[ok, 2]) / (c_ext[ok, 3] - c_ext[ok, 2])))
        sy = float(np.sqrt(sx * sz))
    if ext is not None:
        e, ce = ext
        cx = float(np.mean(0.5 * (e[:, 0] + e[:, 1]) - sx * 0.5 * (ce[:, 0] + ce[:, 1])))
        cz = float(np.mean(0.5 * (e[:, 2] + e[:, 3]) - sz * 0.5 * (ce[:, 2] + ce[:, 3])))
        return np.array([sx, sy, sz]), np.array([cx, top - sy * c_top, cz])
    s_lo, s_hi = np.percentile(loc[scalp], [1, 99], axis=0)
    c_lo, c_hi, c_top = _canonical_scalp_stats()
    sx = (s_hi[0] - s_lo[0]) / (c_hi[0] - c_lo[0])
    sz = (s_hi[2] - s_lo[2]) / (c_hi[2] - c_lo[2])
    sy = float(np.sqrt(sx * sz))
    centre_loc = np.array(
        [
            0.5 * (s_hi[0] + s_lo[0]) - sx * 0.5 * (c_hi[0] + c_lo[0]),
            loc[scalp, 1].max() - sy * c_top,
            0.5 * (s_hi[2] + s_lo[2]) - sz * 0.5 * (c_hi[2] + c_lo[2]),
        ]
    )
    return np.array([sx, sy, sz]), centre_loc


@lru_cache(maxsize=1)
def _canonical_sections():
    v, f, _ = _canonical_geometry()
    top = float(v[:, 1].max())
    return _cross_sections(v.astype(np.float64), f, _SECTIONS * HEAD_RADII[1]), top


@lru_cache(maxsize=1)
def _canonical_scalp_stats():
    v, _, sc = _canonical_geometry()
    s = v[sc]
    lo, hi = np.percentile(s, [1, 99], axis=0)
    return lo, hi, float(s[:, 1].max())


_fits: OrderedDict[str, HeadFit] = OrderedDict()
_lock = threading.Lock()


def _head_key(mesh: Mesh, scalp, camera) -> str:
    hsh = hashlib.blake2b(digest_size=16)
    hsh.update(np.ascontiguousarray(mesh.vertices).tobytes())
    hsh.update(np.ascontiguousarray(mesh.faces).tobytes())
    g = mesh.face_groups.get(SKIN_GROUP) if mesh.face_groups else None
    if g is not None:
        hsh.update(np.ascontiguousarray(g, np.int64).tobytes())
    if scalp is not None:
        hsh.update(np.asarray(scalp, np.int64).tobytes())
    if camera and "R" in camera:
        hsh.update(np.round(np.asarray(camera["R"], float), 1).tobytes())
    for k in sorted(mesh.morph_targets):
        hsh.update(k.encode())
        hsh.update(np.ascontiguousarray(mesh.morph_targets[k]).tobytes()[:4096])
    return hsh.hexdigest()


def cached_head_key(mesh: Mesh, scalp, camera=None) -> str | None:
    """The cache key of this head if it has been analysed already, else None."""
    key = _head_key(mesh, scalp, camera)
    with _lock:
        return key if key in _fits else None


def head_fit(mesh: Mesh, scalp: np.ndarray | None, camera: dict | None = None) -> HeadFit:
    """The cached :class:`HeadFit` of a head (keyed by its vertices, faces, scalp, targets, pose)."""
    key = _head_key(mesh, scalp, camera)
    with _lock:
        hf = _fits.get(key)
        if hf is not None:
            _fits.move_to_end(key)
            return hf
    hf = HeadFit(mesh, scalp, camera)
    hf.key = key
    with _lock:
        _fits[key] = hf
        while len(_fits) > 4:
            _fits.popitem(last=False)
    return hf


def _push_out(hf: HeadFit, flat: np.ndarray, iterations: int, d: np.ndarray | None = None) -> np.ndarray:
    """Move points closer than :data:`SKIN_MARGIN` out along the distance gradient (in place);
    returns their distances afterwards. ``d``: their distances now, when known."""
    d = hf.sdf(flat) if d is None else d.copy()
    idx = np.nonzero(d < SKIN_MARGIN)[0]
    for _ in range(iterations):
        if len(idx) == 0:
            break
        dd, g = hf.sdf(flat[idx], with_grad=True)
        flat[idx] += (SKIN_MARGIN - dd + 0.0005)[:, None] * g
        d[idx] = hf.sdf(flat[idx])
        idx = idx[d[idx] < SKIN_MARGIN]
    return d


def _drape(hf: HeadFit, strands: np.ndarray, start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lay strands again from point ``start`` on (per strand, >= 1): each segment keeps its
    rest direction and length unless that enters the skin, where the point is projected out
    and the segment turned back to its length (follow the leader), so hair slides over the
    body. Returns the strands and the distance of each point."""
    S, P, _ = strands.shape
    order = np.argsort(start, kind="stable")
    k0 = start[order]
    rest = np.ascontiguousarray(strands[order].transpose(1, 0, 2))
    out = rest.copy()
    dist = hf.sdf(rest.reshape(-1, 3)).reshape(P, S)
    for k in range(max(1, int(k0[0])), P):
        n = int(np.searchsorted(k0, k, side="right"))  # strands laid again from here: a prefix
        prev = out[k - 1, :n]
        seg = rest[k, :n] - rest[k - 1, :n]
        p = prev + seg
        d = hf.sdf(p)
        hit = np.nonzero(d < SKIN_MARGIN)[0]
        if len(hit):
            ph, pv = p[hit], prev[hit]
            L = np.linalg.norm(seg[hit], axis=1, keepdims=True)
            dh, g = hf.sdf(ph, with_grad=True)
            for it in range(3):
                m = np.nonzero(dh < SKIN_MARGIN)[0]
                if len(m) == 0:
                    break
                if it == 2:  # a last step along the gradient where the point is now
                    g[m] = hf.sdf(ph[m], with_grad=True)[1]
                q = ph[m] + (SKIN_MARGIN - dh[m] + 0.0005)[:, None] * g[m]
                ph[m] = pv[m] + L[m] * _unit(q - pv[m])
                dh[m] = hf.sdf(ph[m])
            p[hit] = ph
            d[hit] = dh
        out[k, :n] = p
        dist[k, :n] = d
    inv = np.argsort(order)
    return out.transpose(1, 0, 2)[inv], dist.T[inv]


def _clear_face(hf: HeadFit, world: np.ndarray, iterations: int) -> np.ndarray:
    """Keep the face clear on this head (in place), as the generator does on the canonical one:
    a point in front of the face plane (head frame, :func:`engines.hair.generate.face_plane_z`)
    is moved back onto it and then sideways out of the skin, and a fringe that the hairline
    stretch lowered over the eyes is cut above the brows again. Roots stay. Returns the
    indices (into the flattened points) of what moved."""
    S, P, _ = world.shape
    c = hf.to_canonical(world.reshape(-1, 3)).reshape(S, P, 3)
    zmax = face_plane_z(c[..., 1])
    zmax[:, 0] = np.inf
    over = c[..., 2] > zmax
    if not over.any():
        return np.zeros(0, np.int64)
    # Over the face (where the canonical face itself stands well in front of the plane) a
    # point can only be a fringe: it is cut above the brows. Beside the face it goes back.
    q = 1.0 - (c[..., 0] / HEAD_RADII[0]) ** 2 - (c[..., 1] / HEAD_RADII[1]) ** 2
    across = over & (HEAD_RADII[2] * np.sqrt(np.maximum(q, 0.0)) > zmax + 0.01)
    cut = across & (c[..., 1] < BROW_Y + 0.004)
    rows = np.nonzero(cut.any(1))[0]
    cut_pts = (rows[:, None] * P + np.arange(P)[None, :]).ravel()
    if len(rows):
        world[rows] = _shorten(world[rows], np.maximum(np.argmax(cut[rows], axis=1), 2))
        c[rows] = hf.to_canonical(world[rows].reshape(-1, 3)).reshape(len(rows), P, 3)
        over[rows] = c[rows, :, 2] > zmax[rows]
    side = over & ~across
    c[..., 2] = np.where(side, zmax, c[..., 2])
    moved = np.nonzero(side.reshape(-1))[0]
    flat = world.reshape(-1, 3)
    flat[moved] = hf.to_world(c.reshape(-1, 3)[moved])
    # Beside the face: out of the cheek along the head's x axis only (staying behind the plane).
    ix = np.nonzero(side.reshape(-1))[0]
    sx = np.sign(c.reshape(-1, 3)[ix, 0])[:, None] * hf.axes[:, 0][None, :]
    for _ in range(2 * iterations):
        if len(ix) == 0:
            break
        d = hf.sdf(flat[ix])
        short = d < SKIN_MARGIN
        ix, sx, d = ix[short], sx[short], d[short]
        flat[ix] += (SKIN_MARGIN - d + 0.001)[:, None] * sx
    return np.union1d(cut_pts, moved)


def _hold(hf: HeadFit, world: np.ndarray, standoff: float, d: np.ndarray) -> np.ndarray:
    """Pull points that stand more than ``standoff`` metres off the skin back to it, along the
    distance gradient (in place): a short cut lies on the head, it has no brim. ``d``: the
    points' distances now. Returns the indices (flattened) of the points moved."""
    flat = world.reshape(-1, 3)
    far = np.nonzero(d.reshape(-1) > standoff)[0]
    if len(far):
        dd, g = hf.sdf(flat[far], with_grad=True)
        flat[far] -= (dd - standoff)[:, None] * g
    return far


def fit_strands(
    canon: np.ndarray, hf: HeadFit, iterations: int = 3, standoff: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Fit canonical strands (S x P x 3) to a head; returns world strands and the kept mask.

    ``standoff`` (m, 0 = none): the farthest a point may stand off the skin (a recipe's
    ``standoff``, for short cuts)."""
    S, P, _ = canon.shape
    if S == 0:
        return canon.astype(np.float32), np.zeros(0, bool)
    pts = canon.astype(np.float64)
    # 1. Hairline: stretch root elevations so the canonical hairline meets the head's.
    root = pts[:, 0]
    q = _unit(root / HEAD_RADII)
    az, el = direction_angles(q)
    h_can = _canonical_hairline(az)
    h_head = hf.hairline_at(az)
    el2 = 90.0 - (90.0 - el) * (90.0 - h_head) / np.maximum(90.0 - h_can, 1.0)
    el2 = np.where(el > h_can - 25.0, el2, el)
    a, e = np.radians(az), np.radians(el2)
    q2 = np.stack([np.cos(e) * np.sin(a), np.sin(e), np.cos(e) * np.cos(a)], 1)
    pts += (q2 * HEAD_RADII * np.linalg.norm(root / HEAD_RADII, axis=1, keepdims=True) - root)[:, None]
    # 2. Into the head frame, then slide each strand so its root sits on the real skin.
    world = hf.to_world(pts.reshape(-1, 3)).reshape(S, P, 3)
    r0 = world[:, 0]
    ray = r0 - hf.centre
    # Coarse march outwards along each ray, then bisect the last inside/outside bracket.
    ts = np.linspace(0.4, 1.8, 25)
    samples = hf.centre + ray[:, None] * ts[None, :, None]
    d = hf.sdf(samples.reshape(-1, 3)).reshape(S, len(ts))
    inside = d < 0
    has = inside.any(1)
    last_in = len(ts) - 1 - np.argmax(inside[:, ::-1], axis=1)
    lo = ts[last_in]
    hi = ts[np.minimum(last_in + 1, len(ts) - 1)]
    for _ in range(4):
        mid = 0.5 * (lo + hi)
        dm = hf.sdf(hf.centre + ray * mid[:, None])
        lo, hi = np.where(dm < 0, mid, lo), np.where(dm < 0, hi, mid)
    t_hit = 0.5 * (lo + hi)
    target = hf.centre + ray * np.where(has, t_hit, 1.0)[:, None]
    world += (target - r0)[:, None]
    keep = hf.in_scalp(world[:, 0])
    # 3. Collision. Strands that go deep into the body below the skull (long hair through
    #    the shoulders, a tail through the back) are draped, laid again segment by segment
    #    from where they first come near the skin; every other point is pushed out along
    #    the distance gradient.
    flat = world.reshape(-1, 3)
    d0 = hf.sdf(flat).reshape(S, P)
    low = (flat @ hf.axes[:, 1] < hf.centre @ hf.axes[:, 1]).reshape(S, P)
    deep = ((d0 < -DEEP) & low).any(1)
    dist = d0.copy()
    rows = np.nonzero(~deep)[0]
    if len(rows):
        part = world[rows].reshape(-1, 3)
        dist[rows] = _push_out(hf, part, iterations, d0[rows].ravel()).reshape(-1, P)
        world[rows] = part.reshape(-1, P, 3)
    rows = np.nonzero(deep)[0]
    if len(rows):
        sub = world[rows]
        roots = sub[:, 0].copy()
        _push_out(hf, roots, iterations, d0[rows, 0])
        sub += (roots - sub[:, 0])[:, None]
        touch = d0[rows] < SKIN_MARGIN + 0.005
        touch[:, 0] = False
        world[rows], dist[rows] = _drape(hf, sub, np.argmax(touch, axis=1))
    # 4. Short cuts lie on this head, and the face stays clear on it.
    moved = _hold(hf, world, standoff, dist) if standoff > 0 else np.zeros(0, np.int64)
    moved = np.union1d(moved, _clear_face(hf, world, iterations))
    if len(moved):
        dist.reshape(-1)[moved] = hf.sdf(flat[moved])
    # 5. Whatever still cannot get out is cut where it enters the skin, and hair that would
    #    go on down the body under the bust's bottom rim ends at the rim.
    end = dist < 0.5 * SKIN_MARGIN
    low = np.nonzero(flat @ hf.axes[:, 1] < hf.rim_top)[0]
    if len(low):
        end.reshape(-1)[low] |= hf.beyond_bust(flat[low])
    rows = np.nonzero(end.any(1))[0]
    if len(rows):
        c = np.argmax(end[rows], axis=1)
        keep[rows[c <= 1]] = False
        ok = c > 1
        world[rows[ok]] = _shorten(world[rows[ok]], c[ok])
    return world.astype(np.float32), keep


def _shorten(strands: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Strands cut after their first ``n`` points (n >= 2 each): the points from there on are
    spread over the last segment kept, so that the strand ends at its point ``n - 1`` and
    every segment keeps a length (no points inside, no degenerate cards)."""
    R, P, _ = strands.shape
    k = np.arange(P)[None, :]
    a = (n - 2)[:, None]
    t = np.clip((k - a) / np.maximum(P - 1 - a, 1), 0.0, 1.0)[..., None]
    rows = np.arange(R)
    p0, p1 = strands[rows, n - 2][:, None], strands[rows, n - 1][:, None]
    return np.where((k < a)[..., None], strands, p0 + t * (p1 - p0))


@lru_cache(maxsize=1)
def _canonical_fit_hairline() -> np.ndarray:
    v, _, sc = _canonical_geometry()
    hf = HeadFit.__new__(HeadFit)
    hf.scale = np.ones(3)
    return hf._measure_hairline(v[sc])


def _canonical_hairline(az: np.ndarray) -> np.ndarray:
    return np.interp(az, _AZ_BINS, _canonical_fit_hairline(), period=360.0)


def front_camera(image_size=(512, 512), distance: float = 0.75, focal: float = 1.6) -> dict:
    """A portrait camera in front of the canonical head (OpenCV axes, ``x_cam = R X + t``).

    ``focal`` is in units of the longer image side; the head centre projects a little above
    the image centre, as in a head-and-shoulders portrait.
    """
    w, h = image_size
    f = focal * max(w, h)
    K = np.array([[f, 0, w / 2], [0, f, h * 0.42], [0, 0, 1.0]])
    R = np.diag([1.0, -1.0, -1.0])
    t = np.array([0.0, 0.0, distance])
    return {"K": K, "R": R, "t": t, "image_size": (int(w), int(h))}


def canonical_avatar(image_size=(512, 512)):
    """An Avatar of the canonical head with a frontal camera (thumbnails, tests, fallback)."""
    from engines.types import Avatar

    mesh, scalp = canonical_head()
    return Avatar(mesh=mesh, scalp=scalp, camera=front_camera(image_size), name="canonical")
