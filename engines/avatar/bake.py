"""Texture bake: one portrait photo into the ICT head's UV atlas (:func:`ict.render_layout`).

For a head already fitted to the photo (ICT topology, head frame, metres; camera
``x = K (R X + t)``), :func:`bake_texture` fills the whole atlas:

* **Face and back of the head** (``M_Face``, ``M_BackHead``). A texel map, computed once per
  atlas size and cached (it depends only on the layout), gives each texel its render
  triangle and barycentrics. Per bake, each texel's surface point and normal come from the
  fitted vertices; the point is projected into the photo and weighted by visibility (a
  z-buffer of the head's skin from the photo camera, :mod:`engines.avatar.raster`), by how
  squarely the surface faced the camera (the cosine of normal and view ray, faded to 0 at
  grazing angles) and by the skin mask (:mod:`engines.avatar.skin`: person segmentation and
  a per-photo skin colour model; eyes and the inner mouth out, brows, lips and nostrils in).
  What the photo did not see is filled as in view-based texture completion for single-image
  face models (e.g. Deng et al., "UV-GAN", CVPR 2018, where symmetry is the classic
  non-learned completion): first from the mirrored surface point (the model is left-right
  symmetric: same barycentrics on the mirrored triangle of the fitted head), where that was
  seen much better (the far cheek of a turned face, one side of a fringe), then from a
  smooth colour field solved on the mesh, a screened Poisson problem with a data term,
  ``(A (w + mu) + lambda L) c = A (w c_photo + mu c_target)``, with the cotangent Laplacian
  ``L`` and lumped vertex areas ``A`` of the neutral head: it follows the photo's low
  frequencies where it was seen and relaxes over a few centimetres towards the skin tone
  (slightly darker towards the back and the neck) where it was not, and towards the
  procedural dark reds inside the mouth and eye sockets. Because the field lives on the
  vertices, not in the atlas, both sides of every UV seam (face tile / back tile, lips /
  mouth socket, eyelids / eye sockets) get the same colour. The photo weight is feathered to
  0 towards the border of the seen region and of each chart (the skin mask's edges are soft
  and pulled inside the skin), so texels blend into the field without a seam; charts are
  padded by replicating their border texels.
* **Eyes, mouth and lashes**: procedural. The sclera map near-white, slightly warm,
  darker towards its rim; the iris (on the iris map, and on the sclera map's cornea,
  which covers the iris in an opaque render) coloured from the photo's iris pixels
  (landmarks 468-477), with radial structure, a dark limbal ring and a dark pupil; its
  radii in each map come from the UVs of the ICT iris and sclera vertices, its size from
  the photo's iris / eye-width ratio. Teeth ivory, gums and tongue pink-red, darker towards
  the back. Lashes near black at the root of the upper lashes, fading to the colour of the
  skin under them (the atlas has no alpha: opaque black lash cards read as painted bands).

Resolution and speed: geometry (positions, normals, projections, weights) is evaluated at
a reduced grid (:data:`GEOMETRY_FACE_PX` across the face tile), whose photo coordinates and
weights are upsampled (they are smooth); photo colours and the skin mask are looked up at
the detail grid (at most :data:`DETAIL_FACE_PX`, about twice the photo's own resolution,
OpenCV ``remap``), then resized to the atlas. The photo is cropped to the head and
resampled so the face has :data:`CROP_IOD_PX` between the eyes (small faces upsampled
bicubically before sampling, huge ones blurred and shrunk). The colour field is solved
(SuperLU) in a worker thread while the photo lookups run. About 0.2 s warm at 2048 on two
cores; the per-layout caches (:func:`warm_up`) take about 0.4 s once.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from engines.avatar.ict import ATLAS, KEPT_MATERIALS, load_model, render_layout

ATLAS_SIZE = 2048
GEOMETRY_FACE_PX = 384
"""Geometry grid across the face tile (the back tile in proportion)."""
DETAIL_FACE_PX = 1024
"""Photo lookups across the face tile at most (then resized to the atlas' face tile); less
for photos with fewer pixels across the face (:func:`detail_px_for`)."""
CROP_IOD_PX = (160.0, 320.0)
"""The photo crop is resampled so the inter-ocular distance lies in this range."""
MAX_CROP_PIXELS = 12_000_000
"""Upper bound on the resampled photo crop (a head box far larger than its eye distance)."""
MASK_IOD_PX = 100.0
"""The skin mask is computed with about this inter-ocular distance."""
ZBUF_IOD_PX = 64.0
"""The visibility z-buffer is rendered with about this inter-ocular distance."""
FACING = (0.1, 0.4)
"""cos(normal, view ray): photo weight 0 below the first, 1 above the second."""
DEPTH_TOL_M = (0.002, 0.005)
"""Visibility fades out between these depths behind the z-buffer (metres)."""
FEATHER_M = 0.008
"""Photo weights fade to 0 over this surface distance from the border of the seen region."""
MIRROR_GATE = (0.2, 0.5)
"""The mirrored sample is used where its weight exceeds the direct one by this much."""
SMOOTH_M, DECAY_M, SOCKET_M = 0.004, 0.06, 0.003
"""Colour field: smoothing length where seen, decay length towards the skin tone where not,
and towards the procedural colours inside the mouth and eye sockets."""
DELIGHT_GAIN_MAX = 1.6
"""The photo's shading is taken out up to this gain: skin the photo shows darker than its
average because it turned away from the light (a face's sides, the shadowed cheek) is
brightened at most this much (:func:`shading_gain`)."""
DELIGHT_NORMALS_M = 0.015
"""The shading taken out is that of the head's normals smoothed over this length: the face
turning away from the light (its sides, under the jaw), not the folds and wrinkles, whose
shading cannot be told from the skin's own colour and stays as photographed."""

SCLERA_RGB = np.array([232, 226, 217], np.float32)
SCLERA_RIM_RGB = np.array([196, 166, 158], np.float32)
SCLERA_LUM = (150.0, 226.0)
"""Lightness range of the painted sclera (the default white is 226)."""
SCLERA_PER_SKIN = 1.25
"""Sclera lightness / skin lightness where nothing of the eyes can be measured."""
PUPIL_SHARE = 0.7
"""Mean lightness of iris plus pupil / the iris colour's lightness."""
PUPIL_RGB = np.array([10, 9, 9], np.float32)
IRIS_FALLBACK_RGB = np.array([78, 54, 38], np.float32)
TEETH_RGB = np.array([232, 223, 200], np.float32)
GUMS_RGB = np.array([196, 104, 104], np.float32)
MOUTH_LIP_RGB = np.array([168, 80, 80], np.float32)
MOUTH_DEEP_RGB = np.array([62, 22, 24], np.float32)
EYE_SOCKET_RGB = np.array([150, 92, 88], np.float32)
EYE_SOCKET_DEEP_RGB = np.array([58, 32, 32], np.float32)
LASH_RGB = np.array([24, 19, 17], np.float32)
PUPIL_FRACTION = 0.38
"""Pupil radius / iris radius."""

PART_FACE, PART_HEAD, PART_MOUTH, PART_EYE_SOCKET, PART_OTHER = 0, 1, 2, 3, 4
_TILES = {
    "face": ("M_Face",),
    "back": ("M_BackHead",),
    "gums": ("M_GumsTongue",),
    "teeth": ("M_Teeth",),
    "lashes": ("M_EyeLashes",),
}


@dataclass
class BakeResult:
    texture: np.ndarray
    """size x size x 3 uint8, row 0 = the top of the image (v = 1)."""
    seen_fraction: float
    """Fraction of the face tile's texels the photo saw (visible and facing, weight > 0.5)."""
    skin_rgb: np.ndarray
    """The measured skin tone (RGB float)."""
    iris_rgb: np.ndarray
    """The iris colour used (RGB float)."""
    mask_coverage: float
    """Mean skin-mask value over the seen face texels (how much of what was seen was skin)."""
    fill_rgb: np.ndarray | None = None
    """The tone the unseen skin (scalp, back of the head, neck) relaxes to."""
    iris_measured: bool = False
    """True when the iris colour came from the photo (not given, not the fallback)."""
    photo_weight: np.ndarray | None = field(default=None, repr=False)
    """Face tile photo weight (direct + mirrored, after feathering and the skin mask) at
    the geometry grid, row 0 = top."""
    timings: dict = field(default_factory=dict)
    sclera_rgb: np.ndarray | None = None
    """The sclera colour painted (the photo's, or the default white at its exposure)."""
    glasses_found: bool = False
    """True when eyeglass frames were found on the face (and left out of the skin)."""


# ---------------------------------------------------------------------------------------
# layout: tiles and texel maps (cached per atlas size)


def tile_rect(name: str, size: int) -> tuple[int, int, int, int]:
    """(col0, row0, cols, rows) of a tile (``face``, ``back``, ``gums``, ``teeth``, ``lashes``,
    ``sclera``, ``iris``) in a size x size atlas, row 0 = top."""
    mat = {"sclera": "M_ScleraLeft", "iris": "M_IrisLeft"}.get(name) or _TILES[name][0]
    u0, v0, w, h, _ = ATLAS[mat]
    c0, r0 = round(u0 * size), round((1.0 - v0 - h) * size)
    return c0, r0, round((u0 + w) * size) - c0, round((1.0 - v0) * size) - r0


@dataclass
class TileMap:
    name: str
    cols: int
    rows: int
    idx: np.ndarray
    """K flat texel indices (row-major, row 0 = top) covered by a triangle."""
    tri: np.ndarray
    """K render triangles."""
    bary: np.ndarray
    """K x 3 barycentrics (float32)."""
    vsrc: np.ndarray
    """K x 3 model vertices of the triangle."""
    part: np.ndarray
    """K part codes (PART_FACE, PART_HEAD, PART_MOUTH, PART_EYE_SOCKET, PART_OTHER)."""
    chart: np.ndarray
    """rows x cols bool: covered texels."""
    filled: np.ndarray
    """rows x cols bool: covered texels with the holes inside charts (eyes, mouth) filled."""
    m_per_texel: float
    """Median surface length of one texel (metres, neutral head)."""
    nearest: np.ndarray
    """rows x cols: flat index of the nearest covered texel (padding by replication)."""


def _part_codes(n: int) -> np.ndarray:
    m = load_model()
    code = np.full(n, PART_OTHER, np.int8)
    for name, c in (
        ("face", PART_FACE),
        ("head_and_neck", PART_HEAD),
        ("mouth_socket", PART_MOUTH),
        ("eye_socket_left", PART_EYE_SOCKET),
        ("eye_socket_right", PART_EYE_SOCKET),
    ):
        a, b = m.parts[name]
        code[a:b] = c
    return code


def _tile_map(name: str, cols: int, rows: int) -> TileMap:
    from scipy import ndimage

    from engines.avatar.raster import rasterize

    m, lay = load_model(), render_layout()
    mats = [KEPT_MATERIALS.index(k) for k in _TILES[name]]
    faces_i = np.flatnonzero(np.isin(lay.face_material, mats))
    u0, v0, w, h, _ = ATLAS[_TILES[name][0]]
    uv = lay.uv.astype(np.float64)
    xy = np.column_stack([(uv[:, 0] - u0) / w * cols - 0.5, (1.0 - (uv[:, 1] - v0) / h) * rows - 0.5])
    r = rasterize(xy, np.ones(len(uv)), lay.faces[faces_i], (cols, rows), cull_back=False, max_candidates=200_000_000)
    idx = np.flatnonzero(r.tri.ravel() >= 0)
    tri = faces_i[r.tri.ravel()[idx]]
    bary = r.bary.reshape(-1, 3)[idx].astype(np.float32)
    vsrc = lay.src[lay.faces[tri]]
    part = _part_codes(m.n_vertices)[vsrc[:, 0]]
    chart = r.tri >= 0
    filled = ndimage.binary_fill_holes(chart)
    f = lay.faces[faces_i]
    e3 = np.linalg.norm(m.neutral[lay.src[f[:, 0]]] - m.neutral[lay.src[f[:, 1]]], axis=1) * 0.01
    et = np.linalg.norm(xy[f[:, 0]] - xy[f[:, 1]], axis=1)
    ok = et > 1e-6
    mpt = float(np.median(e3[ok] / et[ok])) if ok.any() else 1e-3
    return TileMap(name, cols, rows, idx, tri, bary, vsrc, part, chart, filled, mpt, _nearest_covered(chart))


def _nearest_covered(chart: np.ndarray) -> np.ndarray:
    """Per texel, the flat index of the nearest covered texel (itself where covered)."""
    import cv2

    holes = (~chart).astype(np.uint8)
    if not chart.any():
        return np.arange(chart.size).reshape(chart.shape)
    _, labels = cv2.distanceTransformWithLabels(holes, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    ys, xs = np.nonzero(chart)
    lut = np.zeros(int(labels.max()) + 1, np.int64)
    lut[labels[ys, xs]] = ys * chart.shape[1] + xs
    return lut[labels]


def _check_size(size: int) -> None:
    if size < 256 or size % 16:
        raise ValueError(f"atlas size {size}: use a multiple of 16, at least 256")


def _grids(size: int, detail_px: int = DETAIL_FACE_PX) -> dict[str, tuple]:
    """Per baked tile: ((cols, rows) geometry, (cols, rows) detail, (cols, rows) atlas)."""
    out = {}
    face_cols = tile_rect("face", size)[2]
    g = min(1.0, GEOMETRY_FACE_PX / face_cols)
    d = min(1.0, detail_px / face_cols)
    for name in ("face", "back"):
        _, _, c, r = tile_rect(name, size)
        out[name] = ((max(8, round(c * g)), max(8, round(r * g))), (max(8, round(c * d)), max(8, round(r * d))), (c, r))
    return out


@lru_cache(maxsize=1)
def face_tile_iod() -> float:
    """Distance between the eye centres (mid-corners) in face-tile widths."""
    m, lay = load_model(), render_layout()
    face_rv = np.unique(lay.faces[lay.face_material == KEPT_MATERIALS.index("M_Face")])
    uv_of = {int(v): lay.uv[r] for r, v in zip(face_rv, lay.src[face_rv])}
    l68 = m.landmarks68
    c1 = 0.5 * (uv_of[int(l68[36])] + uv_of[int(l68[39])])
    c2 = 0.5 * (uv_of[int(l68[42])] + uv_of[int(l68[45])])
    return float(np.linalg.norm(c1 - c2) / ATLAS["M_Face"][2])


def detail_px_for(iod_px: float) -> int:
    """Detail grid across the face tile for a photo's eye distance: twice the photo's
    resolution (finer adds nothing but time), between 512 and :data:`DETAIL_FACE_PX`."""
    want = 2.0 * iod_px / max(face_tile_iod(), 1e-3)
    return int(np.clip(np.ceil(want / 64.0) * 64, 512, DETAIL_FACE_PX))


_cache_lock = threading.Lock()


@lru_cache(maxsize=4)
def _texel_maps_cached(size: int) -> dict[str, TileMap]:
    maps = {}
    for name, (geo, _, _) in _grids(size).items():
        maps[name] = _tile_map(name, *geo)
    return maps


def texel_maps(size: int = ATLAS_SIZE) -> dict[str, TileMap]:
    """The face and back-of-head texel maps at the geometry grid for an atlas size (cached)."""
    _check_size(size)
    with _cache_lock:
        return _texel_maps_cached(size)


# ---------------------------------------------------------------------------------------
# the mesh: skin triangles, colour-field operator, procedural vertex colours (cached)


def _smoothstep(x, a, b):
    t = np.clip((np.asarray(x, np.float32) - a) / (b - a), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


@dataclass
class _Mesh:
    skin_tris: np.ndarray
    """Model triangles of M_Face and M_BackHead (face, head and neck, mouth and eye sockets)."""
    n: int
    """Vertices of the colour field (0..n-1: face, head_and_neck, sockets)."""
    stiffness: object
    """n x n cotangent Laplacian (scipy CSR, positive semi-definite)."""
    area: np.ndarray
    part: np.ndarray
    skin_shade: np.ndarray
    """Per-vertex factor on the skin tone (darker towards the back and the neck)."""
    socket_rgb: np.ndarray
    """n x 3 procedural colours of the socket vertices (0 elsewhere)."""
    mirror: np.ndarray


@lru_cache(maxsize=1)
def _mesh() -> _Mesh:
    import scipy.sparse as sp

    m = load_model()
    mats = [m.materials.index("M_Face"), m.materials.index("M_BackHead")]
    T = m.triangles[np.isin(m.triangle_material, mats)]
    n = int(T.max()) + 1
    V = m.neutral[:n].astype(np.float64) * 0.01
    # cotangent weights (negative ones clamped: an M-matrix, no overshoot) and lumped areas
    rows, cols, vals = [], [], []
    area = np.zeros(n)
    for k in range(3):
        i, j, o = T[:, k], T[:, (k + 1) % 3], T[:, (k + 2) % 3]
        a, b = V[i] - V[o], V[j] - V[o]
        cr = np.linalg.norm(np.cross(a, b), axis=1)
        cot = np.einsum("ij,ij->i", a, b) / np.maximum(cr, 1e-12)
        wgt = 0.5 * np.maximum(cot, 0.0)
        rows += [i, j]
        cols += [j, i]
        vals += [wgt, wgt]
        if k == 0:
            tri_area = 0.5 * cr
    for k in range(3):
        area += np.bincount(T[:, k], tri_area / 3.0, n)
    W = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)).tocsr()
    L = sp.diags(np.asarray(W.sum(1)).ravel()) - W
    part = _part_codes(m.n_vertices)[:n]
    y, z = m.neutral[:n, 1], m.neutral[:n, 2]
    shade = 1.0 - 0.06 * _smoothstep(-z, -4.0, 8.0) - 0.06 * _smoothstep(-y, 9.0, 17.0)
    sock = np.zeros((n, 3), np.float32)
    mouth = part == PART_MOUTH
    t = _smoothstep(z[mouth].max() - 0.5 - z[mouth], 0.0, 3.0)[:, None]
    sock[mouth] = MOUTH_LIP_RGB * (1 - t) + MOUTH_DEEP_RGB * t
    eye = part == PART_EYE_SOCKET
    t = _smoothstep(z[eye].max() - 0.3 - z[eye], 0.0, 1.5)[:, None]
    sock[eye] = EYE_SOCKET_RGB * (1 - t) + EYE_SOCKET_DEEP_RGB * t
    return _Mesh(T.astype(np.int64), n, L.tocsr(), area, part, shade.astype(np.float32), sock, m.mirror)


# ---------------------------------------------------------------------------------------
# eyes: where the iris lies in the sclera and iris maps


def _sphere_fit(P: np.ndarray) -> tuple[np.ndarray, float]:
    A = np.c_[2 * P, np.ones(len(P))]
    x = np.linalg.lstsq(A, (P**2).sum(1), rcond=None)[0]
    return x[:3], float(np.sqrt(x[3] + x[:3] @ x[:3]))


@dataclass
class EyeCalibration:
    limbus_cm: float
    """Iris radius on the neutral model (cm)."""
    maps: dict
    """'sclera' / 'iris': (centre uv (2,), radii r_uv (B,), matching distances from the
    iris axis / limbus radius (B,)) - uv radii in the material's 0-1 map."""


def _main_island(mat: str):
    """Render vertices and local 0-1 uv of the largest UV island of a material, and that
    island's triangles."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    lay = render_layout()
    k = KEPT_MATERIALS.index(mat)
    f = lay.faces[lay.face_material == k]
    n = len(lay.uv)
    g = sp.coo_matrix((np.ones(f.size), (f.ravel(), np.roll(f, 1, 1).ravel())), shape=(n, n))
    _, lab = connected_components(g, directed=False)
    u0, v0, w, h, _ = ATLAS[mat]
    uv = (lay.uv.astype(np.float64) - [u0, v0]) / [w, h]
    t = uv[f]
    e1, e2 = t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]
    area = 0.5 * np.abs(e1[:, 0] * e2[:, 1] - e2[:, 0] * e1[:, 1])
    labs = lab[f[:, 0]]
    best = np.bincount(labs, area).argmax()
    ff = f[labs == best]
    vs = np.unique(ff)
    return vs, uv, ff


@lru_cache(maxsize=1)
def eye_calibration() -> EyeCalibration:
    """Iris axis and radius from the ICT iris vertices, and how far from each map's centre
    (in its 0-1 uv) a given distance from the iris axis lands. The iris map's main island
    is the iris front: a disc around the pupil hole whose outer rim is the limbus; the
    sclera map's main island is the eyeball seen from the front, the cornea at its centre."""
    m, lay = load_model(), render_layout()
    P = m.neutral.astype(np.float64)
    vs_i, uv_all, ff = _main_island("M_IrisLeft")
    # boundary edges of the island: the outer rim (limbus) and the pupil hole
    e = np.sort(np.concatenate([ff[:, [0, 1]], ff[:, [1, 2]], ff[:, [2, 0]]]), 1)
    ue, cnt = np.unique(e, axis=0, return_counts=True)
    bverts = np.unique(ue[cnt == 1])
    cuv0 = uv_all[vs_i].mean(0)
    rb = np.linalg.norm(uv_all[bverts] - cuv0, axis=1)
    split = 0.5 * (rb.min() + rb.max())
    rim, hole = bverts[rb > split], bverts[rb <= split]
    Q = P[lay.src[rim]]
    centre = Q.mean(0)
    _, _, vt = np.linalg.svd(Q - centre)
    a, b = m.parts["sclera_left"]
    c_eye, _ = _sphere_fit(P[a:b])
    normal = vt[2] * np.sign(vt[2] @ (centre - c_eye))
    d = Q - centre
    limbus = float(np.mean(np.linalg.norm(d - np.outer(d @ normal, normal), axis=1)))

    def rho_of(X):
        d = X - centre
        return np.linalg.norm(d - np.outer(d @ normal, normal), axis=1) / limbus

    maps = {}
    for key, mat in (("iris", "M_IrisLeft"), ("sclera", "M_ScleraLeft")):
        vs, uv, _ = _main_island(mat)
        X = P[lay.src[vs]]
        front = (X - c_eye) @ normal > 0
        rho = rho_of(X)
        if key == "iris":
            cuv = uv[hole].mean(0)
            sel = np.ones(len(vs), bool)
        else:
            sel = front & (rho < 1.8)
            near = sel & (rho < 0.25)
            cuv = uv[vs[near]].mean(0) if near.sum() >= 3 else uv[vs[sel][np.argmin(rho[sel])]]
        r_uv = np.linalg.norm(uv[vs[sel]] - cuv, axis=1)
        rs = rho[sel]
        bins = np.linspace(0.0, 1.8, 19)
        rr, pp = [], []
        for lo, hi in zip(bins[:-1], bins[1:]):
            s = (rs >= lo) & (rs < hi)
            if s.sum() >= 3:
                rr.append(float(np.median(r_uv[s])))
                pp.append(float(np.median(rs[s])))
        rr = np.maximum.accumulate(np.array(rr))
        maps[key] = (cuv, rr + np.arange(len(rr)) * 1e-6, np.array(pp))
    return EyeCalibration(limbus, maps)


def _radial_rho(key: str, cols: int, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per texel of a map tile: normalised distance from the iris axis (1 = limbus), the uv
    radius and the angle about the map centre."""
    cuv, rr, pp = eye_calibration().maps[key]
    u = (np.arange(cols, dtype=np.float32) + 0.5) / cols
    v = 1.0 - (np.arange(rows, dtype=np.float32) + 0.5) / rows
    du, dv = u[None, :] - cuv[0], v[:, None] - cuv[1]
    r = np.sqrt(du * du + dv * dv)
    # linear extrapolation past the last calibrated radius
    slope = (pp[-1] - pp[-2]) / max(rr[-1] - rr[-2], 1e-6)
    rho = np.where(r <= rr[-1], np.interp(r, rr, pp), pp[-1] + (r - rr[-1]) * slope)
    if rr[0] > 0:  # inside the first calibrated radius: scale towards the centre
        rho = np.where(r < rr[0], r / rr[0] * pp[0], rho)
    return rho.astype(np.float32), r.astype(np.float32), np.arctan2(dv, du).astype(np.float32)


IRIS_MAX_CHROMA = 40.0
"""Lab chroma above which a measured iris is desaturated (brown, hazel, green, blue and
grey irises all lie below it; a stronger colour is a colour cast or noise)."""
IRIS_TRUSTED_L = (6.0, 22.0)
"""Lab lightness over which a measured iris's hue goes from not trusted (a near-black
measurement: a dark iris in a dim photo, whose few levels of red or blue are noise) to
trusted; below, the hue is the fallback brown's."""


def _iris_for_texture(rgb) -> np.ndarray:
    """Keep a measured iris colour visibly coloured and darker than the sclera.

    The lightness is brought into the range of :data:`SCLERA_RGB`'s eye (at least that of
    an RGB luma of 45, at most 0.62 of the sclera's); the hue is the measured one, or,
    as far as the measurement is too dark to tell (:data:`IRIS_TRUSTED_L`), that of
    :data:`IRIS_FALLBACK_RGB`; the chroma is kept below :data:`IRIS_MAX_CHROMA`. Scaling
    RGB instead made a near-black (3, 1, 1) a saturated red."""
    import cv2

    def lab(c):
        return cv2.cvtColor(np.asarray(c, np.float32).reshape(1, 1, 3) / 255.0, cv2.COLOR_RGB2LAB).reshape(3)

    def rgb_of(v):
        return cv2.cvtColor(np.asarray(v, np.float32).reshape(1, 1, 3), cv2.COLOR_LAB2RGB).reshape(3) * 255.0

    c = np.clip(np.asarray(rgb, np.float32), 0, 255)
    L, a, b = lab(c)
    trust = float(_smoothstep(np.float32(L), *IRIS_TRUSTED_L))
    _, fa, fb = lab(IRIS_FALLBACK_RGB)
    a, b = trust * a + (1 - trust) * fa, trust * b + (1 - trust) * fb
    chroma = float(np.hypot(a, b))
    if chroma > IRIS_MAX_CHROMA:
        a, b = a * IRIS_MAX_CHROMA / chroma, b * IRIS_MAX_CHROMA / chroma
    sclera_lum = float(SCLERA_RGB @ [0.299, 0.587, 0.114])
    lo = lab(np.full(3, 45.0))[0]
    hi = lab(np.full(3, 0.62 * sclera_lum))[0]
    out = np.clip(rgb_of((float(np.clip(L, lo, hi)), a, b)), 0, 255)
    return out.astype(np.float32)


EYE_TILE_PX = 320
"""The procedural eye maps are computed at most this large, then resized."""
IRIS_EYE_RATIO = 0.21
"""Iris radius / eye width (corner to corner) of a typical face; the photo's own is used
when its iris landmarks give one in a plausible range."""


def _iris_size_ratio(lm: np.ndarray) -> float:
    """Iris radius / eye width measured on the photo (MediaPipe iris ring and eye corners)."""
    lm = np.asarray(lm, np.float64)
    vals = []
    for c, ring, a, b in ((468, (469, 470, 471, 472), 33, 133), (473, (474, 475, 476, 477), 263, 362)):
        w = np.linalg.norm(lm[a] - lm[b])
        r = np.mean(np.linalg.norm(lm[list(ring)] - lm[c], axis=1))
        if w > 4:
            vals.append(r / w)
    if not vals:
        return IRIS_EYE_RATIO
    return float(np.clip(np.median(vals), 0.17, 0.26))


@lru_cache(maxsize=1)
def _ict_eye_width_cm() -> float:
    m = load_model()
    l68 = m.landmarks68
    return float(
        np.mean(
            [
                np.linalg.norm(m.neutral[l68[36]] - m.neutral[l68[39]]),
                np.linalg.norm(m.neutral[l68[42]] - m.neutral[l68[45]]),
            ]
        )
    )


@lru_cache(maxsize=4)
def _eye_geometry(size: int):
    out = {}
    for key in ("sclera", "iris"):
        _, _, c, r = tile_rect(key, size)
        g = min(1.0, EYE_TILE_PX / c)  # procedural: computed smaller, resized to the atlas
        rho, rad, ang = _radial_rho(key, max(8, round(c * g)), max(8, round(r * g)))
        streak = 0.09 * np.sin(37 * ang + 1.3) + 0.06 * np.sin(61 * ang + 0.4) + 0.05 * np.sin(89 * ang + 2.1)
        out[key] = (rho, rad, streak.astype(np.float32))
    return out


def _iris_pattern(rho, streak, iris_rgb) -> np.ndarray:
    """Colour of the iris at normalised radius rho (0 centre, 1 limbus): radial streaks (a
    fixed sum of sines of the angle: deterministic), a lighter collarette, a darker limbal
    ring and the pupil."""
    iris = np.asarray(iris_rgb, np.float32)
    t = np.clip((rho - PUPIL_FRACTION) / (1 - PUPIL_FRACTION), 0, 1)
    shade = 1.0 + streak * (0.5 + t) + 0.18 * np.exp(-(((t - 0.2) / 0.12) ** 2)) - 0.45 * _smoothstep(t, 0.72, 1.0)
    col = iris[None, None, :] * shade[..., None]
    pupil = _smoothstep(rho, PUPIL_FRACTION - 0.04, PUPIL_FRACTION + 0.03)[..., None]
    return PUPIL_RGB * (1 - pupil) + col * pupil


def sclera_for_photo(measured, skin_rgb, opening=None, iris_rgb=None) -> np.ndarray:
    """The sclera colour to paint, a light near-neutral white within SCLERA_LUM.

    ``measured`` (:func:`skin.sclera_colour`) is the photo's own sclera where it shows;
    its colour cast is halved towards the default warm white. Where it does not show (narrow
    or shaded eyes, glasses, small faces), the lightness is solved from the eye opening as
    a whole (``opening`` = :func:`skin.eye_opening_lightness`): the opening's median
    lightness is the iris fraction times the iris (pupil included, PUPIL_SHARE darker) plus
    the rest times the sclera, so that the painted eye is as light, overall, as the
    photographed one; without either, SCLERA_PER_SKIN times the skin's lightness."""
    lum = np.array([0.299, 0.587, 0.114], np.float32)
    base_lum = float(SCLERA_RGB @ lum)
    c = SCLERA_RGB.copy()
    if measured is not None:
        m = np.asarray(measured, np.float32)
        target = float(m @ lum)
        c = 0.5 * m + 0.5 * SCLERA_RGB * (target / base_lum)
    elif opening is not None:
        l_open, f_iris = opening
        l_iris = float(np.asarray(iris_rgb if iris_rgb is not None else IRIS_FALLBACK_RGB, np.float32) @ lum)
        f_iris = float(np.clip(f_iris, 0.0, 0.8))
        target = (l_open - f_iris * PUPIL_SHARE * l_iris) / (1.0 - f_iris)
    elif skin_rgb is not None:
        target = SCLERA_PER_SKIN * float(np.asarray(skin_rgb, np.float32) @ lum)
    else:
        target = base_lum
    target = float(np.clip(target, *SCLERA_LUM))
    return (c * (target / max(float(c @ lum), 1.0))).astype(np.float32)


def eye_tiles(size: int, iris_rgb, iris_eye_ratio: float = IRIS_EYE_RATIO, sclera_rgb=None) -> dict[str, np.ndarray]:
    """The sclera and iris map tiles (rows x cols x 3 uint8) for an iris colour (and a
    sclera colour, default SCLERA_RGB).

    The ICT iris geometry is larger, relative to the eye, than most people's (its radius
    is about 0.28 of the eye width, photos give about 0.21); the painted iris takes the
    photo's proportion (``iris_eye_ratio``): on the sclera map (the cornea, which is what an
    opaque render shows) and on the iris map alike."""
    geo = _eye_geometry(size)
    iris = _iris_for_texture(iris_rgb)
    scl_rgb = SCLERA_RGB if sclera_rgb is None else np.asarray(sclera_rgb, np.float32)
    scl_rim = SCLERA_RIM_RGB * (float(scl_rgb.mean()) / float(SCLERA_RGB.mean()))
    scale = float(np.clip(iris_eye_ratio * _ict_eye_width_cm() / eye_calibration().limbus_cm, 0.6, 1.0))
    rho, r, streak = geo["sclera"]
    q = rho / scale
    # sclera: warm white, darker and slightly pink towards the back of the eyeball
    rim = _smoothstep(r, 0.18, 0.45)[..., None]
    sclera = scl_rgb * (1 - rim) + scl_rim * rim
    inside = 1.0 - _smoothstep(q, 0.98, 1.06)[..., None]
    scl = sclera * (1 - inside) + _iris_pattern(q, streak, iris) * inside
    rho_i, r_i, streak_i = geo["iris"]
    q = rho_i / scale
    inside = 1.0 - _smoothstep(q, 0.98, 1.06)[..., None]
    iri = _iris_pattern(np.minimum(q, 1.0), streak_i, iris) * inside + scl_rgb * (1 - inside)
    outer = _smoothstep(r_i, 0.5, 0.53)[..., None]  # the small pieces beside the front disc
    iri = iri * (1 - outer) + iris * 0.5 * outer
    import cv2

    out = {}
    for key, img in (("sclera", scl), ("iris", iri)):
        img = np.clip(img + 0.5, 0, 255).astype(np.uint8)
        _, _, c, r = tile_rect(key, size)
        out[key] = img if img.shape[:2] == (r, c) else cv2.resize(img, (c, r), interpolation=cv2.INTER_CUBIC)
    return out


@lru_cache(maxsize=4)
def _lash_map(size: int):
    """Lash tile texel map (padded by nearest covered texel) and, per lash vertex, the
    nearest face vertex and the distance to it (root 0 -> tip about 1 cm)."""
    from scipy.spatial import cKDTree

    m = load_model()
    _, _, c, r = tile_rect("lashes", size)
    g = min(1.0, 256 / c)
    tm = _tile_map("lashes", max(8, round(c * g)), max(8, round(r * g)))
    nearest = tm.nearest.ravel()
    slot = np.full(tm.rows * tm.cols, -1, np.int64)
    slot[tm.idx] = np.arange(len(tm.idx))
    a, b = m.parts["eyelashes_left"][0], m.parts["eyelashes_right"][1]
    d, nn = cKDTree(m.neutral[: m.parts["face"][1]]).query(m.neutral[a:b])
    # lower lashes: rooted below their eye's centre
    eye_y = np.where(
        m.neutral[a:b, 0] > 0,
        m.neutral[slice(*m.parts["eyeball_left"]), 1].mean(),
        m.neutral[slice(*m.parts["eyeball_right"]), 1].mean(),
    )
    lower = m.neutral[nn, 1] < eye_y
    # the atlas position (face tile) of the skin under each lash vertex
    lay = render_layout()
    face_rv = np.unique(lay.faces[lay.face_material == KEPT_MATERIALS.index("M_Face")])
    first = np.full(m.n_vertices, -1)
    first[lay.src[face_rv][::-1]] = face_rv[::-1]
    skin_uv = lay.uv[first[nn]].astype(np.float32)
    return tm, slot[nearest], (a, b), d.astype(np.float32), lower, skin_uv, (c, r)


def _lash_tile(size: int, tex: np.ndarray) -> np.ndarray:
    """Lashes near black at the root, fading to the colour of the skin under them (read from
    the baked face tile) towards the tips; the lower ones only a shade darker than the lid.
    The atlas has no alpha, and opaque black lash cards would read as a thick painted band."""
    import cv2

    tm, gather, (a, b), d, lower, skin_uv, (c, r) = _lash_map(size)
    S = tex.shape[0]
    under = _sample(tex, np.column_stack([skin_uv[:, 0] * S - 0.5, (1.0 - skin_uv[:, 1]) * S - 0.5]))
    vc = np.zeros((load_model().n_vertices, 3), np.float32)
    f = np.where(lower, 0.85 + 0.15 * _smoothstep(d, 0.05, 0.4), 0.9 * _smoothstep(d, 0.08, 0.6))[:, None]
    vc[a:b] = LASH_RGB * (1 - f) + under * f
    col = np.einsum("kj,kjc->kc", tm.bary, vc[tm.vsrc])
    img = col[gather].reshape(tm.rows, tm.cols, 3)
    img = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    return img if (tm.cols, tm.rows) == (c, r) else cv2.resize(img, (c, r), interpolation=cv2.INTER_LINEAR)


# ---------------------------------------------------------------------------------------
# static procedural tiles: teeth, gums and tongue, lashes (cached per size)


def push_pull(values: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Fill where ``weight`` (0-1) is low from the weighted values around (a pull-push
    pyramid, Gortler et al. 1996): returns the filled values (H x W x C float32)."""
    import cv2

    v = np.ascontiguousarray(values, np.float32)
    if v.ndim == 2:
        v = v[..., None]
    w = np.clip(np.ascontiguousarray(weight, np.float32), 0, 1)
    levels = [(v * w[..., None], w)]
    while min(levels[-1][1].shape) > 2:
        vw, ww = levels[-1]
        h, wd = ww.shape
        size = (max(1, (wd + 1) // 2), max(1, (h + 1) // 2))
        vw2 = np.stack(
            [
                cv2.resize(np.ascontiguousarray(vw[..., c]), size, interpolation=cv2.INTER_AREA)
                for c in range(vw.shape[2])
            ],
            -1,
        )
        levels.append((vw2, cv2.resize(ww, size, interpolation=cv2.INTER_AREA)))
    vw, ww = levels[-1]
    cur = vw / np.maximum(ww[..., None], 1e-8)
    if not (ww > 1e-8).any():
        cur[:] = 0
    else:
        cur[ww <= 1e-8] = vw.reshape(-1, vw.shape[2]).sum(0) / ww.sum()
    for vw, ww in reversed(levels[:-1]):
        h, wd = ww.shape
        up = np.stack(
            [
                cv2.resize(np.ascontiguousarray(cur[..., c]), (wd, h), interpolation=cv2.INTER_LINEAR)
                for c in range(cur.shape[2])
            ],
            -1,
        )
        a = np.clip(ww, 0, 1)[..., None]
        own = vw / np.maximum(ww[..., None], 1e-8)
        cur = own * a + up * (1 - a)
    return cur if values.ndim == 3 else cur[..., 0]


def _vertex_tile(name: str, cols: int, rows: int, vertex_rgb: np.ndarray) -> np.ndarray:
    """Per-vertex colours (model vertices x 3) rasterised into a tile, padded by push-pull."""
    tm = _tile_map(name, cols, rows)
    col = np.zeros((rows * cols, 3), np.float32)
    col[tm.idx] = np.einsum("kj,kjc->kc", tm.bary, vertex_rgb[tm.vsrc])
    wgt = np.zeros(rows * cols, np.float32)
    wgt[tm.idx] = 1.0
    out = push_pull(col.reshape(rows, cols, 3), wgt.reshape(rows, cols))
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


@lru_cache(maxsize=4)
def _static_tiles(size: int) -> dict[str, np.ndarray]:
    import cv2

    m = load_model()
    z = m.neutral[:, 2]
    out = {}
    vc = np.zeros((m.n_vertices, 3), np.float32)
    a, b = m.parts["teeth"]
    front = _smoothstep(z[a:b], 6.0, 10.5)[:, None]
    vc[a:b] = TEETH_RGB * (0.62 + 0.38 * front)
    a, b = m.parts["gums_and_tongue"]
    front = _smoothstep(z[a:b], 2.0, 10.0)[:, None]
    vc[a:b] = GUMS_RGB * (0.45 + 0.55 * front)
    for name in ("gums", "teeth"):
        _, _, c, r = tile_rect(name, size)
        g = min(1.0, 512 / c)
        small = _vertex_tile(name, max(8, round(c * g)), max(8, round(r * g)), vc)
        out[name] = small if small.shape[:2] == (r, c) else cv2.resize(small, (c, r), interpolation=cv2.INTER_LINEAR)
    return out


# ---------------------------------------------------------------------------------------
# the photo: frames (crops at a scale) and samplers


@dataclass
class _Frame:
    """A resampled crop of the photo: frame pixel = (photo pixel - (x0, y0) + 0.5) * s - 0.5."""

    x0: int
    y0: int
    s: float
    w: int
    h: int

    def of(self, xy: np.ndarray) -> np.ndarray:
        q = (np.asarray(xy, np.float32) - np.float32([self.x0, self.y0]) + 0.5) * np.float32(self.s) - 0.5
        return q.astype(np.float32)

    def image(self, photo: np.ndarray) -> np.ndarray:
        import cv2

        x1 = min(photo.shape[1], self.x0 + int(np.ceil(self.w / self.s)) + 1)
        y1 = min(photo.shape[0], self.y0 + int(np.ceil(self.h / self.s)) + 1)
        crop = np.ascontiguousarray(photo[self.y0 : y1, self.x0 : x1])
        M = np.float32([[self.s, 0, 0.5 * self.s - 0.5], [0, self.s, 0.5 * self.s - 0.5]])
        if self.s < 1.0:  # anti-alias before shrinking
            crop = cv2.GaussianBlur(crop, (0, 0), 0.45 / self.s)
        interp = cv2.INTER_CUBIC if self.s > 1.0 else cv2.INTER_LINEAR
        return cv2.warpAffine(crop, M, (self.w, self.h), flags=interp, borderMode=cv2.BORDER_REPLICATE)


def _frame(box, s: float) -> _Frame:
    x0, y0, x1, y1 = box
    return _Frame(int(x0), int(y0), float(s), max(4, int(np.ceil((x1 - x0) * s))), max(4, int(np.ceil((y1 - y0) * s))))


def _sample(img: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Bilinear samples of an image (H x W or H x W x C) at frame points (K x 2) -> K x C float32."""
    import cv2

    q = np.ascontiguousarray(q, np.float32).reshape(-1, 2)
    n = len(q)
    cols = 1024
    pad = np.zeros((-n % cols, 2), np.float32)
    g = np.concatenate([q, pad]).reshape(-1, cols, 2)  # remap wants maps under 32767 a side
    out = cv2.remap(img, g[..., 0], g[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(-1, 1 if out.ndim == 2 else out.shape[2])[:n].astype(np.float32)


# ---------------------------------------------------------------------------------------
# the bake


@lru_cache(maxsize=4)
def _interpolators(size: int):
    """Sparse (texels x model vertices) barycentric interpolation matrices of the face and
    back tiles' texels (in that order), on the surface and on its mirror image, and each
    texel's part code."""
    import scipy.sparse as sp

    maps = texel_maps(size)
    n = load_model().n_vertices
    vsrc = np.concatenate([maps[k].vsrc for k in ("face", "back")])
    bary = np.concatenate([maps[k].bary for k in ("face", "back")])
    part = np.concatenate([maps[k].part for k in ("face", "back")])
    rows = np.repeat(np.arange(len(vsrc)), 3)
    B = sp.csr_matrix((bary.ravel(), (rows, vsrc.ravel())), shape=(len(vsrc), n), dtype=np.float32)
    Bm = sp.csr_matrix((bary.ravel(), (rows, _mesh().mirror[vsrc].ravel())), shape=(len(vsrc), n), dtype=np.float32)
    return B, Bm, part


def _weights(P, N, K, R, t, centre, zbuf, zframe: _Frame, photo_wh):
    """Geometric photo weight of surface points (K x 3) with normals: facing x visibility x
    inside the photo; and their photo pixel positions."""
    from engines.types import Camera

    xy, z = Camera(K=K, R=R, t=t).project(P)
    front = np.isfinite(xy[:, 0])  # in front of the camera (Camera.project's one z clamp)
    xy = np.where(front[:, None], xy, -1.0).astype(np.float32)
    view = centre[None, :] - P
    view /= np.maximum(np.linalg.norm(view, axis=1, keepdims=True), 1e-9)
    facing = np.einsum("ij,ij->i", N, view)
    w = _smoothstep(facing, *FACING)
    q = zframe.of(xy)
    qi = np.clip(np.round(q).astype(np.int32), 0, [zbuf.shape[1] - 1, zbuf.shape[0] - 1])
    zb = zbuf[qi[:, 1], qi[:, 0]]
    w = w * (1.0 - _smoothstep(z - zb, *DEPTH_TOL_M))
    W, H = photo_wh
    inside = front & (xy[:, 0] > -0.5) & (xy[:, 1] > -0.5) & (xy[:, 0] < W - 0.5) & (xy[:, 1] < H - 0.5)
    return xy, (w * inside).astype(np.float32)


LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _sh_basis(N: np.ndarray) -> np.ndarray:
    """First-order real spherical harmonics (unnormalised: 1, x, y, z) of normals (K x 3).
    (Second order changed the baked skin by under 1 % on the test portraits.)"""
    return np.hstack([np.ones((len(N), 1), N.dtype), N])


def shading_gain(normals: np.ndarray, rgb: np.ndarray, weight: np.ndarray, gain_max: float = DELIGHT_GAIN_MAX):
    """The photo's shading on the skin, and a gain that takes it out, or None.

    The skin's colour is modelled as one albedo times Lambertian shading under distant
    light, to first order in spherical harmonics (irradiance is smooth in the normal:
    Ramamoorthi and Hanrahan, "An Efficient Representation for Irradiance Environment
    Maps", SIGGRAPH 2001; per colour channel, as the low-order lighting 3DMM fitters
    estimate, e.g. DECA): ``rgb = c0 + C n``, fitted to the seen skin's colours ``rgb``
    (K x 3) at its head-frame ``normals`` (K x 3) with ``weight``, by least squares made
    robust (Huber weights on the lightness, iterated) to brows, lips and stubble, whose
    albedo differs. Per channel, because skin turned from the light is not only darker but
    redder (light scattered under the skin is red): one gain for all three would brighten
    a face's sides to orange. The gain of a normal is the mean shading of the fitted skin
    over its shading there, kept in 1 .. ``gain_max``: what the photo shows darker than the
    face's average for the way it faces (its sides, a shadowed cheek) is brought to it, and
    nothing is darkened, so the lit front stays as photographed. The viewport lights the
    head itself; without this the photo's dark sides showed as brown patches in front of
    the ears, between the lit front and the (unshaded) skin-tone fill.
    Returns ``gain(normals) -> (K, 3) float32``, or None with too little seen skin to fit."""
    N = np.asarray(normals, np.float64).reshape(-1, 3)
    Y = np.asarray(rgb, np.float64).reshape(-1, 3)
    w = np.asarray(weight, np.float64).ravel()
    use = w > 0
    if use.sum() < 200:
        return None
    X = _sh_basis(N[use])
    Y, w = Y[use], w[use]
    luma = LUMA.astype(np.float64)
    wr = np.ones_like(w)
    for _ in range(4):
        sw = np.sqrt(w * wr)[:, None]
        C = np.linalg.lstsq(X * sw, Y * sw, rcond=None)[0]  # 4 x 3
        r = (Y - X @ C) @ luma
        k = 1.345 * (1.4826 * np.median(np.abs(r)) + 1e-6)
        wr = np.minimum(1.0, k / np.maximum(np.abs(r), 1e-9))
    ref = (w[:, None] * (X @ C)).sum(0) / w.sum()
    if (ref <= 1.0).any():
        return None
    C = C.astype(np.float32)
    ref = ref.astype(np.float32)
    floor = ref / np.float32(gain_max)

    def gain(normals_: np.ndarray) -> np.ndarray:
        s_ = _sh_basis(np.asarray(normals_, np.float32).reshape(-1, 3)) @ C
        return np.clip(ref / np.maximum(s_, floor), 1.0, gain_max).astype(np.float32)

    return gain


@lru_cache(maxsize=1)
def _normal_smoother():
    """Factorised ``(A + l^2 L)`` of the skin mesh (:data:`DELIGHT_NORMALS_M`)."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import splu

    mesh = _mesh()
    return splu((sp.diags(mesh.area) + DELIGHT_NORMALS_M**2 * mesh.stiffness).tocsc())


def smooth_normals(normals: np.ndarray) -> np.ndarray:
    """The skin vertices' normals (n x 3) smoothed over :data:`DELIGHT_NORMALS_M` on the
    surface (a screened Poisson solve, as the colour field), unit length."""
    mesh = _mesh()
    N = _normal_smoother().solve(np.asarray(normals, np.float64) * mesh.area[:, None])
    return (N / np.maximum(np.linalg.norm(N, axis=1, keepdims=True), 1e-9)).astype(np.float32)


def _lit(rgb: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """uint8 RGB times a per-pixel, per-channel gain (saturating)."""
    import cv2

    return cv2.multiply(rgb, np.ascontiguousarray(gain, np.float32), dtype=cv2.CV_8U)


def _feather(w_grid: np.ndarray, tm: TileMap, width_px: float) -> np.ndarray:
    """Weights faded to 0 towards the border of the seen region and of the charts (holes
    inside a chart, the eye and mouth openings, do not count as borders)."""
    import cv2

    good = tm.filled & ~(tm.chart & (w_grid <= 0.02))
    dist = cv2.distanceTransform(good.astype(np.uint8), cv2.DIST_L2, 3)
    return (w_grid * _smoothstep(dist, 0.0, max(width_px, 1.0))).astype(np.float32)


def _gate(w_m, w_d):
    return _smoothstep(w_m - w_d, *MIRROR_GATE)


def bake_texture(
    vertices_model: np.ndarray,
    K,
    R,
    t,
    photo: np.ndarray,
    landmarks_xy: np.ndarray,
    size: int = ATLAS_SIZE,
    iris_rgb=None,
    progress=None,
    cancel=None,
    delight: bool = True,
    leave_out_glasses: bool = True,
) -> BakeResult:
    """Bake ``photo`` into the atlas of :func:`engines.avatar.ict.render_layout` for the
    fitted head ``vertices_model`` (N x 3 ICT vertices, head frame, metres) seen through
    ``x = K (R X + t)``; ``landmarks_xy`` are the 478 MediaPipe landmarks in photo pixels
    (pixel-centre convention). ``iris_rgb`` overrides the iris colour measured from the
    photo. ``delight`` takes the photo's shading out of the skin (:func:`shading_gain`);
    ``leave_out_glasses`` keeps eyeglass frames found on the face out of it
    (:mod:`engines.avatar.glasses`).
    ``progress(fraction, message)`` and ``cancel.raise_if_set()`` are called between
    stages."""
    import cv2
    import scipy.sparse as sp
    from scipy.sparse.linalg import spsolve

    from engines.avatar import skin as skinmod
    from engines.avatar.raster import project, rasterize
    from engines.types import vertex_normals

    t_all = time.perf_counter()
    tick = [t_all]
    timings: dict[str, float] = {}

    def stage(name, frac):
        now = time.perf_counter()
        timings[name] = now - tick[0]
        tick[0] = now
        if cancel is not None:
            cancel.raise_if_set()
        if progress is not None:
            progress(frac, name)

    _check_size(size)
    photo = np.asarray(photo)
    if photo.ndim == 2:
        photo = np.stack([photo] * 3, -1)
    photo = np.ascontiguousarray(photo[..., :3])
    if photo.dtype != np.uint8:
        photo = np.clip(photo, 0, 255).astype(np.uint8)
    H, W = photo.shape[:2]
    model = load_model()
    V = np.asarray(vertices_model, np.float32)
    if V.shape != (model.n_vertices, 3):
        raise ValueError(f"vertices_model must be {model.n_vertices} x 3 (ICT topology), got {V.shape}")
    K = np.asarray(K, np.float64)
    R = np.asarray(R, np.float64)
    t = np.asarray(t, np.float64).reshape(3)
    lm = np.asarray(landmarks_xy, np.float64)
    if lm.shape[0] < 478:
        raise ValueError("landmarks_xy must hold the 478 MediaPipe landmarks (with the iris points)")
    maps = texel_maps(size)
    mesh = _mesh()
    iod = max(float(np.linalg.norm(lm[468] - lm[473])), 2.0)
    grids = _grids(size, detail_px_for(iod))
    stage("texel maps", 0.05)

    # ---- frames: colour crop, mask frame, z-buffer frame
    n = mesh.n
    xy_v, z_v = project(K, R, t, V[:n].astype(np.float64))
    okp = z_v > 1e-6
    if not okp.any():
        raise ValueError("the head is behind the camera")
    lo = np.floor(np.maximum(xy_v[okp].min(0) - 0.05 * iod, [0, 0])).astype(int)
    hi = np.ceil(np.minimum(xy_v[okp].max(0) + 0.05 * iod, [W - 1, H - 1])).astype(int) + 1
    if (hi - lo < 2).any():
        raise ValueError("the fitted head does not project into the photo")
    box = (lo[0], lo[1], hi[0], hi[1])
    s_c = CROP_IOD_PX[0] / iod if iod < CROP_IOD_PX[0] else (CROP_IOD_PX[1] / iod if iod > CROP_IOD_PX[1] else 1.0)
    s_c = float(min(s_c, 8.0, np.sqrt(MAX_CROP_PIXELS / float(np.prod(hi - lo)))))
    fc = _frame(box, s_c)
    crop = fc.image(photo)
    cap = np.sqrt(2_000_000 / float(np.prod(hi - lo)))  # the mask and z-buffer frames stay small
    fm = _frame(box, min(MASK_IOD_PX / iod, cap))
    fz = _frame(box, min(ZBUF_IOD_PX / iod, cap))
    stage("crop", 0.1)

    # ---- skin mask (on the mask frame) and the iris colour
    mimg = fm.image(photo)
    # the mask's edge kept about 1.5 photo pixels (at most 3 % of the eye distance) inside the
    # skin: the photo's own colour edges (skin to collar, to hair) are that soft
    sm = skinmod.skin_mask(
        mimg, fm.of(lm), erode_px=int(np.ceil(min(1.5 * fm.s, 0.03 * MASK_IOD_PX))), find_glasses=leave_out_glasses
    )
    mask = np.ascontiguousarray(sm.mask, np.float32)
    skin_rgb = sm.colour.rgb.astype(np.float32)
    if iris_rgb is None:
        iris, measured = skinmod.iris_colour(crop, fc.of(lm), IRIS_FALLBACK_RGB)
    else:
        iris, measured = np.asarray(iris_rgb, np.float32), False
    sclera = sclera_for_photo(
        skinmod.sclera_colour(crop, fc.of(lm)), skin_rgb, skinmod.eye_opening_lightness(crop, fc.of(lm)), iris
    )
    stage("skin mask", 0.25)

    # ---- z-buffer of the skin from the photo camera
    Kz = K.copy()
    Kz[0, 0] *= fz.s
    Kz[1, 1] *= fz.s
    Kz[0, 2] = (K[0, 2] - fz.x0 + 0.5) * fz.s - 0.5
    Kz[1, 2] = (K[1, 2] - fz.y0 + 0.5) * fz.s - 0.5
    xyz, zz = project(Kz, R, t, V[:n].astype(np.float64))
    zr = rasterize(xyz, zz, mesh.skin_tris, (fz.w, fz.h))
    zbuf = cv2.dilate(zr.depth, np.ones((3, 3), np.uint8))
    stage("z-buffer", 0.35)

    # ---- colour field on the mesh: set up here, solved in a worker thread (SuperLU releases
    # the GIL) while the texel work below runs
    Nv = vertex_normals(V, mesh.skin_tris).astype(np.float32)
    centre = (-R.T @ t).astype(np.float32)
    Vn, Nn = V[:n], Nv[:n]
    xyv, wv_d = _weights(Vn, Nn, K, R, t, centre, zbuf, fz, (W, H))
    xyvm, wv_m = _weights(V[mesh.mirror[:n]], Nv[mesh.mirror[:n]], K, R, t, centre, zbuf, fz, (W, H))
    skin_v = mesh.part <= PART_HEAD
    # the colours the field sees: a normalised (mask-weighted) blur on the mask frame, so
    # what the mask rejected (a collar, hair, the background) does not bleed in at its edge
    sig = max(0.8, 0.04 * iod * fm.s)
    den = cv2.GaussianBlur(mask, (0, 0), sig)
    blur = cv2.GaussianBlur(mimg.astype(np.float32) * mask[..., None], (0, 0), sig) / np.maximum(den, 1e-3)[..., None]
    wd = wv_d * _sample(mask, fm.of(xyv))[:, 0] * skin_v
    wm = wv_m * _sample(mask, fm.of(xyvm))[:, 0] * skin_v
    wm = wm * _gate(wm, wd)
    cd = _sample(blur, fm.of(xyv))
    cm = _sample(blur, fm.of(xyvm))
    # the photo's shading, fitted on the squarely seen face skin, taken out of what is baked
    A = mesh.area
    gain = None
    if delight:
        Ns = np.zeros_like(Nv)
        Ns[:n] = smooth_normals(Nn)
        gain = shading_gain(Ns[:n], cd, A * wd * (wd > 0.5) * (mesh.part == PART_FACE))
    if gain is not None:
        cd *= gain(Ns[:n])
        cm *= gain(Ns[mesh.mirror[:n]])
    wsum = wd + (1 - wd) * wm
    obs = (wd[:, None] * cd + ((1 - wd) * wm)[:, None] * cm) / np.maximum(wsum, 1e-6)[:, None]
    lam = SMOOTH_M**2
    mu = np.where(skin_v, lam / DECAY_M**2, lam / SOCKET_M**2).astype(np.float64)
    # the tone the unseen skin relaxes to: between the measured (cheek and forehead) skin tone
    # and the mean colour the photo gave all the seen skin (which carries its shading), so the
    # fill continues the face's own colour
    ws = A * wsum * (mesh.part == PART_FACE)
    enough = ws.sum() > 0.05 * (A * (mesh.part == PART_FACE)).sum()
    seen_rgb = (ws[:, None] * obs).sum(0) / ws.sum() if enough else skin_rgb
    fill_rgb = (0.5 * skin_rgb + 0.5 * seen_rgb).astype(np.float32)
    target = np.where(skin_v[:, None], fill_rgb[None, :] * mesh.skin_shade[:, None], mesh.socket_rgb)
    Msys = (sp.diags(A * (wsum + mu)) + lam * mesh.stiffness).tocsc()
    rhs = A[:, None] * (wsum[:, None] * obs + mu[:, None] * target)
    solved: dict = {}

    def solve():
        try:
            solved["x"] = spsolve(Msys, rhs)
        except Exception as e:  # noqa: BLE001 (re-raised in the caller)
            solved["error"] = e

    worker = threading.Thread(target=solve, name="bake-field", daemon=True)
    worker.start()
    stage("colour field set-up", 0.45)

    # ---- geometry at the geometry grid (face and back tiles together)
    names = ("face", "back")
    B, Bm, part = _interpolators(size)
    skin_texel = part <= PART_HEAD
    P, Pm = B @ V, Bm @ V
    Nt, Nm = B @ Nv, Bm @ Nv
    Nt /= np.maximum(np.linalg.norm(Nt, axis=1, keepdims=True), 1e-9)
    Nm /= np.maximum(np.linalg.norm(Nm, axis=1, keepdims=True), 1e-9)
    xy_d, wg_d = _weights(P, Nt, K, R, t, centre, zbuf, fz, (W, H))
    xy_m, wg_m = _weights(Pm, Nm, K, R, t, centre, zbuf, fz, (W, H))
    wg_d *= skin_texel
    wg_m *= skin_texel
    md_t = _sample(mask, fm.of(xy_d))[:, 0]
    mm_t = _sample(mask, fm.of(xy_m))[:, 0]
    gate_t = _gate(wg_m * mm_t, wg_d * md_t)
    gain_d = gain_m = None
    if gain is not None:
        gain_d, gain_m = gain(B @ Ns), gain(Bm @ Ns)  # (unnormalised: the gain's model is linear)
    stage("texel geometry", 0.55)

    # ---- per tile, phase 1: feathered weights, upsampled photo coordinates, photo lookups
    offs = np.cumsum([0] + [len(maps[k].idx) for k in names])
    seen_fraction = 0.0
    mask_coverage = 0.0
    photo_weight = None
    k_m = np.float32(fm.s / fc.s)  # colour frame -> mask frame
    o_m = np.float32(0.5 * k_m - 0.5)
    pending = []
    for ti, name in enumerate(names):
        tm = maps[name]
        sl = slice(offs[ti], offs[ti + 1])
        (gc, gr), (dc, dr), (ac, ar) = grids[name]
        feather_px = FEATHER_M / max(tm.m_per_texel, 1e-6)

        def grid(vals, tm=tm, gc=gc, gr=gr):
            g = np.zeros((gr * gc,) + vals.shape[1:], np.float32)
            g[tm.idx] = vals
            return g.reshape((gr, gc) + vals.shape[1:])

        def pad(a, tm=tm):  # charts extended by replicating their border texels
            return a.reshape(tm.rows * tm.cols, -1)[tm.nearest].reshape(a.shape)

        def up(a, dc=dc, dr=dr):  # cv2.resize is fast for up to 3 channels
            return cv2.resize(np.ascontiguousarray(a), (dc, dr), interpolation=cv2.INTER_LINEAR)

        wgd = grid(wg_d[sl])
        wfd = _feather(wgd, tm, feather_px)
        wfm = _feather(grid(wg_m[sl]), tm, feather_px) * grid(gate_t[sl])
        use_mirror = bool(wfm.max() > 1e-3)
        if name == "face":
            seen = (wgd > 0.5) & tm.chart
            seen_fraction = float(seen.sum() / max(tm.chart.sum(), 1))
            mdg = grid(md_t[sl])
            mask_coverage = float(mdg[seen].mean()) if seen.any() else 0.0
            wd_g = wfd * mdg
            photo_weight = wd_g + (1 - wd_g) * wfm * grid(mm_t[sl])
        q = pad(np.concatenate([grid(fc.of(xy_d[sl]))] + ([grid(fc.of(xy_m[sl]))] if use_mirror else []), -1))
        wts = up(np.stack([wfd, wfm, np.zeros_like(wfd)], -1))
        qd = up(q[..., 0:2])
        col_d = cv2.remap(crop, qd[..., 0], qd[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if gain is not None:
            col_d = _lit(col_d, up(grid(gain_d[sl] - 1) + 1))
        m_d = cv2.remap(
            mask, qd[..., 0] * k_m + o_m, qd[..., 1] * k_m + o_m, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        )
        w_d = np.ascontiguousarray(np.clip(wts[..., 0] * m_d, 0, 1))
        col_m = w_m = None
        if use_mirror:
            qm = up(q[..., 2:4])
            col_m = cv2.remap(crop, qm[..., 0], qm[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            if gain is not None:
                col_m = _lit(col_m, up(grid(gain_m[sl] - 1) + 1))
            m_m = cv2.remap(
                mask, qm[..., 0] * k_m + o_m, qm[..., 1] * k_m + o_m, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
            )
            w_m = np.ascontiguousarray(np.clip(wts[..., 1] * m_m, 0, 1))
        pending.append((name, sl, grid, pad, up, col_d, w_d, col_m, w_m, (ac, ar), (dc, dr)))
    stage("photo lookups", 0.75)

    # ---- phase 2: the colour field fills the rest; blend, resize, place
    worker.join()
    if "error" in solved:
        raise solved["error"]
    fv = np.zeros((model.n_vertices, 3), np.float32)
    fv[:n] = np.asarray(solved["x"], np.float32).reshape(n, 3)
    fill_t = B @ fv
    stage("colour field solve (wait)", 0.8)
    tex = np.empty((size, size, 3), np.uint8)  # the tiles cover the whole atlas
    for name, sl, grid, pad, up, col_d, w_d, col_m, w_m, (ac, ar), (dc, dr) in pending:
        fill = up(np.clip(pad(grid(fill_t[sl])) + 0.5, 0, 255).astype(np.uint8))
        base = fill
        if col_m is not None:
            base = cv2.blendLinear(col_m, base, w_m, 1.0 - w_m)
        out = cv2.blendLinear(col_d, base, w_d, 1.0 - w_d)
        if (dc, dr) != (ac, ar):
            out = cv2.resize(out, (ac, ar), interpolation=cv2.INTER_CUBIC)
        c0, r0, _, _ = tile_rect(name, size)
        tex[r0 : r0 + ar, c0 : c0 + ac] = out
    stage("blend", 0.9)

    # ---- procedural tiles
    iris_px = _iris_size_ratio(lm)
    tiles = {**_static_tiles(size), **eye_tiles(size, iris, iris_px, sclera), "lashes": _lash_tile(size, tex)}
    for name, img in tiles.items():
        c0, r0, c, r = tile_rect(name, size)
        tex[r0 : r0 + r, c0 : c0 + c] = img
    stage("procedural", 1.0)
    timings["total"] = time.perf_counter() - t_all
    return BakeResult(
        texture=tex,
        seen_fraction=seen_fraction,
        skin_rgb=skin_rgb,
        iris_rgb=_iris_for_texture(iris),
        mask_coverage=mask_coverage,
        fill_rgb=fill_rgb,
        iris_measured=bool(measured),
        photo_weight=photo_weight,
        timings=timings,
        sclera_rgb=sclera,
        glasses_found=bool(sm.glasses is not None and sm.glasses.found),
    )


def warm_up(size: int = ATLAS_SIZE) -> None:
    """Compute the per-layout caches now (texel maps, colour-field operator, procedural tiles)."""
    texel_maps(size)
    _mesh()
    _static_tiles(size)
    _eye_geometry(size)
    _lash_map(size)
    _interpolators(size)
    _normal_smoother()
    face_tile_iod()
