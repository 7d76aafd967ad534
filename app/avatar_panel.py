"""The Avatar dock: six emotion sliders, presets, views, and photo-versus-render comparison.

Dragging a slider deforms the head that is already drawn (``Viewport.update_points`` on
``"<key>/head"``: same actor, same VTK points, new coordinates), so the face follows the
mouse at interactive rates. Emotions go through the EMFACS emotion-to-expression module
(:mod:`engines.avatar.emotions`) and the blendshape basis (:class:`engines.avatar.engine.Deformer`).
The comparison shows the photo beside the avatar rendered from the photo's own camera
(the engine's rasteriser, so the 3D view is not disturbed); it refreshes a quarter of a
second after the sliders come to rest.
"""

from __future__ import annotations

import logging
import time

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets
from PySide6.QtCore import Qt

from engines.avatar.emotions import EMOTIONS, PRESETS

log = logging.getLogger(__name__)
COMPARE_SIDE = 150
SUBJECT_SIDES = {"left": "right", "right": "left"}
"""The panel's Left/Right are the avatar's own sides, as an artist names a profile ("her
left profile"); the viewport's named views are the camera's side of the scene (Blender's
naming: "right" looks from +x). The avatar faces +z with +x on its left (the photo's
right), so its left profile is the viewport's "right" view (issue 15: "Left" showed
the right cheek)."""


def _pixmap(rgb: np.ndarray, side: int = COMPARE_SIDE) -> QtGui.QPixmap:
    rgb = np.ascontiguousarray(rgb[..., :3])
    h, w = rgb.shape[:2]
    img = QtGui.QImage(rgb.data, w, h, 3 * w, QtGui.QImage.Format_RGB888).copy()
    return QtGui.QPixmap.fromImage(img).scaled(side, side, Qt.KeepAspectRatio, Qt.SmoothTransformation)


class AvatarPanel(QtWidgets.QWidget):
    """Emotion sliders (0-100 %), Reset, presets, view buttons and the photo/render comparison."""

    emotions_changed = QtCore.Signal(dict)
    dock_title = "Avatar"  # the result panel contract (engines.api.Engine.panels)

    def __init__(self, main_window, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.main_window = main_window
        self.avatar = None
        self.key: str | None = None
        self.deformer = None
        self.last_update_ms = 0.0
        self.sliders: dict[str, QtWidgets.QSlider] = {}
        self.value_labels: dict[str, QtWidgets.QLabel] = {}
        self.hair_panel = None
        self.perform_panel = None
        self._compare_timer = QtCore.QTimer(self)
        self._compare_timer.setSingleShot(True)
        self._compare_timer.setInterval(250)
        self._compare_timer.timeout.connect(self.update_comparison)
        self._build()
        self.setEnabled(False)

    # -- layout ------------------------------------------------------------------------------
    def _build(self) -> None:
        # Two tabs, Face and Hair, instead of one long column in a scroll area: the panel
        # fits the dock of a 1366 x 768 screen, and the only scrolling part is the hairstyle
        # grid itself (issue 15: the hair colour row was reachable only through a scroll
        # area inside a scroll area).
        top = QtWidgets.QVBoxLayout(self)
        top.setContentsMargins(4, 4, 4, 4)
        self.title = QtWidgets.QLabel("No avatar yet: run Make avatar on a portrait.")
        self.title.setWordWrap(True)
        top.addWidget(self.title)
        outer = top

        # group photos: the faces found, the one used checked; another one makes its avatar
        # (one compact row, so that the panel still fits the dock of a laptop screen)
        self.faces_box = QtWidgets.QWidget()
        self.faces_box.setToolTip("The photo shows several people: click a face to make the avatar of that one")
        self.faces_row = QtWidgets.QHBoxLayout(self.faces_box)
        self.faces_row.setContentsMargins(0, 0, 0, 0)
        self.faces_label = QtWidgets.QLabel("Faces")
        self.faces_row.addWidget(self.faces_label)
        self.face_buttons: list[QtWidgets.QToolButton] = []
        self.faces_box.hide()
        outer.addWidget(self.faces_box)

        self.sections = QtWidgets.QTabWidget()
        self.sections.setDocumentMode(True)
        top.addWidget(self.sections, 1)
        face = QtWidgets.QWidget()
        outer = QtWidgets.QVBoxLayout(face)
        outer.setContentsMargins(2, 4, 2, 2)
        self.sections.addTab(face, "Face")

        box = QtWidgets.QGroupBox("Emotions")
        grid = QtWidgets.QGridLayout(box)
        for row, emo in enumerate(EMOTIONS):
            name = QtWidgets.QLabel(emo.capitalize())
            slider = QtWidgets.QSlider(Qt.Horizontal)
            slider.setRange(0, 100)
            slider.setObjectName(f"slider_{emo}")
            slider.setToolTip(f"{emo.capitalize()}, 0-100 % (EMFACS action units); sliders combine")
            value = QtWidgets.QLabel("0 %")
            value.setMinimumWidth(44)
            value.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
            slider.valueChanged.connect(lambda v, e=emo: self._slider_moved(e, v))
            grid.addWidget(name, row, 0)
            grid.addWidget(slider, row, 1)
            grid.addWidget(value, row, 2)
            self.sliders[emo], self.value_labels[emo] = slider, value
        outer.addWidget(box)

        row = QtWidgets.QHBoxLayout()
        self.reset_button = QtWidgets.QPushButton("Neutral")
        self.reset_button.setToolTip("All emotions back to 0 % and the person's neutral face (the rest pose)")
        self.reset_button.clicked.connect(self.reset)
        self.photographed_button = QtWidgets.QPushButton("As photographed")
        self.photographed_button.setToolTip("The expression the photo shows (measured by the fit), emotions at 0 %")
        self.photographed_button.clicked.connect(self.as_photographed)
        self.presets = QtWidgets.QComboBox()
        self.presets.addItem("Presets…")
        self.presets.addItems(list(PRESETS))
        self.presets.activated.connect(self._preset_chosen)
        # Perform: a webcam or a video drives the face (a dock of its own, opened from here).
        self.perform_button = QtWidgets.QPushButton("Perform…")
        self.perform_button.setObjectName("perform_open")
        self.perform_button.setToolTip(
            "Perform: a webcam or a video file drives the avatar's face and head "
            "live; record takes and export them as animated GLB or MP4"
        )
        self.perform_button.clicked.connect(self.open_perform)
        row.addWidget(self.reset_button)
        row.addWidget(self.photographed_button)
        row.addWidget(self.presets, 1)
        row.addWidget(self.perform_button)
        outer.addLayout(row)

        vrow = QtWidgets.QHBoxLayout()
        vrow.addWidget(QtWidgets.QLabel("View"))
        self.view_buttons: dict[str, QtWidgets.QPushButton] = {}
        for name, text, tip in (
            ("front", "Front", "The face from the front"),
            ("left", "Left", "The avatar's own left side (its left cheek and ear)"),
            ("right", "Right", "The avatar's own right side (its right cheek and ear)"),
            ("photo", "Photo camera", "Match the camera that took the photo"),
        ):
            b = QtWidgets.QPushButton(text)
            b.setToolTip(tip)
            b.clicked.connect(lambda _=False, n=name: self.set_view(n))
            vrow.addWidget(b)
            self.view_buttons[name] = b
        outer.addLayout(vrow)

        cmp_box = QtWidgets.QGroupBox("Photo and avatar from the photo's camera")
        crow = QtWidgets.QHBoxLayout(cmp_box)
        self.photo_label, self.render_label = QtWidgets.QLabel(), QtWidgets.QLabel()
        for lab in (self.photo_label, self.render_label):
            lab.setMinimumSize(56, 56)  # they shrink first when the dock is short (a laptop screen)
            lab.setAlignment(Qt.AlignCenter)
            crow.addWidget(lab)
        outer.addWidget(cmp_box, 1)

        self.info = QtWidgets.QLabel("")
        self.info.setWordWrap(True)
        self.info.setStyleSheet("color: gray")
        outer.addWidget(self.info)
        try:
            from app.hair_panel import HairPanel
        except ImportError:
            HairPanel = None
        outer.addStretch(0)
        if HairPanel is not None:
            try:
                self.hair_panel = HairPanel(self.main_window)
                self.sections.addTab(self.hair_panel, "Hair")
            except Exception:  # the hair controls are optional; the avatar works without them
                log.exception("hair panel")
                self.hair_panel = None

    def heightForWidth(self, width: int) -> int:  # noqa: N802 (Qt's name)
        """The least height the controls need at this width, not their preferred one: a
        scroll area around the panel (the dock's) then scrolls only when the dock is really
        shorter than the controls, not because the photos would like to be bigger."""
        lay = self.layout()
        if lay is not None and lay.hasHeightForWidth():
            return lay.totalMinimumHeightForWidth(width)
        return self.minimumSizeHint().height()

    # -- the result panel contract (app.display.show_panel) -----------------------------------
    @staticmethod
    def wants(item) -> bool:
        """A take recorded without an avatar has nothing for these controls to drive."""
        return type(item).__name__ != "Take" or item.avatar is not None

    def show_item(self, item, key: str) -> None:
        """An avatar, or a take (its avatar: a take is drawn as the avatar it drives)."""
        avatar = item.avatar if type(item).__name__ == "Take" else item
        if avatar is not None:
            self.set_avatar(avatar, key)

    def release(self) -> None:
        """The avatar is no longer shown: live tracking stops and the Perform dock goes."""
        if self.perform_panel is not None:
            self.perform_panel.stop_tracking()
        docks = getattr(self.main_window, "docks", {})
        if "Perform" in docks and not docks["Perform"].isHidden():
            docks["Perform"].hide()

    # -- avatar ------------------------------------------------------------------------------
    def set_avatar(self, avatar, key: str) -> None:
        """Show the controls for an avatar drawn in the viewport under ``key``."""
        from engines.avatar.engine import Deformer
        from engines.types import Avatar

        # No torch warm-up here: the sliders' emotion map is numpy (emotion_to_expression),
        # and importing torch in this process froze the window for 1-3 s (issue 15).
        self.avatar, self.key = avatar, key
        from app.display import deformer_for

        # made ahead in the worker thread that made the avatar (issue 15: 0.75 s here)
        self.deformer = deformer_for(avatar) if isinstance(avatar, Avatar) else Deformer(avatar)
        for emo in EMOTIONS:
            avatar.emotions.setdefault(emo, 0.0)
        self._set_sliders(avatar.emotions, apply=False)
        self.title.setText(
            f"Avatar: {avatar.name} ({len(avatar.mesh.vertices):,} vertices, "
            f"{len(self.deformer.names)} ARKit blendshapes)"
        )
        from engines.avatar.engine import AS_PHOTOGRAPHED

        self.photographed_button.setEnabled(bool(avatar.presets.get(AS_PHOTOGRAPHED)))
        self.setEnabled(True)
        if avatar.photo is not None:
            self.photo_label.setPixmap(_pixmap(self._face_crop(avatar.photo)))
        self._show_faces(avatar)
        self.update_comparison()
        if self.hair_panel is not None and hasattr(self.hair_panel, "set_avatar"):
            self.hair_panel.set_avatar(avatar, key)
        if self.perform_panel is not None:
            self.perform_panel.avatar_changed()

    def _show_faces(self, avatar) -> None:
        """One button per detected face (a crop of the photo), when there are several."""
        for b in self.face_buttons:
            self.faces_row.removeWidget(b)
            b.deleteLater()
        self.face_buttons = []
        while self.faces_row.count() > 1:  # the stretch after the buttons (the label stays)
            self.faces_row.takeAt(self.faces_row.count() - 1)
        faces = (avatar.params or {}).get("faces") or []
        if avatar.photo is None or len(faces) < 2:
            self.faces_box.hide()
            return
        used = int(avatar.params.get("face_index", 0))
        h, w = avatar.photo.shape[:2]
        side = 40 if len(faces) <= 7 else 28  # a dozen faces still fit the dock's width
        for i, (x0, y0, x1, y1) in enumerate(faces[:12]):
            m = 0.25 * max(x1 - x0, y1 - y0)
            crop = avatar.photo[max(0, int(y0 - m)) : min(h, int(y1 + m)), max(0, int(x0 - m)) : min(w, int(x1 + m))]
            b = QtWidgets.QToolButton()
            b.setObjectName(f"face_{i}")
            b.setCheckable(True)
            b.setChecked(i == used)
            b.setAutoRaise(True)
            if crop.size:
                b.setIcon(QtGui.QIcon(_pixmap(crop, side)))
                b.setIconSize(QtCore.QSize(side, side))
            b.setToolTip(f"Face {i + 1} of {len(faces)}" + (" (this avatar)" if i == used else ": make its avatar"))
            b.clicked.connect(lambda _=False, k=i: self.choose_face(k))
            self.faces_row.addWidget(b)
            self.face_buttons.append(b)
        self.faces_row.addStretch(1)
        self.faces_label.setText(f"Faces in\nthe photo ({len(faces)})")
        self.faces_box.show()

    def choose_face(self, index: int):
        """Make the avatar of another face of the same photo (a new result; this one stays)."""
        if self.avatar is None:
            return None
        used = int(self.avatar.params.get("face_index", 0))
        for i, b in enumerate(self.face_buttons):
            b.setChecked(i == used)
        if index == used:
            return None
        return self.main_window.remake_result(self.avatar, face_index=int(index))

    def _set_sliders(self, values: dict, apply: bool = True) -> None:
        for emo, s in self.sliders.items():
            s.blockSignals(True)
            s.setValue(int(round(100 * float(values.get(emo, 0.0)))))
            s.blockSignals(False)
            self.value_labels[emo].setText(f"{s.value()} %")
            if self.avatar is not None:
                self.avatar.emotions[emo] = s.value() / 100.0
        if apply:
            self.apply()

    def _slider_moved(self, emo: str, value: int) -> None:
        self.value_labels[emo].setText(f"{value} %")
        if self.avatar is None:
            return
        self.avatar.emotions[emo] = value / 100.0
        self.apply()

    def current_vertices(self) -> np.ndarray:
        return self.deformer.vertices(self.avatar.emotions)

    def apply(self) -> None:
        """Deform the drawn head in place for the current slider values."""
        if self.avatar is None or self.deformer is None:
            return
        t0 = time.perf_counter()
        verts = self.current_vertices()
        viewport = getattr(self.main_window, "viewport", None)
        if viewport is not None and self.key is not None:
            try:
                viewport.update_points(f"{self.key}/head", verts, deferred=True)
            except KeyError:
                log.debug("avatar %s is not drawn", self.key)
        self.last_update_ms = (time.perf_counter() - t0) * 1000
        self.info.setText(f"Last update {self.last_update_ms:.1f} ms")
        self.emotions_changed.emit(dict(self.avatar.emotions))
        self._compare_timer.start()  # the comparison follows once the slider rests

    def reset(self) -> None:
        """The rest pose: the person's neutral face, every emotion at 0 %."""
        if self.avatar is not None:
            self.avatar.expression = {}
        self._set_sliders({})
        self.update_comparison()

    def as_photographed(self) -> None:
        """The photo's own expression (the fit's ARKit weights); emotions at 0 %."""
        from engines.avatar.engine import AS_PHOTOGRAPHED

        if self.avatar is None:
            return
        self.avatar.expression = dict(self.avatar.presets.get(AS_PHOTOGRAPHED, {}))
        self._set_sliders({})
        self.update_comparison()

    def apply_preset(self, name: str) -> None:
        self._set_sliders(PRESETS[name])
        self.update_comparison()

    def _preset_chosen(self, index: int) -> None:
        if index > 0:
            self.apply_preset(self.presets.itemText(index))
        self.presets.setCurrentIndex(0)

    # -- perform -----------------------------------------------------------------------------
    def open_perform(self):
        """The Perform panel (:mod:`app.perform_panel`): a "Perform" dock beside the Avatar
        dock in the main window, a window of its own otherwise. Returns the panel."""
        from app.perform_panel import PerformPanel

        w = self.main_window
        docks = getattr(w, "docks", None)
        if self.perform_panel is None:
            self.perform_panel = PerformPanel(self)
            if isinstance(docks, dict) and hasattr(w, "_dock"):
                scroll = QtWidgets.QScrollArea()
                scroll.setWidgetResizable(True)
                scroll.setFrameShape(QtWidgets.QFrame.NoFrame)
                scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
                scroll.setWidget(self.perform_panel)
                scroll.setMinimumWidth(
                    self.perform_panel.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width()
                )
                docks["Perform"] = w._dock("Perform", scroll, Qt.RightDockWidgetArea)
                if "Avatar" in docks:
                    w.tabifyDockWidget(docks["Avatar"], docks["Perform"])
            else:
                self.perform_panel.setWindowFlag(Qt.Window, True)
                self.perform_panel.setWindowTitle("Perform")
                self.perform_panel.resize(420, 640)
        if isinstance(docks, dict) and "Perform" in docks:
            docks["Perform"].show()
            docks["Perform"].raise_()
        else:
            self.perform_panel.show()
            self.perform_panel.raise_()
        self.perform_panel.avatar_changed()
        return self.perform_panel

    # -- views -------------------------------------------------------------------------------
    def set_view(self, name: str) -> None:
        viewport = getattr(self.main_window, "viewport", None)
        if viewport is None:
            return
        if name == "photo":
            if not self.avatar or not self.avatar.camera:
                return
            viewport.set_camera(self.avatar.camera)
        else:
            viewport.set_view(SUBJECT_SIDES.get(name, name))

    def _face_crop(self, img: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """The part of a photo-sized image (resized by ``scale``) around the face."""
        from engines.avatar.raster import project

        c = self.avatar.camera
        box = self.avatar.params.get("face_box")
        if box is not None:
            xy = np.array([[box[0], box[1]], [box[2], box[3]]], float)
        else:
            xy, _ = project(np.asarray(c["K"], float), c["R"], c["t"], self.avatar.mesh.vertices[:468])
        xy = (xy + 0.5) * scale - 0.5
        lo, hi = xy.min(0), xy.max(0)
        half = 0.75 * float((hi - lo).max())
        cx, cy = (lo + hi) / 2
        h, w = img.shape[:2]
        x0, x1 = int(max(cx - half, 0)), int(min(cx + half, w))
        y0, y1 = int(max(cy - half, 0)), int(min(cy + half, h))
        return img[y0:y1, x0:x1] if x1 > x0 and y1 > y0 else img

    def update_comparison(self) -> None:
        """Render the current expression from the photo camera beside the photo: in the
        window's job runner when there is one (the render takes 0.2-0.4 s, which froze the
        window when an avatar was shown; issue 15), else here."""
        if self.avatar is None or not self.avatar.camera:
            return
        from engines.avatar.quality import render_from_photo_camera

        avatar, verts = self.avatar, np.array(self.current_vertices())
        runner = getattr(self.main_window, "runner", None)
        if runner is None:
            try:
                img, _, s = render_from_photo_camera(avatar, verts, max_side=1024)
            except Exception as e:  # a failed preview must not break the sliders
                self._comparison_failed(str(e), "")
                return
            self._show_comparison(img, s)
            return
        self._compare_generation = getattr(self, "_compare_generation", 0) + 1
        gen = self._compare_generation

        def done(value):
            if gen == self._compare_generation and avatar is self.avatar:  # not overtaken
                self._show_comparison(value[0], value[2])

        runner.submit(
            lambda progress, cancel: render_from_photo_camera(avatar, verts, max_side=1024),
            "Comparison render",
            "preview",
            on_done=done,
            on_error=self._comparison_failed,
            meta={"quiet": True},
        )

    def _comparison_failed(self, message: str, details: str) -> None:
        log.error("comparison render: %s\n%s", message, details)
        self.render_label.setText(f"(no render: {message})")

    def _show_comparison(self, img, s) -> None:
        self.render_image = img
        self.render_label.setPixmap(_pixmap(self._face_crop(img, s)))
