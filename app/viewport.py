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
)
from engines.types import Avatar, DepthMap, Image, Mesh, PointCloud, Strands


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
            # Wide GL lines cost about twice as much as 1 px ones there (hair: 40 vs 100 ms a frame).
            self.line_width = min(self.line_width, 1.0)

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
        arr[:] = pts
        item.poly.GetPoints().Modified()
        if item.normals is not None:
            item.poly.point_data["Normals"][:] = item.normals(pts)
            item.poly.GetPointData().GetNormals().Modified()
        item.poly.Modified()
        widget = self.plotter
        if deferred and widget.isVisible() and hasattr(widget, "update"):
            widget.update()
        else:
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
