"""How each result type is drawn in the 3D viewport: the type-to-renderer table.

:data:`RENDERERS` (``dict[type, renderer]``) follows napari's ``layer_to_visual``: adding a
type is adding one function and one entry. The frame and shading conventions are described
in :mod:`app.viewport`, which owns the widget; this module holds the drawing rules and the
geometry helpers they need (vertex normals, inside-out detection, strand shading).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np
import pyvista as pv

from engines.types import (  # noqa: F401  (VertexNormals, vertex_normals: re-exported for the viewport)
    Avatar,
    Camera,
    DepthMap,
    Image,
    Mesh,
    PointCloud,
    Splat,
    Strands,
    Take,
    VertexNormals,
    vertex_normals,
)

if TYPE_CHECKING:
    from app.viewport import Viewport

MAX_DEPTH_POINTS = 300_000
CONFIDENCE_DEFAULT = 0.5
"""Depth pixels below this confidence are hidden at first (the depth engine's own
``min_confidence``: the pixels its fit trusts); the viewport's slider changes it."""
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
    depth: "DepthArrays | None" = None  # depth surfaces: what the confidence slider filters
    camera: Camera | None = None  # the photo camera this part was seen from (a depth map's: its home view)
    lod: object | None = None  # (actor, poly, rule, shape): a lighter stand-in drawn while the view moves (app.lod)
    source: object = None  # the engine object drawn (a stand-in takes a texture's colours from it)


# ----------------------------------------------------------------------------- geometry
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


def texture_rows(pixels: np.ndarray) -> tuple[np.ndarray, int, int]:
    """(texels bottom row first, as VTK reads them: (w*h) x C uint8, width, height) of a
    texture picture whose numpy row 0 is its top (v = 1); cached, made ahead by :func:`prepare`."""

    def make():
        arr = np.asarray(pixels)
        img = arr if arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] in (3, 4) else Image(arr).rgb8()
        h, w, c = img.shape
        return np.ascontiguousarray(img[::-1].reshape(-1, c)), w, h

    return _cached(pixels, "texels", make)


def _texture(pixels: np.ndarray, mipmap: bool = True) -> pv.Texture:
    rows, w, h = texture_rows(pixels)
    grid = pv.ImageData(dimensions=(w, h, 1))
    grid.point_data["Image"] = rows  # C-contiguous uint8: wrapped, not copied
    grid.set_active_scalars("Image")
    tex = pv.Texture(grid)
    tex.interpolate = True
    tex.mipmap = mipmap  # smoother when minified; costly per pixel on software GL
    return tex


# ----------------------------------------------------------------------------- prepared arrays
_prepared: dict[tuple[int, str], tuple[weakref.ref, object]] = {}
"""Display arrays made ahead of drawing, keyed by (id of the object, what); the weak
reference tells a live entry from one whose object is gone (and whose id was reused)."""


def _cached(obj, what: str, make: Callable[[], object]):
    k = (id(obj), what)
    hit = _prepared.get(k)
    if hit is not None and hit[0]() is obj:
        return hit[1]
    value = make()
    try:
        ref = weakref.ref(obj, lambda _r, k=k, d=_prepared: d.pop(k, None))
    except TypeError:  # not weak-referenceable: not cached
        return value
    _prepared[k] = (ref, value)
    return value


@dataclass
class MeshArrays:
    """Everything :func:`draw_mesh` computes from a Mesh before VTK sees it."""

    faces: np.ndarray  # as displayed (rewound when the mesh was inside-out)
    flip: bool
    normals: VertexNormals
    point_normals: np.ndarray
    rgb: np.ndarray | None


def mesh_arrays(mesh: Mesh, vertices: np.ndarray | None = None) -> MeshArrays:
    """The display arrays of a mesh (cached: the worker thread that made the result may
    have made them already, see :func:`prepare`). ``vertices`` replaces the mesh's own
    (an avatar head deformed by its emotion sliders) for the normals."""
    faces = mesh.faces
    if len(faces) and (faces.min() < 0 or faces.max() >= len(mesh.vertices)):
        raise ValueError(f"{mesh.name}: faces refer to vertex {int(faces.max())} but there are {len(mesh.vertices)}")

    def topology():
        flip = bool(len(faces)) and _is_closed(faces) and signed_volume(mesh.vertices, faces) < 0
        # Inside-out: rewind the displayed copy, since OpenGL decides front faces by winding.
        shown = np.ascontiguousarray(faces[:, ::-1] if flip else faces, np.int64)
        return shown, flip, VertexNormals(shown, len(mesh.vertices))

    shown, flip, solver = _cached(mesh, "topology", topology)
    if vertices is None:
        point_normals = _cached(mesh, "normals", lambda: solver(mesh.vertices))
    else:
        point_normals = solver(vertices)
    rgb = None
    if mesh.vertex_colors is not None and len(mesh.vertex_colors) == len(mesh.vertices):
        rgb = _cached(mesh, "rgb", lambda: _rgb8(mesh.vertex_colors))
    return MeshArrays(shown, flip, solver, point_normals, rgb)


def _poly_from_triangles(points: np.ndarray, faces: np.ndarray) -> pv.PolyData:
    if hasattr(pv.PolyData, "from_regular_faces"):  # offsets + connectivity: no legacy-format pass
        return pv.PolyData.from_regular_faces(points, faces)
    return pv.PolyData(points, np.hstack([np.full((len(faces), 1), 3), faces]).ravel())


def prepare(obj) -> None:
    """Do the numpy work of drawing ``obj`` now (in the worker thread that made it), so
    that the UI thread only wraps finished arrays when it is shown."""
    from app import lod

    if isinstance(obj, Mesh) and len(obj.faces):
        lod.mesh_rule(obj, mesh_arrays(obj).faces)
        if obj.texture is not None:
            texture_rows(obj.texture)
    elif isinstance(obj, Avatar):
        lod.mesh_rule(obj.mesh, mesh_arrays(obj.mesh).faces)
        if obj.mesh.texture is not None:
            texture_rows(obj.mesh.texture)
        for extra in obj.extra_meshes:
            if len(extra.faces):
                mesh_arrays(extra)
        if obj.hair is not None and np.asarray(obj.hair.points).ndim == 3 and len(obj.hair.points):
            _cached(obj.hair, "strands", lambda: strand_arrays(obj.hair))
    elif isinstance(obj, Take) and obj.avatar is not None:
        prepare(obj.avatar)
    elif isinstance(obj, Strands) and np.asarray(obj.points).ndim == 3 and len(obj.points):
        _cached(obj, "strands", lambda: strand_arrays(obj))
    elif isinstance(obj, PointCloud) and obj.colors is not None and len(obj.colors) == len(obj.points):
        _cached(obj, "rgb", lambda: _rgb8(obj.colors))
    elif isinstance(obj, DepthMap):
        arr = depth_surface(obj)
        lod.mesh_rule(obj, depth_faces_shown(arr, CONFIDENCE_DEFAULT, False), arr.vertices)


# ----------------------------------------------------------------------------- renderers
def draw_mesh(view: "Viewport", mesh: Mesh, key: str, vertices: np.ndarray | None = None) -> list[str]:
    """Textured when the mesh has UVs and a texture, vertex colours otherwise, grey last.

    ``Mesh.normals`` are not used: shading normals are recomputed from the faces here
    and on every :meth:`Viewport.update_points`, so deformed shapes shade correctly.
    ``vertices`` draws the mesh's faces and colours on other vertex positions (an avatar
    head deformed by its sliders) without making a new Mesh.
    """
    if len(mesh.faces) == 0:
        return draw_points(view, PointCloud(mesh.vertices, mesh.vertex_colors, name=mesh.name), key)
    arr = mesh_arrays(mesh, vertices)
    verts = np.array(mesh.vertices if vertices is None else vertices, np.float32)
    poly = _poly_from_triangles(verts, arr.faces)
    normals, flip = arr.normals, arr.flip
    poly.point_data["Normals"] = arr.point_normals
    poly.point_data.active_normals_name = "Normals"
    kw: dict = dict(show_scalar_bar=False, reset_camera=False, render=False, name=key)
    textured = mesh.uv is not None and mesh.texture is not None and len(mesh.uv) == len(mesh.vertices)
    if textured:
        poly.active_texture_coordinates = mesh.uv.copy()
        kw["texture"] = _texture(mesh.texture, mipmap=not view.software_gl)
    elif arr.rgb is not None:
        poly.point_data["RGB"] = arr.rgb
        kw.update(scalars="RGB", rgb=True)
    else:
        kw["color"] = (0.78, 0.76, 0.72)
    actor = view.plotter.add_mesh(poly, ambient=0.25, diffuse=0.75, specular=0.08, specular_power=20, **kw)
    actor.prop.interpolation = "gouraud"
    actor.prop.backface_culling = False
    view._items[key] = _Item(actor, poly, normals, flip, source=mesh)
    return [key]


def draw_points(view: "Viewport", cloud: PointCloud, key: str) -> list[str]:
    """Unlit coloured points (the colours are the data); size from :meth:`Viewport.set_point_size`."""
    if len(cloud.points) == 0:
        return []
    poly = pv.PolyData(np.array(cloud.points, np.float32))
    kw: dict = dict(show_scalar_bar=False, reset_camera=False, render=False, name=key)
    if cloud.colors is not None and len(cloud.colors) == len(cloud.points):
        poly.point_data["RGB"] = _cached(cloud, "rgb", lambda: _rgb8(cloud.colors))
        kw.update(scalars="RGB", rgb=True)
    else:
        kw["color"] = (0.85, 0.85, 0.85)
    actor = view.plotter.add_mesh(poly, style="points", point_size=view.point_size, lighting=False, **kw)
    view._items[key] = _Item(actor, poly, source=cloud)
    return [key]


@dataclass
class DepthArrays:
    """A depth map's surface for display (:func:`engines.depth.surface.depth_surface`)."""

    vertices: np.ndarray
    faces: np.ndarray  # every face; those shown depend on the confidence threshold
    face_confidence: np.ndarray  # the lowest confidence of each face's three pixels
    vertex_confidence: np.ndarray
    rgb: np.ndarray | None
    normals: VertexNormals
    point_normals: np.ndarray
    has_confidence: bool


def depth_surface(depth: DepthMap) -> DepthArrays:
    """The display surface of a depth map (cached): at most ~300k vertices, cut across depth
    jumps, with each vertex's confidence and colour."""
    from engines.depth.surface import depth_surface as triangulate

    def make():
        h, w = depth.depth.shape[:2]
        stride = max(1, int(np.ceil(np.sqrt(h * w / MAX_DEPTH_POINTS))))
        surf = triangulate(depth, stride)
        rgb = None
        if depth.image is not None and depth.image.shape[:2] == depth.depth.shape[:2]:
            img = depth.image
            px = img[surf.pixels[:, 0], surf.pixels[:, 1]]
            px = px[:, None].repeat(3, 1) if px.ndim == 1 else px[:, :3]
            rgb = _rgb8(px if px.dtype != np.uint16 else (px >> 8).astype(np.uint8))
        face_conf = surf.confidence[surf.faces].min(1) if len(surf.faces) else np.zeros(0, np.float32)
        solver = VertexNormals(surf.faces, len(surf.vertices))
        return DepthArrays(
            surf.vertices,
            surf.faces,
            face_conf,
            surf.confidence,
            rgb,
            solver,
            solver(surf.vertices),
            depth.confidence is not None,
        )

    return _cached(depth, "surface", make)


def depth_faces_shown(arr: DepthArrays, threshold: float, fade: bool) -> np.ndarray:
    if fade or not arr.has_confidence:
        return arr.faces
    return arr.faces[arr.face_confidence >= threshold]


def depth_colours(arr: DepthArrays, threshold: float, fade: bool) -> np.ndarray:
    """Vertex colours; with ``fade``, those below the threshold dimmed towards grey."""
    rgb = arr.rgb if arr.rgb is not None else np.full((len(arr.vertices), 3), 200, np.uint8)
    if fade and arr.has_confidence:
        low = arr.vertex_confidence < threshold
        rgb = rgb.copy()
        rgb[low] = (0.25 * rgb[low] + 0.75 * 90).astype(np.uint8)
    return rgb


def draw_depth(view: "Viewport", depth: DepthMap, key: str) -> list[str]:
    """A depth map as a surface seen from its own camera: at most ~300k vertices, no
    triangles across depth jumps, pixels below the view's confidence threshold hidden
    (or faded, :attr:`Viewport.fade_low_confidence`). The photo's camera is the part's
    home view (:meth:`Viewport.reset_camera`)."""
    arr = depth_surface(depth)
    camera = depth.display_camera()
    thr, fade = view.confidence_threshold, view.fade_low_confidence
    if len(arr.faces) == 0:  # no neighbours at similar depth: points
        keep = arr.vertex_confidence >= thr if arr.has_confidence and not fade else slice(None)
        keys = draw_points(
            view, PointCloud(arr.vertices[keep], None if arr.rgb is None else arr.rgb[keep], name=depth.name), key
        )
        if keys:
            view._items[key].camera = camera
        return keys
    poly = _poly_from_triangles(arr.vertices.copy(), depth_faces_shown(arr, thr, fade))
    poly.point_data["Normals"] = arr.point_normals
    poly.point_data.active_normals_name = "Normals"
    poly.point_data["RGB"] = depth_colours(arr, thr, fade)
    actor = view.plotter.add_mesh(
        poly,
        scalars="RGB",
        rgb=True,
        show_scalar_bar=False,
        reset_camera=False,
        render=False,
        name=key,
        ambient=0.45,
        diffuse=0.55,
        specular=0.0,
    )
    actor.prop.interpolation = "gouraud"
    actor.prop.backface_culling = False
    view._items[key] = _Item(actor, poly, arr.normals, depth=arr, camera=camera, source=depth)
    return [key]


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
    cols = strand_colors(
        Strands(
            pts,
            None
            if strands.colors is None
            else np.asarray(strands.colors)[sel]
            if len(strands.colors) == len(strands.points)
            else strands.colors,
        )
    )
    return np.ascontiguousarray(pts.reshape(-1, 3), np.float32), lines.ravel(), cols


def draw_strands(view: "Viewport", strands: Strands, key: str) -> list[str]:
    """Hair polylines as lines (or tubes, :attr:`Viewport.strand_tubes`) with per-strand colour;
    at most :data:`MAX_SHOWN_STRANDS` of them (see :func:`shown_strands`)."""
    pts = strands.points
    if pts.ndim != 3 or pts.shape[0] == 0 or pts.shape[1] < 2:
        return []
    points, lines, cols = _cached(strands, "strands", lambda: strand_arrays(strands))
    poly = pv.PolyData(points.copy(), lines=lines)
    poly.point_data["RGB"] = cols
    actor = view.plotter.add_mesh(
        poly,
        scalars="RGB",
        rgb=True,
        show_scalar_bar=False,
        reset_camera=False,
        render=False,
        name=key,
        line_width=view.line_width,
        render_lines_as_tubes=view.strand_tubes,
        ambient=0.3,
        diffuse=0.7,
        specular=0.2,
    )
    view._items[key] = _Item(actor, poly, source=strands)
    return [key]


def replace_strands(view: "Viewport", key: str, strands: Strands | None) -> str | None:
    """Show other strands under ``key`` reusing its actor and PolyData (a hairstyle switch):
    points, lines and colours are swapped in place and one frame is rendered. Falls back to
    drawing afresh when nothing suitable is drawn there; ``None`` or no strands removes it."""
    item = view._items.get(key)
    if (
        strands is None
        or np.asarray(strands.points).ndim != 3
        or len(strands.points) == 0
        or strands.points.shape[1] < 2
    ):
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
    if hasattr(view, "request_paint"):
        view.request_paint()  # the paint renders (once; see app.viewport._Interactor)
        return
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
    elif (
        not textured
        and mesh.vertex_colors is not None
        and "RGB" in item.poly.point_data
        and len(mesh.vertex_colors) == item.poly.n_points
    ):
        item.poly.point_data["RGB"][:] = _rgb8(mesh.vertex_colors)
        item.poly.Modified()
    else:
        return False
    _repaint(view)
    return True


def draw_avatar(view: "Viewport", avatar: Avatar, key: str) -> list[str]:
    """Head (deformed by the current emotion sliders), extra parts and hair as separate keys."""
    weights = {k: float(w) for k, w in avatar.emotions.items() if k in avatar.mesh.morph_targets}
    deformed = avatar.mesh.deformed(weights) if any(weights.values()) else None
    keys = draw_mesh(view, avatar.mesh, f"{key}/head", deformed)
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


def cameras_of(obj) -> list[Camera]:
    """The cameras "View from camera" offers for a shown object, in the display frame: a
    depth map's photo camera, a splat's photos, the cameras a mesh draws (multi-view
    frusta), an avatar's (or a take's avatar's) photo camera; any other object's
    ``cameras`` list or ``camera`` when they are :class:`Camera` objects."""
    if isinstance(obj, DepthMap):
        return [obj.display_camera()]
    if isinstance(obj, Take):
        obj = obj.avatar
    out = [c for c in (getattr(obj, "cameras", None) or []) if isinstance(c, Camera)]
    cam = getattr(obj, "camera", None)
    if isinstance(cam, Camera):
        out.append(cam)
    return out


def draw_nothing(view: "Viewport", obj, key: str) -> list[str]:
    """2D results (images) belong to the image tab, not the 3D view."""
    return []


Renderer = Callable[["Viewport", object, str], list[str]]
RENDERERS: dict[type, Renderer] = {
    Mesh: draw_mesh,
    PointCloud: draw_points,
    DepthMap: draw_depth,
    Strands: draw_strands,
    Image: draw_nothing,
}
"""The viewport's own renderers, for the core types every engine may return. Types an engine
package brings (Avatar, Take, Splat, a plug-in's own) are drawn by the renderer its engine
class declares (``Engine.renderers``: type name -> "module:function"), the same path for
built-in engines and plug-ins, in the manner of npe2 manifests' contributions."""


def renderer_for(obj) -> Renderer | None:
    """The viewport's own renderer for the object's type (or a base class), else the one
    its engine declares."""
    from app.contributions import declared, declared_ref

    for cls in type(obj).__mro__:
        if cls in RENDERERS:
            return RENDERERS[cls]
        if declared_ref("renderers", cls) is not None:
            return declared("renderers", cls)
    return None
