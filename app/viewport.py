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
* Photo cameras (:class:`engines.types.Camera`, :meth:`Viewport.set_camera`, the
  conversion in :func:`vtk_view`) use OpenCV's pinhole model:
  a display-frame point ``X`` has camera coordinates ``x = R @ X + t`` (x right, y down,
  z forward) and lands on pixel ``(u, v) = (fx x/z + cx, fy y/z + cy)``, with integer
  ``(u, v)`` at pixel centres and (0, 0) the top-left pixel. For a depth map's own points
  that is ``R = diag(1, -1, -1), t = 0`` (:meth:`engines.types.DepthMap.display_camera`).
  "View from camera" in the toolbar lists the cameras of what is shown (:func:`cameras_of`:
  a splat's photos, multi-view camera frusta, the avatar's photo, a depth map's photo).
* Texture coordinates follow OBJ/trimesh: ``v = 0`` is the bottom row of the texture.

Shading: vertex normals are computed here (area weighted) from faces wound
counter-clockwise seen from outside; a closed mesh that turns out inside-out (negative
signed volume) is rewound as a whole for display. Normals go to VTK as point normals
(Gouraud shading). Lighting is a headlight plus a weak fill light, with two-sided
lighting, so whatever faces the camera is lit, open surfaces included.

Performance: :meth:`Viewport.update_points` writes into the existing VTK points array and
recomputes normals with a cached sparse vertex-face matrix; no actor is re-created. While
the view moves (a mouse drag or wheel on it, or a stream of ``update_points`` from a
slider) heavy parts are drawn by lighter stand-ins (:mod:`app.lod`): full detail returns
when the motion stops. ``benchmarks/viewport.py`` measures orbit frames and slider steps.

Depth maps are drawn as a surface from the photo's own camera, which is then the view
"Reset" returns to; pixels below the confidence slider's threshold are hidden (or faded).
Other results are framed by their main part (:attr:`Viewport.frame_key`), so camera
frusta or stray points beside a reconstruction do not shrink it in the view.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyvista as pv
from pyvistaqt import QtInteractor
from PySide6 import QtCore, QtGui, QtWidgets

from app.renderers import (  # noqa: F401  (re-exported: tests and benchmarks use them)
    MAX_DEPTH_POINTS,
    VIEW_DIRECTIONS,
    _Item,
    VertexNormals,
    vertex_normals,
    signed_volume,
    _is_closed,
    _rgb8,
    _texture,
    draw_mesh,
    draw_points,
    draw_depth,
    strand_colors,
    draw_strands,
    draw_avatar,
    draw_nothing,
    Renderer,
    RENDERERS,
    renderer_for,
    cameras_of,
)
from app.lod import lod_map
from app.renderers import CONFIDENCE_DEFAULT, depth_colours, depth_faces_shown
from engines.types import Camera, Mesh, PointCloud, Splat, Strands

MOTION_REST_MS = 300
"""Full detail returns this long after the last wheel step or slider update."""


@dataclass(frozen=True)
class VtkView:
    """What a VTK camera is set to for a photo camera (see :func:`vtk_view`)."""

    position: tuple[float, float, float]
    focal_point: tuple[float, float, float]
    view_up: tuple[float, float, float]
    view_angle: float
    """Vertical, degrees (of the window)."""
    window_center: tuple[float, float]
    aspect: float | None
    """An explicit aspect ratio for non-square pixels (fx != fy), else None."""

    def apply(self, vtk_camera) -> None:
        vtk_camera.SetPosition(*self.position)
        vtk_camera.SetFocalPoint(*self.focal_point)
        vtk_camera.SetViewUp(*self.view_up)
        vtk_camera.SetViewAngle(self.view_angle)
        vtk_camera.SetWindowCenter(*self.window_center)
        if hasattr(vtk_camera, "SetUseExplicitAspectRatio"):
            if self.aspect is not None:
                vtk_camera.SetExplicitAspectRatio(self.aspect)
            vtk_camera.SetUseExplicitAspectRatio(self.aspect is not None)


def vtk_view(camera: Camera, window_size, focus: float = 1.0) -> VtkView:
    """The VTK camera that sees the world as ``camera`` does, its photo fitted into a window
    of ``window_size`` (W, H) pixels (letterboxed when the aspect ratios differ): a point at
    photo pixel (u, v) appears at the corresponding position of the photo's rectangle in
    the window; with the window the size of the photo, at pixel (u, v) of a screenshot.

    Position = the camera centre, focal point = centre + ``focus`` x forward (the orbit
    pivot; it does not change the picture), view-up = minus the camera's y axis (OpenCV's y
    is down), the vertical view angle from fy and the window height, the principal point as
    VTK's window centre."""
    camera = Camera.from_dict(camera)
    w, h = (float(s) for s in camera.image_size)
    W, H = (float(s) for s in window_size)
    if w <= 0 or h <= 0:  # no image size: take the window's
        w, h = W, H
    K = camera.K
    s = min(W / w, H / h)
    fx, fy = K[0, 0] * s, K[1, 1] * s
    # photo pixel centre u -> window pixel centre: continuous coordinates scaled about the centre
    cx = s * (K[0, 2] + 0.5 - w / 2) + W / 2 - 0.5
    cy = s * (K[1, 2] + 0.5 - h / 2) + H / 2 - 0.5
    centre, forward = camera.centre, camera.forward
    return VtkView(
        position=tuple(float(v) for v in centre),
        focal_point=tuple(float(v) for v in centre + forward * (focus if focus > 1e-3 else 1.0)),
        view_up=tuple(float(v) for v in camera.up),
        view_angle=float(np.degrees(2 * np.arctan(H / (2 * fy)))),
        window_center=(1.0 - 2.0 * (cx + 0.5) / W, 2.0 * (cy + 0.5) / H - 1.0),
        aspect=(W / H) * (fy / fx) if abs(fx - fy) > 1e-6 * fy else None,
    )


# ----------------------------------------------------------------------------- widget
class _Interactor(QtInteractor):
    """pyvistaqt's interactor, rendering a frame only when the scene changed.

    pyvistaqt's ``paintGL`` renders the scene again on every paint, and every VTK render
    (a camera move from the mouse, ``plotter.render()``) schedules such a paint: each frame
    was rendered twice (20 renders for 10 mouse moves: half of every orbit frame under a
    software GL), and every paint Qt makes for its own reasons (a dock or panel changing
    size beside the view, a notes panel appearing) rendered the scene once more (60-170 ms
    stalls while a job streamed progress, benchmarks/ui_block.py). Here a paint renders
    only when the scene's stamp (modification times of the camera, renderer, actors,
    their properties, mappers and data, and the window size) differs from that of the
    last frame; otherwise it shows (blits) the last frame. :meth:`Viewport.request_paint`
    forces the next paint to render.
    """

    stamp = None
    """The scene stamp of the last rendered frame (None: render at the next paint)."""

    def scene_stamp(self) -> tuple:
        ren = self.renderer
        parts = [ren.GetMTime(), ren.GetActiveCamera().GetMTime(), tuple(self.render_window.GetSize())]
        actors = ren.GetActors()
        actors.InitTraversal()
        for _ in range(actors.GetNumberOfItems()):
            a = actors.GetNextActor()
            m = a.GetMapper()
            data = m.GetInput() if m is not None else None
            tex = a.GetTexture()
            parts += [
                a.GetMTime(),
                a.GetProperty().GetMTime(),
                m.GetMTime() if m is not None else 0,
                data.GetMTime() if data is not None else 0,
                tex.GetMTime() if tex is not None else 0,
            ]
        return tuple(parts)

    def defer_render(self) -> None:
        """The next paint shows the last frame and asks for another paint from a timer,
        which renders: a new scene's first render then comes after the event loop has had a
        turn, not in the event that made the scene (where Qt may paint the view, its layout
        having changed, in the same pass: issue 15, a splat's 150 ms stall)."""
        self._deferred = True
        self.update()

    def paintGL(self):  # noqa: N802 (Qt naming)
        if getattr(self, "_deferred", False) and not getattr(self, "_in_paint", False):
            self._deferred = False
            self._in_paint = True  # blit the last frame
            try:
                super().paintGL()
            finally:
                self._in_paint = False
            # a real timer (1 ms): Qt delivers a 0 ms single shot as a posted event, in
            # this same pass
            QtCore.QTimer.singleShot(1, self, self.update)
            return
        if getattr(self, "_in_paint", False) or self.stamp is None or self.stamp != self.scene_stamp():
            super().paintGL()
            return
        self._in_paint = True  # pyvistaqt's paintGL then blits the last frame without rendering
        try:
            super().paintGL()
        finally:
            self._in_paint = False


class Viewport(QtWidgets.QWidget):
    """3D view of results with a small toolbar (views, wireframe, screenshot, background)."""

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self._items: dict[str, _Item] = {}
        self._groups: dict[str, list[str]] = {}
        self._sources: dict[str, object] = {}  # key -> the object shown under it (its cameras)
        self._counter = 0
        self.point_size = 3.0
        self.line_width = 2.0
        self.strand_tubes = False
        self.wireframe = False
        self.software_gl = False
        self.confidence_threshold = CONFIDENCE_DEFAULT
        self.fade_low_confidence = False
        self.frame_key: str | None = None
        """The drawn object that "Reset" frames (the main item of a result); None: everything."""
        self.lod_enabled = True
        self.interacting = False
        self._photo: tuple | None = None  # (Camera, VTK camera pose) of the last photo camera
        self._stale_normals: set[str] = set()
        self._rest_timer = QtCore.QTimer(self)
        self._rest_timer.setSingleShot(True)
        self._rest_timer.setInterval(MOTION_REST_MS)
        self._rest_timer.timeout.connect(lambda: self.set_interacting(False))
        self.toolbar = QtWidgets.QToolBar(self)
        # auto_update off: pyvistaqt would otherwise redraw 5 times a second forever, which on
        # a software GL costs a core; every change here renders explicitly.
        self.plotter = _Interactor(self, auto_update=False)
        self.plotter.render_window.AddObserver("EndEvent", self._rendered)
        self._gradient = ((0.16, 0.17, 0.19), (0.36, 0.38, 0.42))
        self.plotter.set_background(self._gradient[0], top=self._gradient[1])
        self._gl_checked = False
        self._setup_lights()
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(self.toolbar)
        lay.addWidget(self.plotter.interactor, 1)
        self._build_toolbar()
        self.plotter.installEventFilter(self)
        QtCore.QTimer.singleShot(0, self._warm_up)

    def _rendered(self, *_args) -> None:
        self._frame_shown = self.plotter.isVisible() and self.plotter.width() > 1
        self.plotter.stamp = self.plotter.scene_stamp()

    def request_paint(self) -> None:
        """Have the scene rendered by the next paint (once), after changes made without a
        render; renders now when the widget is not visible."""
        widget = self.plotter
        if widget.isVisible():
            widget.stamp = None
            widget.update()
        else:
            widget.render()

    def _warm_up(self) -> None:
        """Draw one frame with a tiny part of every kind (lit coloured and textured
        triangles, points, lines), so that the OpenGL shaders for them are compiled now,
        while nothing waits, and not when the first result is shown (0.3-0.7 s each under
        a software GL)."""
        if self._items or not self.plotter.isVisible():
            return
        try:
            tri = np.array([[0, 0, 0], [1e-4, 0, 0], [0, 1e-4, 0]], np.float32)
            parts = [
                self.show(
                    Mesh(tri, [[0, 1, 2]], vertex_colors=np.full((3, 3), 128, np.uint8)), "_warm/rgb", render=False
                ),
                self.show(
                    Mesh(tri, [[0, 1, 2]], uv=np.zeros((3, 2), np.float32), texture=np.full((4, 4, 3), 128, np.uint8)),
                    "_warm/tex",
                    render=False,
                ),
                self.show(PointCloud(tri, np.full((3, 3), 128, np.uint8)), "_warm/pts", render=False),
                self.show(Strands(tri[None]), "_warm/lines", render=False),
                # oriented Gaussians (app.splat_view: vtkPointGaussianMapper's own shaders)
                self.show(
                    Splat(
                        tri, np.full((3, 3), -9.0), np.tile([1.0, 0, 0, 0], (3, 1)), np.zeros(3), np.zeros((3, 1, 3))
                    ),
                    "_warm/splat",
                    render=False,
                ),
            ]
            cam = self.plotter.camera
            pose = cam.GetPosition(), cam.GetFocalPoint(), cam.GetViewUp()
            self.plotter.render()
            for k in parts:
                if k:
                    self.remove(k, render=False)
            cam.SetPosition(*pose[0]), cam.SetFocalPoint(*pose[1]), cam.SetViewUp(*pose[2])
            self.plotter.render()
        except Exception:  # a warm-up must never cost the view
            import logging

            logging.getLogger("app.viewport").debug("shader warm-up failed", exc_info=True)

    def _setup_lights(self) -> None:
        """A headlight (whatever faces the camera is lit) plus a weak fill from the upper left."""
        ren = self.plotter.renderer
        ren.remove_all_lights()
        ren.add_light(pv.Light(light_type="headlight", intensity=0.85))
        ren.add_light(
            pv.Light(position=(-1.0, 1.0, 0.8), focal_point=(0, 0, 0), light_type="camera light", intensity=0.3)
        )
        ren.SetTwoSidedLighting(True)

    def _tune_for_gl(self) -> None:
        """On a software renderer (Mesa llvmpipe, e.g. under Xvfb or in a VM) multisampling
        triples the cost of a frame and mipmapped textures double it, so both are off
        there, and hair lines are drawn 1 px wide; real GPUs keep them (benchmarks/viewport.py measures this)."""
        if self._gl_checked:
            return
        caps = self.plotter.render_window.ReportCapabilities() or ""
        if not caps.strip():
            return  # no GL context yet
        self._gl_checked = True
        self.software_gl = any(s in caps.lower() for s in ("llvmpipe", "softpipe", "swrast", "swiftshader"))
        if self.software_gl:
            self.plotter.render_window.SetMultiSamples(0)
            # The gradient background costs ~7 ms a frame there (a quarter of the orbit
            # frame budget): the same colours as a flat mix.
            if self._gradient:
                self.plotter.set_background(tuple(0.5 * (a + b) for a, b in zip(*self._gradient)))
                self._gradient = None
            # Wide GL lines cost about twice as much as 1 px ones there (hair: 40 vs 100 ms a frame).
            self.line_width = min(self.line_width, 1.0)

    # -- toolbar
    def _build_toolbar(self) -> None:
        tb = self.toolbar
        tb.setIconSize(QtCore.QSize(16, 16))
        tb.addAction("Reset", self.reset_camera).setToolTip(
            "Back to the photo's camera for a depth map; otherwise frame the result"
        )
        # Left/Right side are the subject's own sides, as an artist names a profile (issue 15:
        # "Left" showed the subject's right cheek): a subject facing the viewer has its left
        # side towards +x, the view that set_view calls "right".
        self.camera_menu = QtWidgets.QMenu("View from camera", self)
        self.camera_menu.aboutToShow.connect(self._fill_camera_menu)
        self.camera_button = QtWidgets.QToolButton(self)
        self.camera_button.setText("View from camera")
        self.camera_button.setToolTip("Look through one of the cameras of what is shown (its photos)")
        self.camera_button.setMenu(self.camera_menu)
        self.camera_button.setPopupMode(QtWidgets.QToolButton.InstantPopup)
        self.camera_action = tb.addWidget(self.camera_button)
        self.camera_action.setEnabled(False)
        for label, view, tip in (
            ("Front", "front", "Look at the front"),
            ("Left side", "right", "The subject's own left side (on your right when it faces you)"),
            ("Right side", "left", "The subject's own right side (on your left when it faces you)"),
            ("Back", "back", "Look at the back"),
            ("Top", "top", "Look down from above"),
            ("Three-quarter", "three-quarter", "Front and the subject's left side"),
        ):
            tb.addAction(label, lambda n=view: self.set_view(n)).setToolTip(tip)
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
        tb.addSeparator()
        self.confidence_label = QtWidgets.QLabel(" Confidence ")
        self.confidence_slider = QtWidgets.QSlider(QtCore.Qt.Horizontal)
        self.confidence_slider.setRange(0, 100)
        self.confidence_slider.setValue(int(round(100 * self.confidence_threshold)))
        self.confidence_slider.setMaximumWidth(120)
        self.confidence_slider.setToolTip("Depth maps: hide the pixels whose confidence is below this")
        self.confidence_slider.valueChanged.connect(lambda v: self.set_confidence_threshold(v / 100.0))
        self.fade_box = QtWidgets.QCheckBox("Fade")
        self.fade_box.setToolTip(
            "Depth maps: show the pixels below the confidence threshold dimmed instead of hiding them"
        )
        self.fade_box.toggled.connect(self.set_fade_low_confidence)
        self._confidence_actions = [
            tb.addWidget(w) for w in (self.confidence_label, self.confidence_slider, self.fade_box)
        ]
        self._update_confidence_controls()

    def _save_screenshot_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save screenshot", "view.png", "PNG image (*.png)")
        if path:
            self.screenshot(path if path.lower().endswith(".png") else path + ".png")

    def _background_dialog(self) -> None:
        color = QtWidgets.QColorDialog.getColor(QtGui.QColor(40, 43, 48), self, "Background colour")
        if color.isValid():
            self.set_background(color.getRgbF()[:3])

    # -- content
    def show(self, obj=None, key: str | None = None, render: bool = True) -> str | None:  # type: ignore[override]
        """Draw ``obj`` under ``key`` (replacing what was there) and return the key.

        Called with no object it behaves as ``QWidget.show``. Returns None for objects
        that are not drawn in 3D (images) or that have no renderer. ``render=False``
        leaves the camera and the frame to the caller (several parts, one render).
        """
        if obj is None:
            super().show()
            return None
        if renderer_for(obj) in (None, draw_nothing):
            return None
        self._tune_for_gl()
        if key is None:
            self._counter += 1
            key = f"{getattr(obj, 'name', type(obj).__name__)}#{self._counter}"
        self.remove(key, render=False)
        first = not self._items
        parts = renderer_for(obj)(self, obj, key)
        if not parts:
            return None
        self._groups[key] = parts
        self._sources[key] = obj
        if self.wireframe:
            self.set_wireframe(True, render=False)
        if self.interacting:
            self._use_lod(parts, True)
        self._update_confidence_controls()
        self._update_camera_controls()
        if render:
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

    def update_points(self, key: str, points: np.ndarray, deferred: bool = False) -> None:
        """Move the vertices of a drawn part in place (same actor, same PolyData) and render.

        ``deferred``: ask the widget for a repaint instead of rendering now, so a frame that
        also changes labels or a preview is rendered once, by the paint event (rendering now
        and then again in the paint it causes costs twice as much under software GL)."""
        item = self._items.get(key)
        if item is None:
            raise KeyError(f"nothing drawn under {key!r}")
        pts = np.asarray(points, np.float32).reshape(-1, 3)
        arr = item.poly.points
        if pts.shape != arr.shape:
            raise ValueError(f"{key}: expected {arr.shape[0]} points, got {pts.shape[0]}")
        if deferred:
            # a stream of updates (a slider drag, live tracking): heavy parts, this one
            # included, are drawn by their stand-ins until it rests
            self._moving()
        arr[:] = pts
        item.poly.GetPoints().Modified()
        light = item.lod is not None and item.lod[0].GetVisibility()
        if item.normals is not None:
            if light:  # the full part is hidden: its normals are made when it is shown again
                self._stale_normals.add(key)
            else:
                item.poly.point_data["Normals"][:] = item.normals(pts)
                item.poly.GetPointData().GetNormals().Modified()
        item.poly.Modified()
        if light:
            item.lod[2].update(item.lod[1], item.poly)
        if deferred:
            self.request_paint()
        else:
            self.plotter.render()

    def remove(self, key: str, render: bool = True) -> None:
        """Remove a drawn object (all parts of a group such as an avatar) or a single part."""
        for part in self._groups.pop(key, [key]):
            item = self._items.pop(part, None)
            if item is not None:
                self._remove_item(item)
        self._sources.pop(key, None)
        for group, parts in list(self._groups.items()):
            if key in parts:
                parts.remove(key)
                if not parts:
                    del self._groups[group]
                    self._sources.pop(group, None)
        self._update_confidence_controls()
        self._update_camera_controls()
        if render:
            self.plotter.render()

    def _remove_item(self, item: _Item) -> None:
        self.plotter.remove_actor(item.actor, render=False)
        if item.lod is not None:
            self.plotter.remove_actor(item.lod[0], render=False)

    def clear(self, render: bool = True) -> None:
        for part in list(self._items):
            self._remove_item(self._items.pop(part))
        self._groups.clear()
        self._sources.clear()
        self.frame_key = None
        self._update_confidence_controls()
        self._update_camera_controls()
        if render:
            self.plotter.render()

    # -- camera
    def _reset_projection(self) -> None:
        self._photo = None
        cam = self.plotter.camera
        cam.SetWindowCenter(0.0, 0.0)
        cam.SetViewAngle(30.0)
        if hasattr(cam, "SetUseExplicitAspectRatio"):
            cam.SetUseExplicitAspectRatio(False)

    def home_camera(self) -> Camera | None:
        """The photo camera a drawn part was seen from (a depth map), or None."""
        order = ([self.frame_key] if self.frame_key in self._groups else []) + list(self._groups)
        for group in order:
            for part in self._groups.get(group, []):
                item = self._items.get(part)
                if item is not None and item.camera is not None:
                    return item.camera
        return None

    def reset_camera(self, render: bool = True) -> None:
        """The photo's own camera for a depth map; otherwise the front view framing the
        main part (:attr:`frame_key`), or everything."""
        home = self.home_camera()
        if home is not None:
            self.set_camera(home, render=render)
        else:
            self.set_view("front", render=render)

    def framed_bounds(self) -> np.ndarray | None:
        """(lo, hi) corners to frame: the main part's points, without the farthest 0.5 %
        on each axis (stray points), or every drawn part; None when nothing is drawn."""
        parts = self._groups.get(self.frame_key) if self.frame_key else None
        parts = parts or list(self._items)
        pts = [
            np.asarray(self._items[p].poly.points)
            for p in parts
            if p in self._items and self._items[p].poly.n_points and not p.startswith("_warm/")
        ]
        if not pts:
            return None
        allp = np.concatenate(pts)
        if len(allp) > 2000:
            step = max(1, len(allp) // 200_000)
            lo, hi = np.percentile(allp[::step], [0.5, 99.5], axis=0)
        else:
            lo, hi = allp.min(0), allp.max(0)
        return np.stack([lo, hi]).astype(float)

    def set_view(self, name: str, render: bool = True) -> None:
        """One of ``front, back, left, right, top, three-quarter`` (see the module docstring),
        the framed part (:meth:`framed_bounds`) filling the view."""
        if name not in VIEW_DIRECTIONS:
            raise ValueError(f"unknown view {name!r}; choose from {', '.join(VIEW_DIRECTIONS)}")
        direction, up = VIEW_DIRECTIONS[name]
        self._reset_projection()
        box = self.framed_bounds()
        if box is None:
            box = np.array([[-1.0, -1, -1], [1, 1, 1]])
        self._fit(box, np.asarray(direction, float), np.asarray(up, float))
        if render:
            self.plotter.render()

    def _fit(self, box: np.ndarray, direction: np.ndarray, up: np.ndarray, margin: float = 0.92) -> None:
        """Look along ``-direction`` at the box's centre from the distance at which all
        eight corners fit the window (``margin`` of its height and width)."""
        lo, hi = box
        center = (lo + hi) / 2
        d = direction / np.linalg.norm(direction)
        u = up - np.dot(up, d) * d
        u /= np.linalg.norm(u)
        r = np.cross(-d, u)
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]) - center
        x, y, z = corners @ r, corners @ u, corners @ d
        cam = self.plotter.camera
        W, H = (max(1, v) for v in self.plotter.render_window.GetSize())
        tv = np.tan(np.radians(cam.GetViewAngle()) / 2) * margin
        th = tv * W / H
        size = max(float(np.linalg.norm(hi - lo)), 1e-9)
        dist = float(max(np.max(z + np.abs(y) / tv), np.max(z + np.abs(x) / th), z.max() + 1e-3 * size))
        cam.SetFocalPoint(*center)
        cam.SetPosition(*(center + d * dist))
        cam.SetViewUp(*u)
        self.plotter.renderer.ResetCameraClippingRange()

    def set_camera_from_photo(self, K, R, t, image_size, render: bool = True) -> None:
        """:meth:`set_camera` for a camera given as its parts (OpenCV convention, see the
        module doc)."""
        w, h = image_size
        self.set_camera(Camera(K, R, t, w, h), render=render)

    def set_camera(self, camera: Camera, render: bool = True) -> None:
        """Look through ``camera`` (:func:`vtk_view`): the photo fitted into the window; the
        orbit pivot is the drawn scene's centre along its view."""
        camera = Camera.from_dict(camera)
        bounds = self.plotter.renderer.ComputeVisiblePropBounds()
        scene = np.array([(bounds[0] + bounds[1]) / 2, (bounds[2] + bounds[3]) / 2, (bounds[4] + bounds[5]) / 2])
        dist = float(np.dot(scene - camera.centre, camera.forward)) if bounds[0] <= bounds[1] else 1.0
        vtk_view(camera, self.plotter.render_window.GetSize(), dist).apply(self.plotter.camera)
        self.plotter.renderer.ResetCameraClippingRange()
        self._photo = (camera, self._camera_pose())
        if render:
            self.plotter.render()

    def shown_cameras(self) -> list[tuple[str, Camera]]:
        """(menu label, camera) for every camera of what is shown (:func:`cameras_of`), the
        same photo once (a splat's cameras and its frusta' are the same photos)."""
        out, seen = [], set()
        named = len([o for k, o in self._sources.items() if not k.startswith("_warm/") and cameras_of(o)]) > 1
        for key, obj in self._sources.items():
            if key.startswith("_warm/"):
                continue
            for i, cam in enumerate(cameras_of(obj)):
                label = cam.name or f"Camera {i + 1}"
                ident = (label, tuple(np.round(cam.centre, 6)), tuple(np.round(cam.forward, 6)))
                if ident in seen:
                    continue
                seen.add(ident)
                if cam.held_out:
                    label += " (held out)"
                if named:
                    label = f"{getattr(obj, 'name', key)}: {label}"
                out.append((label, cam))
        return out

    def _fill_camera_menu(self) -> None:
        self.camera_menu.clear()
        for label, cam in self.shown_cameras():
            self.camera_menu.addAction(label, lambda c=cam: self.set_camera(c))

    def _update_camera_controls(self) -> None:
        self.camera_action.setEnabled(bool(self.shown_cameras()))

    def _camera_pose(self) -> tuple:
        cam = self.plotter.camera
        return cam.GetPosition() + cam.GetFocalPoint() + cam.GetViewUp()

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:
        super().resizeEvent(event)
        # keep a photo camera matched to its photo while the user has not moved the view
        if self._photo is not None and self._photo[1] == self._camera_pose():
            QtCore.QTimer.singleShot(0, lambda: self._photo and self.set_camera(self._photo[0]))

    # -- appearance
    def set_wireframe(self, on: bool, render: bool = True) -> None:
        """Draw meshes as edges (points and strands keep their style)."""
        self.wireframe = bool(on)
        for item in self._items.values():
            if item.normals is not None:
                for actor in (item.actor,) + ((item.lod[0],) if item.lod is not None else ()):
                    actor.prop.style = "wireframe" if on else "surface"
        if self.wireframe_action.isChecked() != self.wireframe:
            self.wireframe_action.setChecked(self.wireframe)
        if render:
            self.plotter.render()

    # -- depth confidence
    def _update_confidence_controls(self) -> None:
        on = any(item.depth is not None and item.depth.has_confidence for item in self._items.values())
        for a in getattr(self, "_confidence_actions", []):
            a.setVisible(on)

    def set_confidence_threshold(self, threshold: float) -> None:
        """Hide (or fade) the depth pixels whose confidence is below ``threshold`` (0..1)."""
        self.confidence_threshold = float(min(max(threshold, 0.0), 1.0))
        v = int(round(100 * self.confidence_threshold))
        if self.confidence_slider.value() != v:
            self.confidence_slider.blockSignals(True)
            self.confidence_slider.setValue(v)
            self.confidence_slider.blockSignals(False)
        self._apply_confidence()

    def set_fade_low_confidence(self, on: bool) -> None:
        """Show the depth pixels below the threshold dimmed instead of hiding them."""
        self.fade_low_confidence = bool(on)
        if self.fade_box.isChecked() != self.fade_low_confidence:
            self.fade_box.setChecked(self.fade_low_confidence)
        self._apply_confidence()

    def _apply_confidence(self) -> None:
        thr, fade = self.confidence_threshold, self.fade_low_confidence
        changed = False
        for item in self._items.values():
            arr = item.depth
            if arr is None or not arr.has_confidence or item.poly.n_lines or item.normals is None:
                continue
            item.poly.regular_faces = depth_faces_shown(arr, thr, fade)
            item.poly.point_data["RGB"][:] = depth_colours(arr, thr, fade)
            item.poly.Modified()
            if item.lod is not None:  # made again from the faces now shown when next needed
                self.plotter.remove_actor(item.lod[0], render=False)
                item.lod = None
            changed = True
        if changed:
            self.plotter.render()

    def shown_faces(self, key: str) -> np.ndarray:
        """The triangles of a drawn part as VTK has them now (F x 3)."""
        return np.asarray(self._items[key].poly.regular_faces)

    # -- level of detail while the view moves
    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt naming)
        t = event.type()
        if obj is self.plotter:
            if t == QtCore.QEvent.MouseButtonPress:
                self.set_interacting(True)
            elif t == QtCore.QEvent.MouseButtonRelease:
                # after VTK's own release handling (its last frame is drawn light, then full)
                QtCore.QTimer.singleShot(0, lambda: self.set_interacting(False))
            elif t == QtCore.QEvent.Wheel:
                self._moving()
        return super().eventFilter(obj, event)

    def _moving(self) -> None:
        """A discrete motion (wheel step, slider update): light parts until it rests."""
        if not self.interacting:
            self.set_interacting(True, render=False)
        self._rest_timer.start()

    def set_interacting(self, on: bool, render: bool = True) -> None:
        """While ``on``, heavy parts are drawn by their stand-ins (:mod:`app.lod`); turning
        it off brings full detail back with one render."""
        on = bool(on) and self.lod_enabled
        if on == self.interacting:
            return
        self.interacting = on
        if not on:
            self._rest_timer.stop()
        swapped = self._use_lod(list(self._items), on)
        if render and swapped and not on:
            self.plotter.render()

    def _use_lod(self, keys, on: bool) -> bool:
        """Show each part's stand-in (``on``) or the part itself; True if any swapped."""
        swapped = False
        for k in keys:
            item = self._items.get(k)
            if item is None:
                continue
            if on:
                shape = (item.poly.n_points, item.poly.n_cells)
                if item.lod is not None and item.lod[3] != shape:  # redrawn in place (a hairstyle switch)
                    self.plotter.remove_actor(item.lod[0], render=False)
                    item.lod = None
                if item.lod is None:
                    item.lod = self._make_lod(item)
                if item.lod is None:
                    continue
                actor, poly, rule, _shape = item.lod
                rule.update(poly, item.poly)
                actor.SetVisibility(True)
                item.actor.SetVisibility(False)
                swapped = True
            elif item.lod is not None and not item.actor.GetVisibility():
                if k in self._stale_normals and item.normals is not None:
                    item.poly.point_data["Normals"][:] = item.normals(np.asarray(item.poly.points))
                    item.poly.GetPointData().GetNormals().Modified()
                    item.poly.Modified()
                self._stale_normals.discard(k)
                item.lod[0].SetVisibility(False)
                item.actor.SetVisibility(True)
                swapped = True
        return swapped

    def _make_lod(self, item: _Item):
        """(actor, poly, rule, shape of the part) of a part's stand-in, hidden; None for a
        part light enough to draw as it is."""
        rule = lod_map(item)
        if rule is None:
            return None
        poly = rule.make_poly(item.poly)
        prop = item.actor.prop
        kw: dict = dict(show_scalar_bar=False, reset_camera=False, render=False, lighting=prop.lighting)
        if "RGB" in poly.point_data:
            kw.update(scalars="RGB", rgb=True)
        else:
            kw["color"] = prop.color
        if rule.kind == "points":
            kw.update(style="points", point_size=prop.point_size)
        elif rule.kind == "strands":
            kw.update(line_width=prop.line_width, ambient=prop.ambient, diffuse=prop.diffuse)
        else:
            kw.update(
                ambient=prop.ambient,
                diffuse=prop.diffuse,
                specular=prop.specular,
                style="wireframe" if self.wireframe else "surface",
            )
        actor = self.plotter.add_mesh(poly, **kw)
        if rule.kind == "mesh":
            actor.prop.interpolation = "gouraud"
            actor.prop.backface_culling = False
        actor.SetVisibility(False)
        return actor, poly, rule, (item.poly.n_points, item.poly.n_cells)

    def set_background(self, color) -> None:
        """A solid background colour (name, hex string or RGB in 0..1)."""
        self._gradient = None
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

    def last_frame(self) -> np.ndarray:
        """The frame rendered last, as H x W x 3 uint8 RGB, without rendering again (a
        thumbnail right after a result was drawn). A frame rendered while the view was
        hidden (another tab in front) may be stale: then it renders, as :meth:`screenshot`."""
        if (
            not getattr(self, "_frame_shown", False)
            or not self.plotter.isVisible()
            or self.plotter.stamp != self.plotter.scene_stamp()  # the scene changed since
        ):
            return self.screenshot()
        from vtkmodules.vtkRenderingCore import vtkWindowToImageFilter
        from vtkmodules.util.numpy_support import vtk_to_numpy

        f = vtkWindowToImageFilter()
        f.SetInput(self.plotter.render_window)
        f.ShouldRerenderOff()
        f.ReadFrontBufferOff()
        f.SetInputBufferTypeToRGB()
        f.Update()
        img = f.GetOutput()
        w, h, _ = img.GetDimensions()
        arr = vtk_to_numpy(img.GetPointData().GetScalars()).reshape(h, w, -1)[::-1, :, :3]
        return np.ascontiguousarray(arr)

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
