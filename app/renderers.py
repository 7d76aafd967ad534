"""How each result type is drawn in the 3D viewport: the type-to-renderer table.

:data:`RENDERERS` (``dict[type, renderer]``) follows napari's ``layer_to_visual``: adding a
type is adding one function and one entry. The frame and shading conventions are described
in :mod:`app.viewport`, which owns the widget; this module holds the drawing rules and the
geometry helpers they need (vertex normals, inside-out detection, strand shading).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np
import pyvista as pv

from engines.types import Avatar, DepthMap, Image, Mesh, PointCloud, Strands, Take

if TYPE_CHECKING:
    from app.viewport import Viewport

MAX_DEPTH_POINTS = 300_000
VIEW_DIRECTIONS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    # name: (direction from the scene centre to the camera, view-up)
    "front": ((0, 0, 1), (0, 1, 0)),
    "back": ((0, 0, -1), (0, 1, 0)),
    "left": ((-1, 0, 0), (0, 1, 0)),
    "right": ((1, 0, 0), (0, 1, 0)),
    "top": ((0, 1, 0), (0, 0, -1)),
    "three-quarter": ((0.62, 0.22, 0.75), (0, 1, 0)),
}


@dataclass
class _Item:
    """One drawn part: the actor and the PolyData its mapper reads (kept for in-place updates)."""

    actor: object
    poly: pv.PolyData
    normals: VertexNormals | None = None  # for meshes: recomputes shading normals on update
    flip: bool = False  # the mesh was inside-out: its displayed copy is rewound


# ----------------------------------------------------------------------------- geometry
class VertexNormals:
    """Area-weighted unit vertex normals for fixed faces, fast enough to redo every frame.

    The vertex-face incidence is a sparse matrix built once, so each call is a cross
    product per face and one sparse product (about 2 ms for 60k faces).
    """

    def __init__(self, faces: np.ndarray, n_vertices: int):
        from scipy import sparse

        f = np.asarray(faces, np.int64)
        self.f0, self.f1, self.f2 = (np.ascontiguousarray(f[:, k]) for k in range(3))
        nf = len(f)
        self.incidence = sparse.csr_matrix(
            (np.ones(3 * nf, np.float32), (f.ravel(), np.repeat(np.arange(nf), 3))), shape=(n_vertices, nf)
        )

    def __call__(self, vertices: np.ndarray) -> np.ndarray:
        v = np.asarray(vertices, np.float32)
        a = v[self.f0]
        fn = np.cross(v[self.f1] - a, v[self.f2] - a)
        n = np.asarray(self.incidence @ fn, np.float32)
        n /= np.maximum(np.sqrt(np.einsum("ij,ij->i", n, n))[:, None], 1e-20)
        return n


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (float32) of one mesh."""
    return VertexNormals(faces, len(vertices))(vertices)


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Signed volume (divergence theorem); negative for a closed mesh wound inside-out."""
    v = np.asarray(vertices, np.float64)
    a, b, c = v[faces[:, 0]], v[faces[:, 1]], v[faces[:, 2]]
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def _is_closed(faces: np.ndarray) -> bool:
    """True when every edge is shared by exactly two triangles."""
    e = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1).astype(np.int64)
    _, counts = np.unique(e[:, 0] * (int(e.max()) + 1) + e[:, 1], return_counts=True)
    return bool(len(counts)) and bool(np.all(counts == 2))


def _rgb8(colors: np.ndarray) -> np.ndarray:
    c = np.asarray(colors)
    if c.dtype != np.uint8:
        if np.issubdtype(c.dtype, np.floating) and c.size and c.max() <= 1.0:
            c = c * 255.0
        c = np.clip(c, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(c.reshape(len(c), -1)[:, :3])


def _texture(pixels: np.ndarray, mipmap: bool = True) -> pv.Texture:
    arr = np.asarray(pixels)
    img = arr if arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] in (3, 4) else Image(arr).rgb8()
    # pv.Texture flips rows so that numpy row 0 is the top of the texture (v = 1).
    tex = pv.Texture(np.ascontiguousarray(img))
    tex.interpolate = True
    tex.mipmap = mipmap  # smoother when minified; costly per pixel on software GL
    return tex


# ----------------------------------------------------------------------------- renderers
def draw_mesh(view: "Viewport", mesh: Mesh, key: str) -> list[str]:
    """Textured when the mesh has UVs and a texture, vertex colours otherwise, grey last.

    ``Mesh.normals`` are not used: shading normals are recomputed from the faces here
    and on every :meth:`Viewport.update_points`, so deformed shapes shade correctly.
    """
    if len(mesh.faces) == 0:
        return draw_points(view, PointCloud(mesh.vertices, mesh.vertex_colors, name=mesh.name), key)
    faces = mesh.faces
    if faces.min() < 0 or faces.max() >= len(mesh.vertices):
        raise ValueError(f"{mesh.name}: faces refer to vertex {int(faces.max())} but there are {len(mesh.vertices)}")
    flip = _is_closed(faces) and signed_volume(mesh.vertices, faces) < 0
    if flip:
        # Inside-out: rewind the displayed copy, since OpenGL decides front faces by winding.
        faces = np.ascontiguousarray(faces[:, ::-1])
    poly = pv.PolyData(mesh.vertices.copy(), np.hstack([np.full((len(faces), 1), 3), faces]).ravel())
    normals = VertexNormals(faces, len(mesh.vertices))
    poly.point_data["Normals"] = normals(mesh.vertices)
    poly.point_data.active_normals_name = "Normals"
    kw: dict = dict(show_scalar_bar=False, reset_camera=False, name=key)
    textured = mesh.uv is not None and mesh.texture is not None and len(mesh.uv) == len(mesh.vertices)
    if textured:
        poly.active_texture_coordinates = mesh.uv.copy()
        kw["texture"] = _texture(mesh.texture, mipmap=not view.software_gl)
    elif mesh.vertex_colors is not None and len(mesh.vertex_colors) == len(mesh.vertices):
        poly.point_data["RGB"] = _rgb8(mesh.vertex_colors)
        kw.update(scalars="RGB", rgb=True)
    else:
        kw["color"] = (0.78, 0.76, 0.72)
    actor = view.plotter.add_mesh(poly, ambient=0.25, diffuse=0.75, specular=0.08, specular_power=20, **kw)
    actor.prop.interpolation = "gouraud"
    actor.prop.backface_culling = False
    view._items[key] = _Item(actor, poly, normals, flip)
    return [key]


def draw_points(view: "Viewport", cloud: PointCloud, key: str) -> list[str]:
    """Unlit coloured points (the colours are the data); size from :meth:`Viewport.set_point_size`."""
    if len(cloud.points) == 0:
        return []
    poly = pv.PolyData(cloud.points.copy())
    kw: dict = dict(show_scalar_bar=False, reset_camera=False, name=key)
    if cloud.colors is not None and len(cloud.colors) == len(cloud.points):
        poly.point_data["RGB"] = _rgb8(cloud.colors)
        kw.update(scalars="RGB", rgb=True)
    else:
        kw["color"] = (0.85, 0.85, 0.85)
    actor = view.plotter.add_mesh(poly, style="points", point_size=view.point_size, lighting=False, **kw)
    view._items[key] = _Item(actor, poly)
    return [key]


def draw_depth(view: "Viewport", depth: DepthMap, key: str) -> list[str]:
    """A depth map as its back-projected coloured points, strided to at most ~300k points."""
    h, w = depth.depth.shape[:2]
    stride = max(1, int(np.ceil(np.sqrt(h * w / MAX_DEPTH_POINTS))))
    return draw_points(view, depth.to_points(stride=stride), key)


def strand_colors(strands: Strands, seed: int = 7) -> np.ndarray:
    """Per-vertex colours: the strand colour, varied per strand and darker at the root."""
    s, p = strands.points.shape[:2]
    base = strands.colors if strands.colors is not None else np.tile([[90, 60, 35]], (s, 1))
    base = np.asarray(base, np.float32).reshape(-1, 3)
    if len(base) == 1:
        base = np.repeat(base, s, 0)
    rng = np.random.default_rng(seed)
    per_strand = rng.uniform(0.8, 1.15, size=(s, 1, 1)).astype(np.float32)
    along = np.linspace(0.75, 1.1, p, dtype=np.float32)[None, :, None]
    cols = base[:, None, :] * per_strand * along
    return np.clip(cols, 0, 255).astype(np.uint8).reshape(-1, 3)


MAX_SHOWN_STRANDS = 3000
"""Strands drawn in the viewport at most: an evenly spread subset of a larger hairstyle
(every k-th strand, the same ones every time) keeps a style switch and each orbit frame
fast on software GL. Only the display is thinned: exports and the bundle keep every strand."""


def shown_strands(n: int, limit: int | None = None) -> np.ndarray:
    """Indices of the strands drawn out of ``n`` (all when ``n`` is within the limit)."""
    limit = MAX_SHOWN_STRANDS if limit is None else int(limit)
    if n <= limit:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


def strand_arrays(strands: Strands, limit: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(points N x 3 float32, VTK line connectivity, per-point RGB uint8) for the drawn strands,
    built with array operations only (no Python loop over strands)."""
    sel = shown_strands(len(strands.points), limit)
    pts = np.asarray(strands.points)[sel]
    s, p = pts.shape[:2]
    lines = np.empty((s, p + 1), np.int64)
    lines[:, 0] = p
    lines[:, 1:] = np.arange(s * p, dtype=np.int64).reshape(s, p)
    cols = strand_colors(Strands(pts, None if strands.colors is None else np.asarray(strands.colors)[sel]
                                 if len(strands.colors) == len(strands.points) else strands.colors))
    return np.ascontiguousarray(pts.reshape(-1, 3), np.float32), lines.ravel(), cols


def draw_strands(view: "Viewport", strands: Strands, key: str) -> list[str]:
    """Hair polylines as lines (or tubes, :attr:`Viewport.strand_tubes`) with per-strand colour;
    at most :data:`MAX_SHOWN_STRANDS` of them (see :func:`shown_strands`)."""
    pts = strands.points
    if pts.ndim != 3 or pts.shape[0] == 0 or pts.shape[1] < 2:
        return []
    points, lines, cols = strand_arrays(strands)
    poly = pv.PolyData(points, lines=lines)
    poly.point_data["RGB"] = cols
    actor = view.plotter.add_mesh(
        poly, scalars="RGB", rgb=True, show_scalar_bar=False, reset_camera=False, name=key,
        line_width=view.line_width, render_lines_as_tubes=view.strand_tubes,
        ambient=0.3, diffuse=0.7, specular=0.2,
    )
    view._items[key] = _Item(actor, poly)
    return [key]


def replace_strands(view: "Viewport", key: str, strands: Strands | None) -> str | None:
    """Show other strands under ``key`` reusing its actor and PolyData (a hairstyle switch):
    points, lines and colours are swapped in place and one frame is rendered. Falls back to
    drawing afresh when nothing suitable is drawn there; ``None`` or no strands removes it."""
    item = view._items.get(key)
    if strands is None or np.asarray(strands.points).ndim != 3 or len(strands.points) == 0 \
            or strands.points.shape[1] < 2:
        if key in view._items or key in view._groups:
            view.remove(key)
        return None
    if item is None or item.normals is not None or item.poly.n_lines == 0:
        return view.show(strands, key)
    points, lines, cols = strand_arrays(strands)
    poly = item.poly
    poly.point_data.clear()
    poly.lines = np.empty(0, np.int64)
    poly.points = points
    poly.lines = lines
    poly.point_data["RGB"] = cols
    poly.Modified()
    _repaint(view)
    return key


def _repaint(view: "Viewport") -> None:
    """One frame for a visible view: ask Qt to repaint (the widget's paint event renders).
    ``plotter.render()`` would render now and the paint event that it triggers would
    render the same frame a second time. A hidden view renders at once."""
    widget = view.plotter
    if widget.isVisible() and hasattr(widget, "update"):
        widget.update()
    else:
        view.plotter.render()


def replace_skin(view: "Viewport", key: str, mesh: Mesh) -> bool:
    """Give the drawn head under ``key`` new colours in place (the scalp darkened under new
    hair): a new texture on the same actor, or new vertex colours. False when the drawn part
    cannot take them that way (then redraw it)."""
    item = view._items.get(key)
    if item is None or item.normals is None or item.poly.n_points != len(mesh.vertices):
        return False
    textured = mesh.uv is not None and mesh.texture is not None and len(mesh.uv) == len(mesh.vertices)
    if textured and item.actor.texture is not None:
        item.actor.texture = _texture(mesh.texture, mipmap=not view.software_gl)
    elif not textured and mesh.vertex_colors is not None and "RGB" in item.poly.point_data \
            and len(mesh.vertex_colors) == item.poly.n_points:
        item.poly.point_data["RGB"][:] = _rgb8(mesh.vertex_colors)
        item.poly.Modified()
    else:
        return False
    _repaint(view)
    return True


def draw_avatar(view: "Viewport", avatar: Avatar, key: str) -> list[str]:
    """Head (deformed by the current emotion sliders), extra parts and hair as separate keys."""
    weights = {k: float(w) for k, w in avatar.emotions.items() if k in avatar.mesh.morph_targets}
    head = avatar.mesh
    if any(weights.values()):
        m = avatar.mesh
        head = Mesh(m.deformed(weights), m.faces, None, m.uv, m.texture, m.vertex_colors, name=m.name)
    keys = draw_mesh(view, head, f"{key}/head")
    for i, extra in enumerate(avatar.extra_meshes):
        keys += draw_mesh(view, extra, f"{key}/extra{i}")
    if avatar.hair is not None:
        keys += draw_strands(view, avatar.hair, f"{key}/hair")
    return keys


def draw_take(view: "Viewport", take: Take, key: str) -> list[str]:
    """A recorded take is drawn as its avatar (at rest; the Perform panel plays it)."""
    if take.avatar is None:
        return []
    return draw_avatar(view, take.avatar, key)


def draw_nothing(view: "Viewport", obj, key: str) -> list[str]:
    """2D results (images) belong to the image tab, not the 3D view."""
    return []


Renderer = Callable[["Viewport", object, str], list[str]]
RENDERERS: dict[type, Renderer] = {
    Mesh: draw_mesh,
    PointCloud: draw_points,
    DepthMap: draw_depth,
    Strands: draw_strands,
    Avatar: draw_avatar,
    Take: draw_take,
    Image: draw_nothing,
}


def renderer_for(obj) -> Renderer | None:
    for cls in type(obj).__mro__:
        if cls in RENDERERS:
            return RENDERERS[cls]
    return None
