"""The 3D viewport: a pyvistaqt ``QtInteractor`` that draws engine results.

How each result type is drawn is decided by one table, :data:`RENDERERS`
(``dict[type, renderer]``), after napari's ``layer_to_visual``: adding a type is adding one
function and one entry. Everything pyvista/VTK stays in this module; the application
imports it lazily after the window is shown.

Frames and conventions
----------------------
* The display frame is right-handed, **x right, y up, z towards the viewer** (glTF's
  frame). :meth:`engines.types.DepthMap.to_points` already returns points in it.
* ``set_view("front")`` looks down -z with +y up; ``"left"`` looks from -x, ``"right"``
  from +x, ``"top"`` from +y, ``"back"`` from -z (Blender's naming).
* Photo cameras (:meth:`Viewport.set_camera_from_photo`) use OpenCV's pinhole model:
  a display-frame point ``X`` has camera coordinates ``x = R @ X + t`` (x right, y down,
  z forward) and lands on pixel ``(u, v) = (fx x/z + cx, fy y/z + cy)``, with integer
  ``(u, v)`` at pixel centres and (0, 0) the top-left pixel. For a depth map's own points
  that is ``R = diag(1, -1, -1), t = 0``.
* Texture coordinates follow OBJ/trimesh: ``v = 0`` is the bottom row of the texture.

Shading: vertex normals are computed here (area weighted) from faces wound
counter-clockwise seen from outside; a closed mesh that turns out inside-out (negative
signed volume) is rewound as a whole for display. Normals go to VTK as point normals
(Gouraud shading). Lighting is a headlight plus a weak fill light, with two-sided
lighting, so whatever faces the camera is lit, open surfaces included.

Performance: :meth:`Viewport.update_points` writes into the existing VTK points array and
recomputes normals with a cached sparse vertex-face matrix; no actor is re-created.
``benchmarks/viewport.py`` measures the redraw time.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pyvista as pv
from pyvistaqt import QtInteractor
from PySide6 import QtCore, QtGui, QtWidgets

from engines.types import Avatar, DepthMap, Image, Mesh, PointCloud, Strands

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


def draw_strands(view: "Viewport", strands: Strands, key: str) -> list[str]:
    """Hair polylines as lines (or tubes, :attr:`Viewport.strand_tubes`) with per-strand colour."""
    pts = strands.points
    if pts.ndim != 3 or pts.shape[0] == 0 or pts.shape[1] < 2:
        return []
    s, p = pts.shape[:2]
    idx = np.arange(s * p).reshape(s, p)
    lines = np.hstack([np.full((s, 1), p), idx]).ravel()
    poly = pv.PolyData(pts.reshape(-1, 3).copy(), lines=lines)
    poly.point_data["RGB"] = strand_colors(strands)
    actor = view.plotter.add_mesh(
        poly, scalars="RGB", rgb=True, show_scalar_bar=False, reset_camera=False, name=key,
        line_width=view.line_width, render_lines_as_tubes=view.strand_tubes,
        ambient=0.3, diffuse=0.7, specular=0.2,
    )
    view._items[key] = _Item(actor, poly)
    return [key]


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
    Image: draw_nothing,
}


def renderer_for(obj) -> Renderer | None:
    for cls in type(obj).__mro__:
        if cls in RENDERERS:
            return RENDERERS[cls]
    return None


# ----------------------------------------------------------------------------- widget
class Viewport(QtWidgets.QWidget):
    """3D view of results with a small toolbar (views, wireframe, screenshot, background)."""

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self._items: dict[str, _Item] = {}
        self._groups: dict[str, list[str]] = {}
        self._counter = 0
        self.point_size = 3.0
        self.line_width = 2.0
        self.strand_tubes = False
        self.wireframe = False
        self.software_gl = False
        self._photo: tuple | None = None  # (camera arguments, camera pose) of the last photo camera
        self.toolbar = QtWidgets.QToolBar(self)
        # auto_update off: pyvistaqt would otherwise redraw 5 times a second forever, which on
        # a software GL costs a core; every change here renders explicitly.
        self.plotter = QtInteractor(self, auto_update=False)
        self.plotter.set_background((0.16, 0.17, 0.19), top=(0.36, 0.38, 0.42))
        self._gl_checked = False
        self._setup_lights()
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(self.toolbar)
        lay.addWidget(self.plotter.interactor, 1)
        self._build_toolbar()

    def _setup_lights(self) -> None:
        """A headlight (whatever faces the camera is lit) plus a weak fill from the upper left."""
        ren = self.plotter.renderer
        ren.remove_all_lights()
        ren.add_light(pv.Light(light_type="headlight", intensity=0.85))
        ren.add_light(pv.Light(position=(-1.0, 1.0, 0.8), focal_point=(0, 0, 0), light_type="camera light", intensity=0.3))
        ren.SetTwoSidedLighting(True)

    def _tune_for_gl(self) -> None:
        """On a software renderer (Mesa llvmpipe, e.g. under Xvfb or in a VM) multisampling
        triples the cost of a frame and mipmapped textures double it, so both are off
        there; real GPUs keep them (benchmarks/viewport.py measures this)."""
        if self._gl_checked:
            return
        caps = self.plotter.render_window.ReportCapabilities() or ""
        if not caps.strip():
            return  # no GL context yet
        self._gl_checked = True
        self.software_gl = any(s in caps.lower() for s in ("llvmpipe", "softpipe", "swrast", "swiftshader"))
        if self.software_gl:
            self.plotter.render_window.SetMultiSamples(0)

    # -- toolbar
    def _build_toolbar(self) -> None:
        tb = self.toolbar
        tb.setIconSize(QtCore.QSize(16, 16))
        tb.addAction("Reset", self.reset_camera).setToolTip("Fit everything in view")
        for name in ("front", "left", "right", "top", "three-quarter"):
            tb.addAction(name.capitalize(), lambda n=name: self.set_view(n)).setToolTip(f"Look from the {name}")
        tb.addSeparator()
        self.wireframe_action = tb.addAction("Wireframe")
        self.wireframe_action.setCheckable(True)
        self.wireframe_action.toggled.connect(self.set_wireframe)
        self.tubes_action = tb.addAction("Hair tubes")
        self.tubes_action.setCheckable(True)
        self.tubes_action.setToolTip("Draw hair strands as shaded tubes instead of thin lines")
        self.tubes_action.toggled.connect(lambda on: self.set_strand_tubes(on))
        tb.addAction("Screenshot…", self._save_screenshot_dialog).setToolTip("Save the view as a PNG")
        tb.addAction("Background…", self._background_dialog).setToolTip("Choose the background colour")
        tb.addSeparator()
        tb.addWidget(QtWidgets.QLabel(" Point size "))
        self.point_size_box = QtWidgets.QSpinBox()
        self.point_size_box.setRange(1, 20)
        self.point_size_box.setValue(int(self.point_size))
        self.point_size_box.valueChanged.connect(self.set_point_size)
        tb.addWidget(self.point_size_box)

    def _save_screenshot_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save screenshot", "view.png", "PNG image (*.png)")
        if path:
            self.screenshot(path if path.lower().endswith(".png") else path + ".png")

    def _background_dialog(self) -> None:
        color = QtWidgets.QColorDialog.getColor(QtGui.QColor(40, 43, 48), self, "Background colour")
        if color.isValid():
            self.set_background(color.getRgbF()[:3])

    # -- content
    def show(self, obj=None, key: str | None = None) -> str | None:  # type: ignore[override]
        """Draw ``obj`` under ``key`` (replacing what was there) and return the key.

        Called with no object it behaves as ``QWidget.show``. Returns None for objects
        that are not drawn in 3D (images) or that have no renderer.
        """
        if obj is None:
            super().show()
            return None
        render = renderer_for(obj)
        if render is None or render is draw_nothing:
            return None
        self._tune_for_gl()
        if key is None:
            self._counter += 1
            key = f"{getattr(obj, 'name', type(obj).__name__)}#{self._counter}"
        self.remove(key)
        first = not self._items
        parts = render(self, obj, key)
        if not parts:
            return None
        self._groups[key] = parts
        if self.wireframe:
            self.set_wireframe(True)
        if first:
            self.reset_camera()
        self.plotter.render()
        return key

    def keys(self) -> list[str]:
        """Keys of every drawn part (an avatar contributes its ``/head``, ``/hair``... parts)."""
        return list(self._items)

    def actor(self, key: str):
        return self._items[key].actor

    def polydata(self, key: str) -> pv.PolyData:
        return self._items[key].poly

    def update_points(self, key: str, points: np.ndarray) -> None:
        """Move the vertices of a drawn part in place (same actor, same PolyData) and render."""
        item = self._items.get(key)
        if item is None:
            raise KeyError(f"nothing drawn under {key!r}")
        pts = np.asarray(points, np.float32).reshape(-1, 3)
        arr = item.poly.points
        if pts.shape != arr.shape:
            raise ValueError(f"{key}: expected {arr.shape[0]} points, got {pts.shape[0]}")
        arr[:] = pts
        item.poly.GetPoints().Modified()
        if item.normals is not None:
            item.poly.point_data["Normals"][:] = item.normals(pts)
            item.poly.GetPointData().GetNormals().Modified()
        item.poly.Modified()
        self.plotter.render()

    def remove(self, key: str) -> None:
        """Remove a drawn object (all parts of a group such as an avatar) or a single part."""
        for part in self._groups.pop(key, [key]):
            item = self._items.pop(part, None)
            if item is not None:
                self.plotter.remove_actor(item.actor, render=False)
        for group, parts in list(self._groups.items()):
            if key in parts:
                parts.remove(key)
                if not parts:
                    del self._groups[group]
        self.plotter.render()

    def clear(self) -> None:
        for part in list(self._items):
            self.plotter.remove_actor(self._items.pop(part).actor, render=False)
        self._groups.clear()
        self.plotter.render()

    # -- camera
    def _reset_projection(self) -> None:
        self._photo = None
        cam = self.plotter.camera
        cam.SetWindowCenter(0.0, 0.0)
        cam.SetViewAngle(30.0)
        if hasattr(cam, "SetUseExplicitAspectRatio"):
            cam.SetUseExplicitAspectRatio(False)

    def reset_camera(self) -> None:
        """Look at everything from the front."""
        self.set_view("front")

    def set_view(self, name: str) -> None:
        """One of ``front, back, left, right, top, three-quarter`` (see the module docstring)."""
        if name not in VIEW_DIRECTIONS:
            raise ValueError(f"unknown view {name!r}; choose from {', '.join(VIEW_DIRECTIONS)}")
        direction, up = VIEW_DIRECTIONS[name]
        self._reset_projection()
        bounds = self.plotter.renderer.ComputeVisiblePropBounds()
        if bounds[0] > bounds[1]:
            bounds = (-1, 1, -1, 1, -1, 1)
        center = np.array([(bounds[0] + bounds[1]) / 2, (bounds[2] + bounds[3]) / 2, (bounds[4] + bounds[5]) / 2])
        d = np.asarray(direction, float) / np.linalg.norm(direction)
        cam = self.plotter.camera
        cam.SetFocalPoint(*center)
        cam.SetPosition(*(center + d))
        cam.SetViewUp(*up)
        self.plotter.renderer.ResetCamera(bounds)
        self.plotter.render()

    def set_camera_from_photo(self, K, R, t, image_size) -> None:
        """Match the VTK camera to a pinhole photo camera (OpenCV convention, see module doc).

        The photo is fitted into the current window (letterboxed when the aspect ratios
        differ), so a point at photo pixel (u, v) appears at the corresponding position of
        the photo's rectangle in the window; with the window the size of the photo, at
        pixel (u, v) of a screenshot.
        """
        K = np.asarray(K, float)
        R = np.asarray(R, float).reshape(3, 3)
        t = np.asarray(t, float).reshape(3)
        w, h = (float(s) for s in image_size)
        W, H = (float(s) for s in self.plotter.render_window.GetSize())
        s = min(W / w, H / h)
        fx, fy = K[0, 0] * s, K[1, 1] * s
        # photo pixel centre u -> window pixel centre: continuous coordinates scaled about the centre
        cx = s * (K[0, 2] + 0.5 - w / 2) + W / 2 - 0.5
        cy = s * (K[1, 2] + 0.5 - h / 2) + H / 2 - 0.5
        centre = -R.T @ t
        forward, down = R[2], R[1]
        cam = self.plotter.camera
        bounds = self.plotter.renderer.ComputeVisiblePropBounds()
        scene = np.array([(bounds[0] + bounds[1]) / 2, (bounds[2] + bounds[3]) / 2, (bounds[4] + bounds[5]) / 2])
        dist = float(np.dot(scene - centre, forward)) if bounds[0] <= bounds[1] else 1.0
        cam.SetPosition(*centre)
        cam.SetFocalPoint(*(centre + forward * (dist if dist > 1e-3 else 1.0)))
        cam.SetViewUp(*(-down))
        cam.SetViewAngle(float(np.degrees(2 * np.arctan(H / (2 * fy)))))
        cam.SetWindowCenter(1.0 - 2.0 * (cx + 0.5) / W, 2.0 * (cy + 0.5) / H - 1.0)
        if hasattr(cam, "SetExplicitAspectRatio") and abs(fx - fy) > 1e-6 * fy:
            cam.SetExplicitAspectRatio((W / H) * (fy / fx))
            cam.SetUseExplicitAspectRatio(True)
        self.plotter.renderer.ResetCameraClippingRange()
        self._photo = ((K, R, t, image_size), self._camera_pose())
        self.plotter.render()

    def _camera_pose(self) -> tuple:
        cam = self.plotter.camera
        return cam.GetPosition() + cam.GetFocalPoint() + cam.GetViewUp()

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:
        super().resizeEvent(event)
        # keep a photo camera matched to its photo while the user has not moved the view
        if self._photo is not None and self._photo[1] == self._camera_pose():
            QtCore.QTimer.singleShot(0, lambda: self._photo and self.set_camera_from_photo(*self._photo[0]))

    # -- appearance
    def set_wireframe(self, on: bool) -> None:
        """Draw meshes as edges (points and strands keep their style)."""
        self.wireframe = bool(on)
        for item in self._items.values():
            if item.normals is not None:
                item.actor.prop.style = "wireframe" if on else "surface"
        if self.wireframe_action.isChecked() != self.wireframe:
            self.wireframe_action.setChecked(self.wireframe)
        self.plotter.render()

    def set_background(self, color) -> None:
        """A solid background colour (name, hex string or RGB in 0..1)."""
        self.plotter.set_background(color)
        self.plotter.render()

    def set_point_size(self, px: float) -> None:
        self.point_size = float(px)
        for item in self._items.values():
            if item.normals is None and item.poly.n_lines == 0:
                item.actor.prop.point_size = self.point_size
        if self.point_size_box.value() != int(px):
            self.point_size_box.setValue(int(px))
        self.plotter.render()

    def set_strand_tubes(self, on: bool, width: float | None = None) -> None:
        """Draw strands (hair) as shaded tubes instead of flat lines; ``width`` in pixels."""
        self.strand_tubes = bool(on)
        self.line_width = float(width or self.line_width)
        if self.tubes_action.isChecked() != self.strand_tubes:
            self.tubes_action.setChecked(self.strand_tubes)
        for item in self._items.values():
            if item.poly.n_lines:
                item.actor.prop.render_lines_as_tubes = self.strand_tubes
                item.actor.prop.line_width = self.line_width
        self.plotter.render()

    def screenshot(self, path: str | Path | None = None) -> np.ndarray:
        """The current view as H x W x 3 uint8 RGB; also written as PNG when ``path`` is given."""
        self.plotter.render()
        img = np.asarray(self.plotter.screenshot(return_img=True))[:, :, :3].copy()
        if path is not None:
            from engines.io import atomic_path
            from PIL import Image as PILImage

            with atomic_path(path, suffix=".png") as tmp:
                PILImage.fromarray(img).save(tmp, format="PNG")
        return img

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self.plotter.close()
        super().closeEvent(event)
